//! `hypersweep run`: check the sweep and the flags, record the plan in the results directory
//! (or join the processes already working there), then train what is not done (`train.rs`).

use super::load_plan;
use super::train::{self, RunOutcome, check_data};
use crate::cli::{RunArgs, WorkerArgs};
use crate::engine::scripted::Scripted;
use crate::engine::{BurnEngine, Engine};
use crate::error::{Error, Result};
use crate::logging::LogFile;
use crate::program::ProgramRunner;
use crate::store::{Claims, Lock, Store, SweepInfo};
use std::collections::HashMap;
use std::sync::Arc;

/// Runs a sweep: its program, or the burn engine (the scripted one when
/// `HYPERSWEEP_ENGINE=scripted`).
pub fn run(args: &RunArgs, log: &LogFile) -> Result<RunOutcome> {
    run_sweep(args, log, None)
}

/// Runs a sweep of built-in trials with the given engine.
pub fn run_with(args: &RunArgs, log: &LogFile, engine: &Arc<dyn Engine>) -> Result<RunOutcome> {
    run_sweep(args, log, Some(engine))
}

/// `hypersweep worker DIR`: trains the unclaimed trials of a recorded sweep until none remain.
pub fn worker(args: &WorkerArgs, log: &LogFile) -> Result<RunOutcome> {
    let store = Store::open(&args.dir)?;
    let info = store.read_plan()?;
    let sizes = check_inputs(&info)?;
    check_flags(&args.train, info.trials.len())?;
    log.open(&store.dir().join("hypersweep.log"))?;
    let engine = runner(None, &info, &store);
    train::train_sweep(&store, &info, &engine, &args.train, &sizes)
}

/// What the trials read: the data of built-in ones (its sizes, for the cost estimates), the
/// directory and program of a program sweep.
fn check_inputs(info: &SweepInfo) -> Result<HashMap<String, crate::data::DataSummary>> {
    if let Some(p) = &info.program {
        crate::program::check_can_start(p)?;
    }
    check_data(&info.trials)
}

/// Device flags are checked before the directory is touched: a bad one must leave nothing
/// behind.
fn check_flags(args: &crate::cli::TrainArgs, trials: usize) -> Result<()> {
    args.slots.slots(trials).map(|_| ())
}

/// The runner of a sweep's trials: the given engine, the sweep's program, or a built-in one.
fn runner(given: Option<&Arc<dyn Engine>>, info: &SweepInfo, store: &Store) -> Arc<dyn Engine> {
    match (given, &info.program) {
        (Some(e), _) => e.clone(),
        (None, Some(p)) => Arc::new(ProgramRunner::new(p.clone(), store)),
        (None, None) => match Scripted::from_env() {
            Some(s) => Arc::new(s),
            None => Arc::new(BurnEngine),
        },
    }
}

fn run_sweep(args: &RunArgs, log: &LogFile, given: Option<&Arc<dyn Engine>>) -> Result<RunOutcome> {
    let (spec, plan) = load_plan(&args.file, args.data_dir.as_deref())?;
    let store = Store::new(&args.out, &plan.name);
    let info = SweepInfo::new(&plan, &spec);
    let sizes = check_inputs(&info)?;
    check_flags(&args.train, plan.trials.len())?;
    record_plan(&store, &info, &spec.source, args.fresh)?;
    log.open(&store.dir().join("hypersweep.log"))?;
    let live = args
        .serve
        .map(|port| serve_beside(&store, port))
        .transpose()?;
    let engine = runner(given, &info, &store);
    let outcome = train::train_sweep(&store, &info, &engine, &args.train, &sizes);
    if let Some(live) = live {
        live.settle();
    }
    outcome
}

/// `run --serve`: the live view of this sweep, served from a thread until the run ends.
fn serve_beside(store: &Store, port: Option<u16>) -> Result<crate::serve::Live> {
    let server = crate::serve::bind(&crate::serve::Options {
        dirs: vec![store.dir().to_path_buf()],
        host: "127.0.0.1".into(),
        port,
        eta: super::estimate::status_line,
    })?;
    crate::errln!("live view: {} (until the run ends)", server.url);
    Ok(server.spawn())
}

/// Writes the plan into the results directory, under its lock (held only for this): with
/// `--fresh` the old directory is moved aside first, which is refused while another process
/// trains there; a different plan than the one recorded is refused while others work on it
/// (without them it replaces it: an edited sweep file keeps the trials it still has).
pub(super) fn record_plan(
    store: &Store,
    info: &SweepInfo,
    source: &str,
    fresh: bool,
) -> Result<()> {
    // Nothing to start over from: taking the lock would create the directory just to move it.
    let fresh = fresh && store.dir().exists();
    let lock = Lock::wait(store.dir())?;
    let live = || {
        Claims::new(store.dir())
            .all()
            .into_iter()
            .filter(|f| f.live)
            .filter_map(|f| f.claim)
            .find(|c| c.pid != std::process::id() || c.host != crate::store::host_name())
    };
    if fresh {
        if let Some(c) = live() {
            return Err(Error::Locked {
                dir: store.dir().to_path_buf(),
                pid: c.pid,
            });
        }
        // Moved while locked: the lock moves with it, and the new directory gets its own.
        if let Some(moved) = store.move_aside()? {
            crate::errln!("moved the previous results to {}", moved.display());
        }
        drop(lock);
        let _lock = Lock::wait(store.dir())?;
        return store.write_plan(source, info);
    }
    // Proposals recorded since are not part of the plan a new run must match.
    if let Ok(recorded) = store.read_planned()
        && let Some(diff) = plan_difference(&recorded, info)
    {
        if let Some(c) = live() {
            return Err(Error::Input(format!(
                "{} holds a different plan ({diff}) and `{}` is training there (pid {} on {}); wait for it, or use another --out",
                store.dir().display(),
                c.name,
                c.pid,
                c.host
            )));
        }
        retire_proposals(store)?;
    }
    store.write_plan(source, info)
}

/// A new plan starts a new TPE sequence: the proposals of the old one (made for other settings)
/// are moved aside, never deleted, so that no run continues them as if they were this plan's.
fn retire_proposals(store: &Store) -> Result<()> {
    let file = store.dir().join(crate::store::PROPOSALS);
    if !file.exists() {
        return Ok(());
    }
    let aside = crate::store::move_aside(&file)?;
    crate::errln!(
        "the plan changed: its earlier TPE proposals were moved to {}",
        aside.display()
    );
    Ok(())
}

/// What differs between a recorded plan and a new one, in words; `None` when they match. When
/// a `fixed:` value changed, the same names have new ids: that value is named, not the names.
fn plan_difference(old: &SweepInfo, new: &SweepInfo) -> Option<String> {
    super::plan_diff::describe(old, new)
}
