//! The cost estimate of `plan` and the ETA of `status` (`crate::estimate` does the arithmetic):
//! the sizes of each trial's data, speeds from the finished trials of the results directory or
//! else a short probe on this machine, and the scheduler's order over the run's slots.

use super::train::{self, data_key, is_done};
use crate::config::TrialConfig;
use crate::data::{self, DataSummary};
use crate::engine::Device;
use crate::engine::scripted::Scripted;
use crate::error::Result;
use crate::estimate::{Calibration, Work, eta_text, flop_text, list_schedule, shape_key, work};
use crate::plan::Plan;
use crate::scheduler::Slot;
use crate::store::{Finished, Store, SweepInfo};
use crate::trial::Trial;
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

/// The probe's time over all shapes it measures, in seconds (each shape gets a share, at least
/// 0.05 s and at most 0.3 s, plus one warm-up step).
const PROBE_BUDGET: f64 = 1.2;
/// The most shapes the probe measures (those with the most work); the others take the FLOP rate
/// of the same kind of model measured at the nearest batch size.
const MAX_PROBES: usize = 6;

/// How the sweep would run: what `run` would be given.
pub struct Options<'a> {
    /// `--devices`, `--per-device`, `--threads`.
    pub slots: &'a crate::cli::SlotArgs,
    /// The results root: the sweep's finished trials there are skipped and calibrate.
    pub out: &'a Path,
}

/// One trial's estimate.
pub struct TrialEstimate {
    /// FLOPs of training and evaluation (built-in trials).
    pub flop: Option<f64>,
    /// Estimated seconds, when a speed is known.
    pub seconds: Option<f64>,
    /// The results directory already holds it: `run` skips it.
    pub done: bool,
}

impl TrialEstimate {
    /// The table cell: `~24 s`, `done` or `?`.
    pub fn cell(&self) -> String {
        match (self.done, self.seconds) {
            (true, _) => "done".into(),
            (false, Some(s)) => eta_text(s),
            (false, None) => "?".into(),
        }
    }
}

/// The estimate of a whole sweep: per trial, and the summary line.
pub struct SweepEstimate {
    /// In plan order.
    pub trials: Vec<TrialEstimate>,
    /// `estimate: …`, ending in a newline.
    pub summary: String,
}

/// Where speeds came from, in words, for the summary.
#[derive(Default)]
struct Sources {
    finished: usize,
    /// ` in DIR`, naming the results directory of the finished trials (empty in `status`,
    /// which has named it already).
    dir: String,
    /// Mean seconds of the finished program trials.
    program_mean: Option<f64>,
    /// Shapes probed and the seconds the probe took.
    probe: Option<(usize, f64)>,
    /// Why nothing was probed, when that matters.
    no_probe: Option<&'static str>,
}

/// `plan`'s estimate: each trial's work and time, and the wall time of the pending ones over
/// the slots `run` would get. Data and device problems are errors before anything is probed.
pub fn for_plan(plan: &Plan, opts: &Options<'_>) -> Result<SweepEstimate> {
    let sizes = train::check_data(&plan.trials)?;
    let store = Store::open(&opts.out.join(&plan.name)).ok();
    let done: Vec<bool> = plan
        .trials
        .iter()
        .map(|t| store.as_ref().is_some_and(|s| is_done(s, t, false)))
        .collect();
    let pending: Vec<&Trial> = plan
        .trials
        .iter()
        .zip(&done)
        .filter(|(_, d)| !**d)
        .map(|(t, _)| t)
        .collect();
    let slots = opts.slots.slots(pending.len())?;
    let mut cal = Calibration::default();
    let mut sources = Sources::default();
    if let Some(store) = &store
        && let Ok((_, finished, _)) = store.read_sweep()
    {
        learn_finished(&finished, Some(&slots[0].device), &mut cal, &mut sources);
        sources.dir = format!(" in {}", store.dir().display());
    }
    let works: Vec<Option<Work>> = plan
        .trials
        .iter()
        .map(|t| Some(work(t.builtin()?, sizes.get(&data_key(t))?)))
        .collect();
    probe(
        &plan.trials,
        (&works[..], &done[..]),
        &slots,
        &mut cal,
        &mut sources,
    )?;
    let threads = slots[0].threads;
    let trials: Vec<TrialEstimate> = plan
        .trials
        .iter()
        .zip(&works)
        .zip(&done)
        .map(|((t, w), &done)| TrialEstimate {
            flop: w.map(|w| w.flop()),
            seconds: trial_seconds(t, w.as_ref(), &cal, &sources, threads),
            done,
        })
        .collect();
    let summary = plan_summary(plan, (&trials[..], &sizes), &slots, &cal, &sources);
    Ok(SweepEstimate { trials, summary })
}

/// A trial's estimated seconds: a built-in one's from its work, a program's the mean of the
/// finished program trials.
fn trial_seconds(
    t: &Trial,
    w: Option<&Work>,
    cal: &Calibration,
    sources: &Sources,
    threads: usize,
) -> Option<f64> {
    match (t.builtin(), w) {
        (Some(cfg), Some(w)) => cal.seconds(cfg, w, threads),
        (Some(_), None) => None,
        (None, _) => sources.program_mean,
    }
}

/// Learns the speeds of finished trials (those that ran on `device`'s kind, when given: a CPU
/// speed says nothing of a GPU's).
fn learn_finished(
    finished: &[Finished],
    device: Option<&Device>,
    cal: &mut Calibration,
    sources: &mut Sources,
) {
    let class = |d: &str| d.split(':').next().unwrap_or_default().to_string();
    let wanted = device.map(|d| class(&d.to_string()));
    let mut program = vec![];
    for f in finished {
        if wanted
            .as_ref()
            .is_some_and(|w| *w != class(&f.result.device))
        {
            continue;
        }
        match f.trial.builtin() {
            Some(cfg) if cal.add_finished(cfg, &f.result) => sources.finished += 1,
            Some(_) => {}
            None if f.result.status.is_final() && f.result.total_seconds.is_finite() => {
                program.push(f.result.total_seconds);
                sources.finished += 1;
            }
            None => {}
        }
    }
    if !program.is_empty() {
        sources.program_mean = Some(program.iter().sum::<f64>() / program.len() as f64);
    }
}

/// Probes, on CPU with the slots' threads and as many trials at once as the run will have, the
/// shapes of the pending trials that no finished trial measured (those with the most work
/// first), and times one trial's data preparation.
fn probe(
    trials: &[Trial],
    (works, done): (&[Option<Work>], &[bool]),
    slots: &[Slot],
    cal: &mut Calibration,
    sources: &mut Sources,
) -> Result<()> {
    if Scripted::from_env().is_some() {
        sources.no_probe = Some("the scripted engine trains here");
        return Ok(());
    }
    if slots[0].device != Device::Cpu {
        sources.no_probe = Some("the probe runs on CPU only");
        return Ok(());
    }
    let mut shapes: Vec<(String, &TrialConfig, usize, f64)> = vec![];
    for ((t, w), _) in trials.iter().zip(works).zip(done).filter(|(_, d)| !**d) {
        let (Some(cfg), Some(w)) = (t.builtin(), w) else {
            continue;
        };
        if cal.knows(cfg, w.batch) {
            continue;
        }
        let key = shape_key(cfg, w.batch);
        match shapes.iter_mut().find(|s| s.0 == key) {
            Some(s) => s.3 += w.train_flop,
            None => shapes.push((key, cfg, w.batch, w.train_flop)),
        }
    }
    if shapes.is_empty() {
        return Ok(());
    }
    shapes.sort_by(|a, b| b.3.total_cmp(&a.3));
    shapes.truncate(MAX_PROBES);
    let started = Instant::now();
    let pending = done.iter().filter(|d| !**d).count();
    let (threads, together) = (slots[0].threads, slots.len().min(pending).max(1));
    let budget = (PROBE_BUDGET / shapes.len() as f64).clamp(0.05, 0.3);
    for (_, cfg, batch, _) in &shapes {
        let step = side_by_side(cfg, *batch, threads, budget, together)?;
        cal.add_steps(cfg, *batch, step, 1.0, threads);
    }
    if let Some(cfg) = trials.iter().find_map(Trial::builtin) {
        let t0 = Instant::now();
        data::prepare(&cfg.data, cfg.seed)?;
        cal.add_overhead(t0.elapsed().as_secs_f64());
    }
    sources.probe = Some((shapes.len(), started.elapsed().as_secs_f64()));
    Ok(())
}

/// The mean step time of `together` probes of one shape running at once, as trials share the
/// machine in the run.
fn side_by_side(
    cfg: &TrialConfig,
    batch: usize,
    threads: usize,
    budget: f64,
    together: usize,
) -> Result<f64> {
    let times: Vec<Result<f64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..together)
            .map(|_| {
                s.spawn(|| crate::engine::probe::cpu_step_seconds(cfg, batch, threads, budget))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(crate::error::Error::Internal("the probe panicked".into()))
                })
            })
            .collect()
    });
    let times = times.into_iter().collect::<Result<Vec<f64>>>()?;
    Ok(times.iter().sum::<f64>() / times.len() as f64)
}

/// `cpu (2 slots × 1 thread)`, `cuda:0, cuda:1 (4 slots)`.
fn slots_text(slots: &[Slot]) -> String {
    let mut devices: Vec<String> = vec![];
    for s in slots {
        let d = s.device.to_string();
        if !devices.contains(&d) {
            devices.push(d);
        }
    }
    let n = slots.len();
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    if slots.iter().all(|s| s.device == Device::Cpu) {
        let t = slots[0].threads;
        format!("cpu ({n} slot{} × {t} thread{})", plural(n), plural(t))
    } else {
        format!("{} ({n} slot{})", devices.join(", "), plural(n))
    }
}

/// Where the speeds came from, in words.
fn sources_text(cal: &Calibration, sources: &Sources) -> String {
    let mut from = vec![];
    if sources.finished > 0 {
        from.push(format!(
            "{} finished trial{}{}",
            sources.finished,
            if sources.finished == 1 { "" } else { "s" },
            sources.dir
        ));
    }
    if let Some((n, secs)) = sources.probe {
        from.push(format!(
            "a {secs:.1} s probe of {n} shape{} on this machine",
            if n == 1 { "" } else { "s" }
        ));
    }
    let speeds: Vec<String> = cal
        .speeds()
        .iter()
        .map(|(kind, lo, hi)| {
            let kind = format!("{kind:?}").to_lowercase();
            if hi / lo < 1.05 {
                format!("{kind} {:.0} GFLOP/s", hi / 1e9)
            } else {
                format!("{kind} {:.0}–{:.0} GFLOP/s", lo / 1e9, hi / 1e9)
            }
        })
        .collect();
    let mut s = format!("speeds from {}", from.join(" and "));
    if !speeds.is_empty() {
        s += &format!(" ({} per trial)", speeds.join(", "));
    }
    s
}

/// The summary line of `plan`'s estimate.
fn plan_summary(
    plan: &Plan,
    (trials, sizes): (&[TrialEstimate], &HashMap<String, DataSummary>),
    slots: &[Slot],
    cal: &Calibration,
    sources: &Sources,
) -> String {
    let mut pending: Vec<(&Trial, &TrialEstimate)> = plan
        .trials
        .iter()
        .zip(trials)
        .filter(|(_, e)| !e.done)
        .collect();
    let done = trials.len() - pending.len();
    if pending.is_empty() {
        return format!("estimate: nothing to train, all {done} trials are done\n");
    }
    // The scheduler's order: most expensive first (a stable sort, as the scheduler's).
    pending.sort_by(|a, b| train::cost(b.0, sizes).total_cmp(&train::cost(a.0, sizes)));
    let flop: f64 = pending.iter().filter_map(|(_, e)| e.flop).sum();
    let n = pending.len();
    let mut s = format!("estimate: {n} trial{}", if n == 1 { "" } else { "s" });
    if done > 0 {
        s += &format!(" to train ({done} done)");
    }
    if flop > 0.0 {
        s += &format!(", {}", flop_text(flop));
    }
    let seconds: Option<Vec<f64>> = pending.iter().map(|(_, e)| e.seconds).collect();
    match seconds {
        Some(d) => {
            // Slots beyond the trials stay idle: say what will run at once.
            let slots = &slots[..slots.len().min(n)];
            let cores = slots[0].share.as_ref().map(|c| c.cores());
            let wall = list_schedule(&d, slots.len(), &[], cores);
            let longest = d.iter().copied().fold(0.0, f64::max);
            // Its time at a full machine's share; a sweep's tail gives it more cores.
            let tail = if wall < longest {
                " at that share, less once the trials beside it end"
            } else {
                ""
            };
            s += &format!(
                ", {} on {}, the longest trial {}{tail}; {}",
                eta_text(wall),
                slots_text(slots),
                eta_text(longest),
                sources_text(cal, sources)
            );
            if pending
                .iter()
                .any(|(t, _)| t.builtin().is_some_and(|c| c.early_stopping.enabled))
            {
                s += "; early stopping may end trials sooner";
            }
        }
        None => {
            let why = match (pending[0].0.builtin(), sources.no_probe) {
                (None, _) => "program trials take unknown time until one has finished",
                (Some(_), Some(why)) => why,
                (Some(_), None) => "no speed measured for some models",
            };
            s += &format!(", time unknown on {} ({why})", slots_text(slots));
        }
    }
    s + "\n"
}

/// The `eta` line of `status`: the trials not finished, over as many slots as trials run now
/// (the running ones with the time they have left), at the speeds of the finished trials.
pub fn status_line(store: &Store, info: &SweepInfo, finished: &[Finished]) -> String {
    let mut cal = Calibration::default();
    let mut sources = Sources::default();
    learn_finished(finished, None, &mut cal, &mut sources);
    let done: Vec<&str> = finished.iter().map(|f| f.trial.id.as_str()).collect();
    let left: Vec<&Trial> = info
        .trials
        .iter()
        .filter(|t| !done.contains(&t.id.as_str()))
        .collect();
    if left.is_empty() {
        return String::new();
    }
    let sizes = known_sizes(finished, &left);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let running: HashMap<String, f64> = store
        .claims()
        .into_iter()
        .filter(|f| f.live)
        .filter_map(|f| f.claim)
        .map(|c| (c.id.to_string(), (now - c.started as f64).max(0.0)))
        .collect();
    let estimate = |t: &Trial| {
        let w = t
            .builtin()
            .and_then(|c| Some(work(c, sizes.get(&data_key(t))?)));
        trial_seconds(t, w.as_ref(), &cal, &sources, 0)
    };
    let (mut busy, mut queued) = (vec![], vec![]);
    for t in &left {
        let Some(s) = estimate(t) else {
            let kind = t.builtin().map_or("program".into(), |c| {
                format!("{:?}", c.model.kind).to_lowercase()
            });
            return format!(
                "  {:<14} unknown until a {kind} trial of this sweep has finished\n",
                "eta"
            );
        };
        match running.get(t.id.as_str()) {
            Some(elapsed) => busy.push((s - elapsed).max(0.0)),
            None => queued.push((train::cost(t, &sizes), s)),
        }
    }
    queued.sort_by(|a, b| b.0.total_cmp(&a.0));
    let durations: Vec<f64> = queued.iter().map(|q| q.1).collect();
    let slots = busy.len().max(1);
    // How the running process shares its cores is not known here: no tail speed-up.
    let eta = list_schedule(&durations, slots, &busy, None);
    let now_running = if busy.is_empty() {
        "nothing running now: on one slot when run again".to_string()
    } else {
        format!("{} running", busy.len())
    };
    format!(
        "  {:<14} {} ({} of {} left, {now_running}; {})\n",
        "eta",
        eta_text(eta),
        left.len(),
        info.trials.len(),
        sources_text(&cal, &sources)
    )
}

/// The data sizes of the trials left: those of a finished trial with the same data setting,
/// else prepared here (the source is read once).
fn known_sizes(finished: &[Finished], left: &[&Trial]) -> HashMap<String, DataSummary> {
    let mut sizes: HashMap<String, DataSummary> = finished
        .iter()
        .map(|f| (data_key(&f.trial), f.result.data.clone()))
        .collect();
    for t in left {
        let Some(cfg) = t.builtin() else { continue };
        let key = data_key(t);
        if !sizes.contains_key(&key)
            && let Ok(s) = data::prepare(&cfg.data, cfg.seed)
        {
            sizes.insert(key, s.summary);
        }
    }
    sizes
}
