//! `hypersweep run`: check the data, take the results directory, train what is not done, save
//! each trial as it finishes, then print the table and write the report.

use super::load_plan;
use crate::cli::RunArgs;
use crate::engine::scripted::Scripted;
use crate::engine::{BurnEngine, Engine};
use crate::error::{Error, Result};
use crate::events::SweepEvent;
use crate::format::{pct, text_table};
use crate::logging::LogFile;
use crate::plan::Plan;
use crate::progress::Display;
use crate::scheduler::{self, Cancel, Slot};
use crate::store::{Lock, Store, SweepInfo};
use crate::trial::{Status, Trial, TrialResult};
use crate::{data, devices, report};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The outcome of `run`, for the exit code.
pub struct RunOutcome {
    /// Trials of this run that failed.
    pub failed: usize,
    /// True when Ctrl-C or SIGTERM stopped the run.
    pub interrupted: bool,
}

/// Runs a sweep with the burn engine (or the scripted one when `HYPERSWEEP_ENGINE=scripted`).
pub fn run(args: &RunArgs, log: &LogFile) -> Result<RunOutcome> {
    let engine: Arc<dyn Engine> = match Scripted::from_env() {
        Some(s) => Arc::new(s),
        None => Arc::new(BurnEngine),
    };
    run_with(args, log, &engine)
}

/// Runs a sweep with the given engine.
pub fn run_with(args: &RunArgs, log: &LogFile, engine: &Arc<dyn Engine>) -> Result<RunOutcome> {
    let (spec, plan) = load_plan(&args.file, args.data_dir.as_deref())?;
    let store = Store::new(&args.out, &plan.name);
    let train_sizes = check_data(&plan)?;
    // Flags are checked before the directory is touched: a bad one must leave nothing behind.
    devices::parse(
        &args.devices,
        args.per_device,
        args.threads,
        plan.trials.len(),
        &devices::cuda_device_count,
    )?;
    let _lock = if args.fresh {
        start_fresh(&store)?
    } else {
        Lock::acquire(store.dir())?
    };
    log.open(&store.dir().join("hypersweep.log"))?;
    let info = SweepInfo::new(&plan, &spec.description, &spec.report);
    store.write_plan(&spec.source, &info)?;

    let (pending, skipped) = pending_trials(&store, &plan, args.rerun_failed, &train_sizes);
    let slots = devices::parse(
        &args.devices,
        args.per_device,
        args.threads,
        pending.len(),
        &devices::cuda_device_count,
    )?;
    let cancel = Arc::new(Cancel::default());
    let _signals = crate::signals::watch(&cancel);
    let results = train(
        &store, &plan, pending, skipped, engine, &slots, &cancel, args,
    )?;
    let failed = results
        .iter()
        .filter(|r| r.status == Status::Failed)
        .count();
    if args.quiet {
        // The one line --quiet keeps: what happened and where it is.
        println!(
            "{}: {} trained ({} failed), {} already done — {}",
            plan.name,
            results.len(),
            failed,
            skipped,
            store.dir().display()
        );
    } else {
        print!("{}", results_table(&store, &plan));
    }
    if !args.no_report {
        let written = report::write(store.dir()).map_err(|e| e.context("writing the report"))?;
        if !args.quiet {
            println!("report: {}", written.display());
        }
    }
    Ok(RunOutcome {
        failed,
        interrupted: cancel.stop_new.load(Ordering::SeqCst),
    })
}

/// `--fresh`: takes the old directory's lock (so a live run there is refused, and no run can
/// start in it meanwhile), moves the directory aside, and locks the new one.
fn start_fresh(store: &Store) -> Result<Lock> {
    if store.dir().exists() {
        let old = Lock::acquire(store.dir())?;
        if let Some(moved) = store.move_aside()? {
            eprintln!("moved the previous results to {}", moved.display());
        }
        drop(old);
    }
    Lock::acquire(store.dir())
}

/// Data problems (a missing directory, a subset larger than the split) are the user's and must
/// show before anything trains; each distinct data setting is prepared once. Returns the
/// training-set size of each (data, seed) setting, for the cost estimates.
fn check_data(plan: &Plan) -> Result<HashMap<String, usize>> {
    let mut sizes = HashMap::new();
    for t in &plan.trials {
        if let std::collections::hash_map::Entry::Vacant(e) = sizes.entry(data_key(t)) {
            let s = data::prepare(&t.config.data, t.config.seed)
                .map_err(|e| Error::Data(format!("trial `{}`: {e}", t.name)))?;
            e.insert(s.summary.train);
        }
    }
    Ok(sizes)
}

fn data_key(t: &Trial) -> String {
    format!(
        "{}/{}",
        serde_json::to_string(&t.config.data).unwrap_or_default(),
        t.config.seed
    )
}

/// The trials still to train, each with its cost estimate, and how many are already done.
fn pending_trials(
    store: &Store,
    plan: &Plan,
    rerun_failed: bool,
    train_sizes: &HashMap<String, usize>,
) -> (Vec<(Trial, f64)>, usize) {
    let mut pending = vec![];
    let mut skipped = 0;
    for t in &plan.trials {
        let done = match store.load(&t.id) {
            Ok(Some(r)) => r.status.is_final() || (r.status == Status::Failed && !rerun_failed),
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(trial = %t.name, "unreadable stored result, training again: {e}");
                false
            }
        };
        if done {
            skipped += 1;
        } else {
            let n = train_sizes.get(&data_key(t)).copied().unwrap_or(0);
            pending.push((t.clone(), t.config.cost_estimate(n)));
        }
    }
    (pending, skipped)
}

/// Trains the pending trials, saving each result as it arrives and showing progress. A result
/// that cannot be saved ends the run with that error once the running trials are done.
#[allow(clippy::too_many_arguments)]
fn train(
    store: &Store,
    plan: &Plan,
    pending: Vec<(Trial, f64)>,
    skipped: usize,
    engine: &Arc<dyn Engine>,
    slots: &[Slot],
    cancel: &Arc<Cancel>,
    args: &RunArgs,
) -> Result<Vec<TrialResult>> {
    let mut display = Display::new(args.quiet, plan.trials.len());
    let mut write_error: Option<Error> = None;
    display.event(&SweepEvent::Started {
        total: plan.trials.len(),
        skipped,
        slots: slots
            .iter()
            .map(|s| format!("{}×{}t", s.device, s.threads))
            .collect(),
    });
    let results = scheduler::run(pending, engine, slots, cancel, |ev| {
        let saved = match ev {
            SweepEvent::TrialStarted {
                id, name, device, ..
            } => store.mark_running(id, name, device),
            SweepEvent::TrialFinished { trial, result } => {
                let saved = store.write_trial(trial, result);
                store.clear_running(&trial.id);
                saved
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
    match write_error {
        Some(e) => Err(e),
        None => Ok(results),
    }
}

/// The final table of a run: every trial of the plan with its stored status and metrics.
fn results_table(store: &Store, plan: &Plan) -> String {
    let headers: Vec<String> = [
        "name",
        "status",
        "test acc",
        "best val acc",
        "epochs",
        "seconds",
        "device",
    ]
    .map(String::from)
    .to_vec();
    let rows: Vec<Vec<String>> = plan
        .trials
        .iter()
        .map(|t| match store.load(&t.id) {
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
