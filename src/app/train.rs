//! Training the trials a process can claim, shared by `run` and `worker`: which trials are
//! pending, the device slots, claims (with their heartbeat) so that several processes share
//! one sweep, saving each result as it arrives, then the table and the report.

use crate::cli::TrainArgs;
use crate::data;
use crate::engine::{Device, Engine, Progress};
use crate::error::{Error, Result};
use crate::events::SweepEvent;
use crate::format::{metric_text, pct, text_table};
use crate::progress::Display;
use crate::report;
use crate::scheduler::{self, Cancel, Slot};
use crate::search::Pruner;
use crate::search::proposals::Proposer;
use crate::spec::Method;
use crate::store::{Claims, Found, Store, SweepInfo};
use crate::trial::{Status, Trial, TrialId, TrialResult};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Trials of this run that were stopped before their end (they train again on a rerun).
fn stopped_count(results: &[TrialResult]) -> usize {
    results
        .iter()
        .filter(|r| r.status == Status::Interrupted)
        .count()
}

/// The stop flags, with time for running trials to stop: a program gets its own `grace`
/// (SIGTERM, then SIGKILL) and 5 s more to be reaped.
fn stop_grace(info: &SweepInfo) -> Cancel {
    let grace = Cancel::default().grace;
    Cancel {
        grace: info.program.as_ref().map_or(grace, |p| {
            grace.max(Duration::from_secs_f64(p.grace) + Duration::from_secs(5))
        }),
        ..Cancel::default()
    }
}

/// The outcome of `run`, for the exit code.
pub struct RunOutcome {
    /// Trials of this run that failed.
    pub failed: usize,
    /// True when Ctrl-C or SIGTERM stopped the run.
    pub interrupted: bool,
    /// Trials of the sweep without a result when this process ended (held by other processes,
    /// or left by one that stopped): the sweep is not complete.
    pub left: usize,
}

/// Trains what is pending of a recorded sweep, claim by claim, then prints the table and
/// writes the report.
pub fn train_sweep(
    store: &Store,
    info: &SweepInfo,
    engine: &Arc<dyn Engine>,
    args: &TrainArgs,
    sizes: &HashMap<String, data::DataSummary>,
) -> Result<RunOutcome> {
    let (pending, skipped) = pending_trials(store, &info.trials, args.rerun_failed, sizes);
    let queued: Vec<TrialId> = pending.iter().map(|(t, _)| t.id.clone()).collect();
    let seen = Seen::default();
    let slots = args.slots.slots(pending.len())?;
    let cancel = Arc::new(stop_grace(info));
    let _signals = crate::signals::watch(&cancel);
    if info.program.is_some() {
        crate::program::leftovers::end_stale(store);
    }
    let claims = Arc::new(Claims::new(store.dir()));
    let beating = heartbeat(&claims);
    let results = train(
        store,
        info,
        (pending, skipped),
        engine,
        &slots,
        &cancel,
        args,
        (&claims, &seen),
    );
    beating.store(false, Ordering::SeqCst);
    let results = results?;
    let failed = results
        .iter()
        .filter(|r| r.status == Status::Failed)
        .count();
    if args.quiet {
        // The one line --quiet keeps: what happened and where it is.
        let interrupted = stopped_count(&results);
        let note = if interrupted > 0 {
            format!(", {interrupted} interrupted")
        } else {
            String::new()
        };
        crate::outln!(
            "{}: {} trained ({failed} failed){note}, {skipped} already done — {}",
            info.name,
            results.len() - interrupted,
            store.dir().display()
        );
    }
    // A TPE sweep's trials are the planned ones and every proposal recorded since.
    let recorded = match info.method {
        Method::Tpe => store.read_plan().unwrap_or_else(|_| info.clone()),
        _ => info.clone(),
    };
    if !args.quiet {
        crate::output::out(&results_table(store, &recorded));
    }
    if !args.no_report {
        write_report(store, &recorded, args.quiet)?;
    }
    // A stop that came after the last trial ended interrupted nothing.
    let undone = left_undone(info, &recorded, &queued, &seen, &results);
    let interrupted = cancel.stop_new.load(Ordering::SeqCst) && undone > 0;
    Ok(RunOutcome {
        failed,
        interrupted,
        left: explain_left(store, &recorded, args.rerun_failed, interrupted),
    })
}

/// Says which trials of the sweep are left without a result as this process ends, and why: held
/// by another process that is alive (its pid, host and heartbeat), by a claim that cannot be
/// read yet, or by none (its holder stopped after this process passed it over). Returns how many; a run that leaves any is not
/// a complete sweep and does not exit 0. Trials this process stopped itself are its interrupt's
/// to explain.
fn explain_left(store: &Store, recorded: &SweepInfo, rerun_failed: bool, stopped: bool) -> usize {
    let claims = Claims::new(store.dir());
    let mut held: BTreeMap<String, (f64, Vec<String>)> = BTreeMap::new();
    let (mut unheld, mut unreadable) = (vec![], vec![]);
    for t in recorded
        .trials
        .iter()
        .filter(|t| !is_done(store, t, rerun_failed))
    {
        match claims.current(&t.id) {
            Some(Found {
                claim: Some(c),
                live: true,
                age,
                ..
            }) => {
                let entry = held
                    .entry(format!("pid {} on {}", c.pid, c.host))
                    .or_insert((age, vec![]));
                entry.0 = entry.0.min(age);
                entry.1.push(t.name.clone());
            }
            Some(Found {
                claim: None,
                live: true,
                ..
            }) => unreadable.push(t.name.clone()),
            _ => unheld.push(t.name.clone()),
        }
    }
    for (holder, (age, names)) in &held {
        crate::errln!(
            "{} held by {holder}, heartbeat {age:.0} s ago, {} not run by this process: {}",
            count(names.len(), "trial"),
            if names.len() == 1 { "was" } else { "were" },
            name_list(names)
        );
    }
    if !unheld.is_empty() && !stopped {
        let it = if unheld.len() == 1 { "it" } else { "them" };
        crate::errln!(
            "{} not run: no process holds {it} now (its holder stopped after this process passed {it} over); rerun the same command to train {it}: {}",
            count(unheld.len(), "trial"),
            name_list(&unheld)
        );
    }
    if !unreadable.is_empty() {
        crate::errln!(
            "{} not run: {} claim cannot be read yet (being written by another process, or left \
             damaged: a damaged claim holds nothing once 5 s old); rerun the same command: {}",
            count(unreadable.len(), "trial"),
            if unreadable.len() == 1 {
                "its"
            } else {
                "their"
            },
            name_list(&unreadable)
        );
    }
    held.values().map(|(_, n)| n.len()).sum::<usize>() + unheld.len() + unreadable.len()
}

/// "1 trial", "3 trials".
fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// Trial names for one line: the first five, then how many more.
fn name_list(names: &[String]) -> String {
    let shown: Vec<String> = names.iter().take(5).map(|n| format!("`{n}`")).collect();
    match names.len().saturating_sub(5) {
        0 => shown.join(", "),
        more => format!("{} and {more} more", shown.join(", ")),
    }
}

/// Writes the report, unless no trial has finished: then every trial was held by other
/// processes, still training, and theirs is the report.
fn write_report(store: &Store, recorded: &SweepInfo, quiet: bool) -> Result<()> {
    let finished = |t: &Trial| matches!(store.load(&t.id), Ok(Some(_)));
    if !recorded.trials.iter().any(finished) {
        crate::errln!(
            "no report yet: no trial has finished (`hypersweep status {}` shows who trains them)",
            store.dir().display()
        );
        return Ok(());
    }
    let written = report::write(store.dir()).map_err(|e| e.context("writing the report"))?;
    if !quiet {
        crate::outln!("report: {}", written.display());
    }
    Ok(())
}

/// What this process left undone: the trials it stopped, those of its queue it never reached,
/// and a TPE sweep's trials not yet proposed.
fn left_undone(
    info: &SweepInfo,
    recorded: &SweepInfo,
    queued: &[TrialId],
    seen: &Seen,
    results: &[TrialResult],
) -> usize {
    let unproposed = match info.method {
        Method::Tpe => info
            .count
            .unwrap_or(0)
            .saturating_sub(recorded.trials.len()),
        _ => 0,
    };
    let reached = seen.lock().expect("seen");
    let unreached = queued.iter().filter(|id| !reached.contains_key(*id));
    stopped_count(results) + unreached.count() + unproposed
}

/// Refreshes this process's claims until the returned flag is cleared.
fn heartbeat(claims: &Arc<Claims>) -> Arc<AtomicBool> {
    let on = Arc::new(AtomicBool::new(true));
    let (c, flag) = (claims.clone(), on.clone());
    std::thread::spawn(move || {
        let every = c.heartbeat_every();
        let tick = std::time::Duration::from_millis(50).min(every);
        let mut since = std::time::Duration::ZERO;
        while flag.load(Ordering::SeqCst) {
            std::thread::sleep(tick);
            since += tick;
            if since >= every {
                c.heartbeat();
                since = std::time::Duration::ZERO;
            }
        }
    });
    on
}

/// True when the stored result of a trial means it needs no training.
pub(super) fn is_done(store: &Store, t: &Trial, rerun_failed: bool) -> bool {
    match store.load(&t.id) {
        Ok(Some(r)) => r.status.is_done(rerun_failed),
        Ok(None) => false,
        Err(e) => {
            tracing::warn!(trial = %t.name, "unreadable stored result, training again: {e}");
            false
        }
    }
}

/// Data problems (a missing directory, a subset larger than the split) are the user's and must
/// show before anything trains; each distinct data setting is prepared once. Returns the sizes
/// of each (data, seed) setting, for the cost estimates.
pub fn check_data(trials: &[Trial]) -> Result<HashMap<String, data::DataSummary>> {
    let mut sizes = HashMap::new();
    for t in trials {
        let Some(c) = t.builtin() else { continue };
        if let std::collections::hash_map::Entry::Vacant(e) = sizes.entry(data_key(t)) {
            let s = data::prepare(&c.data, c.seed)
                .map_err(|e| Error::Data(format!("trial `{}`: {e}", t.name)))?;
            e.insert(s.summary);
        }
    }
    Ok(sizes)
}

/// The key of a trial's data setting in `check_data`'s sizes.
pub fn data_key(t: &Trial) -> String {
    t.builtin()
        .map(|c| {
            format!(
                "{}/{}",
                serde_json::to_string(&c.data).unwrap_or_default(),
                c.seed
            )
        })
        .unwrap_or_default()
}

/// The trials still to train, each with its cost estimate, and how many are already done.
fn pending_trials(
    store: &Store,
    trials: &[Trial],
    rerun_failed: bool,
    sizes: &HashMap<String, data::DataSummary>,
) -> (Vec<(Trial, f64)>, usize) {
    let mut pending = vec![];
    let mut skipped = 0;
    for t in trials {
        if is_done(store, t, rerun_failed) {
            skipped += 1;
        } else {
            pending.push((t.clone(), cost(t, sizes)));
        }
    }
    (pending, skipped)
}

/// The scheduler's order key of a trial: its rough cost (multiply-adds × samples); program
/// trials have no estimate, and equal costs keep them in plan order.
pub fn cost(t: &Trial, sizes: &HashMap<String, data::DataSummary>) -> f64 {
    let n = sizes.get(&data_key(t)).map_or(0, |s| s.train);
    t.builtin()
        .map_or(1.0, |c| crate::estimate::rough_cost(c, n))
}

/// Trains the pending trials, saving each result as it arrives and showing progress. A result
/// that cannot be saved ends the run with that error once the running trials are done.
/// Each trial is claimed by the slot that is about to train it, so trials other processes hold
/// are skipped and none is trained twice.
#[allow(clippy::too_many_arguments)]
fn train(
    store: &Store,
    info: &SweepInfo,
    (pending, skipped): (Vec<(Trial, f64)>, usize),
    engine: &Arc<dyn Engine>,
    slots: &[Slot],
    cancel: &Arc<Cancel>,
    args: &TrainArgs,
    (claims, seen): (&Arc<Claims>, &Seen),
) -> Result<Vec<TrialResult>> {
    let total = match info.method {
        Method::Tpe => info.count.unwrap_or(0).max(info.trials.len()),
        _ => info.trials.len(),
    };
    let mut display = Display::new(args.quiet, total, &info.report.metric);
    let mut write_error: Option<Error> = None;
    display.event(&SweepEvent::Started {
        total,
        skipped,
        slots: slots
            .iter()
            .map(|s| format!("{}×{}t", s.device, s.threads))
            .collect(),
    });
    let left = leftovers(store, claims, &pending, seen);
    let next = match proposer(
        store,
        info,
        claims,
        args.rerun_failed,
        (&pending, slots.len()),
    ) {
        Some(propose) => Arc::new(move || propose().or_else(|| left())),
        None => left,
    };
    let claim_error = Arc::new(Mutex::new(None));
    let hooks = scheduler::Hooks {
        claim: claimer(
            store,
            (claims, args.rerun_failed),
            seen.clone(),
            (cancel, &claim_error),
        ),
        attempt: Some(attempter(store, info)),
        judge: judge(store, info),
        next: Some(next),
    };
    let fuse =
        (args.slots.fuse.or(info.fuse)).map_or(1, |f| crate::plan::fusion::group_size(f, slots));
    let groups = crate::plan::fusion::groups(pending, fuse);
    let results = scheduler::run(groups, engine, slots, cancel, &hooks, |ev| {
        let saved = match ev {
            SweepEvent::TrialFinished { trial, result } => {
                // result.json first: the claim goes only once the proof of the trial is there.
                let saved = store.write_trial(trial, result);
                if saved.is_ok() {
                    store.end_attempt(&trial.id, result.status);
                }
                claims.release(&trial.id);
                saved
            }
            SweepEvent::TrialEpoch { id, row, .. } => {
                store.live_row(id, &crate::store::epoch_metrics(row));
                Ok(())
            }
            SweepEvent::TrialMetrics { id, row, .. } => {
                store.live_row(id, row);
                Ok(())
            }
            _ => Ok(()),
        };
        if let Err(e) = saved {
            tracing::error!("cannot save: {e}");
            // No new trial starts once results cannot be saved.
            cancel.stop_new.store(true, Ordering::SeqCst);
            write_error.get_or_insert(e);
        }
        display.event(ev);
    });
    display.finish();
    let claim_error = claim_error.lock().expect("claim error").take();
    match write_error.or(claim_error) {
        Some(e) => Err(e),
        None => Ok(results),
    }
}

/// Each claimed trial's attempt, counted in its directory, with its checkpoint as the sweep's
/// `checkpoint:` says. A trial whose attempt cannot be recorded trains without a checkpoint.
fn attempter(store: &Store, info: &SweepInfo) -> scheduler::Attempt {
    let (store, policy) = (store.clone(), info.checkpoint.unwrap_or_default());
    Arc::new(move |t: &Trial| match store.start_attempt(&t.id, policy) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(trial = %t.name, "no checkpoint for this attempt: {e}");
            None
        }
    })
}

/// The sweep's early-termination rule as the scheduler's judge, when it has one.
fn judge(store: &Store, info: &SweepInfo) -> Option<scheduler::Judge> {
    let rule = info.early_terminate.clone()?;
    let pruner = Arc::new(Pruner::new(rule, store.clone(), info.clone()));
    Some(Arc::new(move |t: &Trial, p: &Progress| {
        pruner.observe(t, p)
    }))
}

/// A TPE sweep's proposer as the scheduler's source of trials after the queued ones.
fn proposer(
    store: &Store,
    info: &SweepInfo,
    claims: &Arc<Claims>,
    rerun_failed: bool,
    (pending, slots): (&[(Trial, f64)], usize),
) -> Option<scheduler::Next> {
    if info.method != Method::Tpe {
        return None;
    }
    let queued = pending.iter().map(|(t, _)| t.id.clone());
    let p = Proposer::new(
        store.clone(),
        info.clone(),
        claims.clone(),
        rerun_failed,
        (queued, slots),
    );
    Some(Arc::new(move || p.next()))
}

/// Each trial this process asked to claim, and whether it got it.
type Seen = Arc<Mutex<HashMap<TrialId, bool>>>;

/// What a slot does before training a trial: claim it, and check (after claiming, so a result
/// written meanwhile is seen) that no process finished it already. Each trial asked about goes
/// into `seen`. A claim that cannot be written (a full disk, a read-only directory) stops new
/// trials and becomes the run's error, as a result that cannot be saved does: skipping the
/// trial instead left it untrained with nothing said.
fn claimer(
    store: &Store,
    (claims, rerun_failed): (&Arc<Claims>, bool),
    seen: Seen,
    (cancel, error): (&Arc<Cancel>, &Arc<Mutex<Option<Error>>>),
) -> scheduler::Claim {
    let (store, claims) = (store.clone(), claims.clone());
    let (cancel, error) = (cancel.clone(), error.clone());
    Arc::new(move |t: &Trial, device: Device| {
        let claimed = match claims.try_claim(&t.id, &t.name, &device.to_string()) {
            Ok(true) if is_done(&store, t, rerun_failed) => {
                claims.release(&t.id);
                false
            }
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::error!("cannot claim trial `{}`: {e}", t.name);
                cancel.stop_new.store(true, Ordering::SeqCst);
                error.lock().expect("claim error").get_or_insert(e);
                false
            }
        };
        let mut seen = seen.lock().expect("seen");
        *seen.entry(t.id.clone()).or_default() |= claimed;
        claimed
    })
}

/// After the queue: the trials of `pending` that another process held when this one came to
/// them and has since left unfinished (it was killed: its claim went stale; or stopped: it
/// released its claim without a result), each offered once. Without it, a `run` or `worker`
/// beside a killed one ended with that one's trials never trained. A result of any status
/// counts as finished here: with `--rerun-failed`, a failed trial another process retried is
/// not retried again.
fn leftovers(
    store: &Store,
    claims: &Arc<Claims>,
    pending: &[(Trial, f64)],
    seen: &Seen,
) -> scheduler::Next {
    let (store, claims, seen) = (store.clone(), claims.clone(), seen.clone());
    let trials: Vec<Trial> = pending.iter().map(|(t, _)| t.clone()).collect();
    let offered = Mutex::new(HashSet::new());
    Arc::new(move || {
        let mut offered = offered.lock().expect("offered");
        let here = seen.lock().expect("seen").clone();
        let left = trials.iter().find(|t| {
            !offered.contains(&t.id)
                // Tried here and held elsewhere; one not tried yet is still on its way (a
                // fused group's member another slot is claiming).
                && here.get(&t.id) == Some(&false)
                && !claims.current(&t.id).is_some_and(|c| c.live)
                && !is_done(&store, t, false)
        })?;
        offered.insert(left.id.clone());
        tracing::info!(trial = %left.name, "taking over a trial another process left unfinished");
        Some(left.clone())
    })
}

/// The final table of a run: every trial of the plan with its stored status and metrics (the
/// report's metric for program trials).
fn results_table(store: &Store, info: &SweepInfo) -> String {
    let metric = info.report.metric.as_str();
    let program = info.program.is_some();
    let (first, second) = if program {
        (metric, "exit code")
    } else {
        ("test acc", "best val acc")
    };
    let headers: Vec<String> = [
        "name", "status", first, second, "epochs", "seconds", "device",
    ]
    .map(String::from)
    .to_vec();
    let rows: Vec<Vec<String>> = info
        .trials
        .iter()
        .map(|t| match store.load(&t.id) {
            Ok(Some(r)) if program => vec![
                t.name.clone(),
                r.status.to_string(),
                metric_text(metric, r.metric(metric)),
                r.exit_code.map(|c| c.to_string()).unwrap_or("–".into()),
                r.epochs_run.to_string(),
                format!("{:.1}", r.total_seconds),
                r.device.clone(),
            ],
            Ok(Some(r)) => vec![
                t.name.clone(),
                r.status.to_string(),
                pct(r.test_accuracy),
                pct(r.best_val_accuracy),
                r.epochs_run.to_string(),
                format!("{:.1}", r.total_seconds),
                r.device.clone(),
            ],
            Ok(None) => [t.name.as_str(), "not run", "–", "–", "–", "–", "–"]
                .map(String::from)
                .to_vec(),
            Err(_) => [t.name.as_str(), "unreadable", "–", "–", "–", "–", "–"]
                .map(String::from)
                .to_vec(),
        })
        .collect();
    text_table(&headers, &rows)
}
