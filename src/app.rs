//! What each command does, in order: read and check the sweep, plan, run, store, report.
//! Errors that are the user's (bad file, bad flag, missing data) are `UserError`s: exit code 1.

use crate::cli::RunArgs;
use crate::engine::{BurnEngine, Engine, Status, TrialResult};
use crate::events::SweepEvent;
use crate::plan::{self, Plan};
use crate::progress::Display;
use crate::scheduler::{self, Cancel};
use crate::spec::{Override, Pos, Spec};
use crate::store::{Lock, Store};
use crate::{data, devices, report};
use anyhow::{Context, Result};
use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A problem with the user's input (exit code 1), as opposed to an internal failure (2).
#[derive(Debug)]
pub struct UserError(pub String);

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for UserError {}

fn user(msg: impl Into<String>) -> anyhow::Error {
    UserError(msg.into()).into()
}

/// Reads, checks and expands a sweep file; `data_dir` replaces every trial's data.path.
pub fn load_plan(file: &Path, data_dir: Option<&Path>) -> Result<(Spec, Plan)> {
    let mut spec = Spec::load(file).map_err(|e| user(e.to_string()))?;
    if let Some(dir) = data_dir {
        spec.base.push(Override {
            key: "data.path".into(),
            value: serde_json::Value::String(dir.display().to_string()),
            pos: Pos::default(),
            section: "--data-dir".into(),
        });
    }
    let plan = plan::expand(&spec).map_err(|e| user(e.to_string()))?;
    Ok((spec, plan))
}

pub fn validate(file: &Path) -> Result<String> {
    let (_, plan) = load_plan(file, None)?;
    let n = plan.trials.len();
    Ok(format!("ok: {n} trial{}", if n == 1 { "" } else { "s" }))
}

pub fn plan_text(file: &Path, json: bool, data_dir: Option<&Path>) -> Result<String> {
    let (_, plan) = load_plan(file, data_dir)?;
    if json {
        let arr: Vec<serde_json::Value> = plan
            .trials
            .iter()
            .map(|t| {
                serde_json::json!({
                    "id": t.id,
                    "name": t.name,
                    "varied": t.varied.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<serde_json::Map<_, _>>(),
                    "params": t.config,
                })
            })
            .collect();
        return Ok(serde_json::to_string_pretty(&arr)?);
    }
    let mut headers = vec!["id".to_string(), "name".to_string()];
    headers.extend(plan.axes.iter().cloned());
    let rows: Vec<Vec<String>> = plan
        .trials
        .iter()
        .map(|t| {
            let mut r = vec![t.id.clone(), t.name.clone()];
            for a in &plan.axes {
                r.push(
                    t.varied
                        .iter()
                        .find(|(k, _)| k == a)
                        .map(|(_, v)| plan::value_text(v))
                        .unwrap_or_default(),
                );
            }
            r
        })
        .collect();
    let mut out = text_table(&headers, &rows);
    out += &format!("{} trials\n", plan.trials.len());
    Ok(out)
}

/// A plain aligned text table for the terminal.
pub fn text_table(headers: &[String], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: &[String]| -> String {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
            + "\n"
    };
    let mut s = line(headers);
    s += &line(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>());
    for r in rows {
        s += &line(r);
    }
    s
}

/// The outcome of `run`, for the exit code.
pub struct RunOutcome {
    pub failed: usize,
    pub interrupted: bool,
}

pub fn run(args: &RunArgs, log: &crate::logging::LogFile) -> Result<RunOutcome> {
    run_with(args, log, Arc::new(BurnEngine))
}

pub fn run_with(
    args: &RunArgs,
    log: &crate::logging::LogFile,
    engine: Arc<dyn Engine>,
) -> Result<RunOutcome> {
    let (spec, plan) = load_plan(&args.file, args.data_dir.as_deref())?;
    let store = Store::new(&args.out, &plan.name);
    // Data problems (a missing directory, a subset larger than the split) are the user's and
    // must show before anything trains; each distinct data setting is prepared once here.
    let mut seen = HashSet::new();
    let mut train_sizes = std::collections::HashMap::new();
    for t in &plan.trials {
        let key = (serde_json::to_string(&t.config.data)?, t.config.seed);
        if seen.insert(key.clone()) {
            let s = data::prepare(&t.config.data, t.config.seed)
                .map_err(|e| user(format!("trial `{}`: {e}", t.name)))?;
            train_sizes.insert(key, s.summary.train);
        }
    }
    if args.fresh
        && let Some(old) = store.move_aside()?
    {
        eprintln!("moved the previous results to {}", old.display());
    }
    let _lock = Lock::acquire(&store.dir).map_err(|e| {
        if e.to_string().contains("another `hypersweep run`") {
            user(e.to_string())
        } else {
            e
        }
    })?;
    log.open(&store.dir.join("hypersweep.log"))?;
    store.write_plan(&spec.source, &plan)?;

    let mut pending = vec![];
    let mut skipped = 0;
    for t in &plan.trials {
        let done = match store.load(&t.id) {
            Ok(Some(r)) => match r.status {
                Some(s) if s.is_final() => true,
                Some(Status::Failed) => !args.rerun_failed,
                _ => false,
            },
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(trial = %t.name, "unreadable stored result, training again: {e:#}");
                false
            }
        };
        if done {
            skipped += 1;
        } else {
            let key = (serde_json::to_string(&t.config.data)?, t.config.seed);
            let n = train_sizes.get(&key).copied().unwrap_or(0);
            pending.push((t.clone(), t.config.cost_estimate(n)));
        }
    }
    let slots = devices::parse(
        &args.devices,
        args.per_device,
        args.threads,
        pending.len(),
        &devices::cuda_device_count,
    )
    .map_err(user)?;

    let cancel = Arc::new(Cancel::default());
    {
        let c = cancel.clone();
        // A second registration in the same process (tests) is not an error worth failing on.
        let _ = ctrlc::set_handler(move || {
            c.press();
        });
    }
    let by_id: std::collections::HashMap<String, plan::Trial> = plan
        .trials
        .iter()
        .map(|t| (t.id.clone(), t.clone()))
        .collect();
    let mut display = Display::new(args.quiet, plan.trials.len());
    let mut write_error: Option<anyhow::Error> = None;
    let start = SweepEvent::Started {
        total: plan.trials.len(),
        skipped,
        slots: slots
            .iter()
            .map(|s| format!("{}×{}t", s.device, s.threads))
            .collect(),
    };
    display.event(&start);
    let results = scheduler::run(pending, engine, &slots, cancel.clone(), |ev| {
        if let SweepEvent::TrialFinished(r) = ev
            && let Some(t) = by_id.get(&r.id)
            && let Err(e) = store.write_trial(t, r)
        {
            tracing::error!("cannot save trial {}: {e:#}", r.name);
            write_error.get_or_insert(e);
        }
        display.event(ev);
    });
    display.finish();
    if let Some(e) = write_error {
        return Err(e.context("results could not be saved"));
    }
    let failed = results
        .iter()
        .filter(|r| r.status == Some(Status::Failed))
        .count();
    let interrupted = cancel.stop_new.load(std::sync::atomic::Ordering::SeqCst);
    if args.quiet {
        // The one line --quiet keeps: what happened and where it is.
        println!(
            "{}: {} trained ({} failed), {} already done — {}",
            plan.name,
            results.len(),
            failed,
            skipped,
            store.dir.display()
        );
    } else {
        print!("{}", results_table(&store, &plan)?);
    }
    if !args.no_report {
        let written = report::write(&store.dir).context("writing the report")?;
        if !args.quiet {
            println!("report: {}", written.display());
        }
    }
    Ok(RunOutcome {
        failed,
        interrupted,
    })
}

fn pct(v: Option<f64>) -> String {
    v.map(|x| format!("{:.2}%", 100.0 * x))
        .unwrap_or_else(|| "-".into())
}

/// The final table of a run: every trial of the plan with its stored status and metrics.
fn results_table(store: &Store, plan: &Plan) -> Result<String> {
    let headers: Vec<String> = [
        "name",
        "status",
        "test acc",
        "best val acc",
        "epochs",
        "seconds",
        "device",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut rows = vec![];
    for t in &plan.trials {
        let r: Option<TrialResult> = store.load(&t.id)?;
        rows.push(match r {
            Some(r) => vec![
                t.name.clone(),
                r.status.map(|s| s.as_str()).unwrap_or("?").to_string(),
                pct(r.test_accuracy),
                pct(r.best_val_accuracy),
                r.epochs_run.to_string(),
                format!("{:.1}", r.total_seconds),
                r.device.clone(),
            ],
            None => vec![
                t.name.clone(),
                "not run".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ],
        });
    }
    Ok(text_table(&headers, &rows))
}

/// `hypersweep status`: counts by status, running trials (from the log), best so far, time.
pub fn status(path: &Path, out_root: &Path) -> Result<String> {
    let dir: PathBuf = if path.is_file() {
        let (_, plan) = load_plan(path, None)?;
        out_root.join(&plan.name)
    } else {
        path.to_path_buf()
    };
    let store = Store::open(&dir)?;
    let planned: Vec<(String, String)> = std::fs::read_to_string(dir.join("plan.csv"))?
        .lines()
        .skip(1)
        .filter_map(|l| {
            let id = l.split(',').next()?.to_string();
            Some((id, l.to_string()))
        })
        .collect();
    let results = store.load_all()?;
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    let mut seconds = 0.0;
    let ids: HashSet<&str> = planned.iter().map(|(i, _)| i.as_str()).collect();
    for (_, r) in results.iter().filter(|(_, r)| ids.contains(r.id.as_str())) {
        *counts
            .entry(r.status.map(|s| s.as_str()).unwrap_or("?"))
            .or_default() += 1;
        seconds += r.total_seconds;
    }
    let done: usize = counts.values().sum();
    let mut s = format!("{}: {} trials planned\n", dir.display(), planned.len());
    for (k, v) in &counts {
        s += &format!("  {k:<14} {v}\n");
    }
    s += &format!(
        "  {:<14} {}\n",
        "not finished",
        planned.len().saturating_sub(done)
    );
    let lock = dir.join(".lock");
    if let Ok(text) = std::fs::read_to_string(&lock) {
        let pid = text.lines().next().unwrap_or("?");
        let live = Path::new(&format!("/proc/{pid}")).exists();
        s += &format!(
            "  a run is {} (pid {pid})\n",
            if live {
                "in progress"
            } else {
                "recorded but its process is gone"
            }
        );
        if live {
            for name in crate::logging::running_trials(&dir.join("hypersweep.log")) {
                s += &format!("    running: {name}\n");
            }
        }
    }
    if let Some((_, best)) = results
        .iter()
        .filter(|(_, r)| r.test_accuracy.is_some() && ids.contains(r.id.as_str()))
        .max_by(|a, b| {
            a.1.test_accuracy
                .partial_cmp(&b.1.test_accuracy)
                .unwrap_or(std::cmp::Ordering::Equal)
        })
    {
        s += &format!(
            "  best so far: {} — test accuracy {}\n",
            best.name,
            pct(best.test_accuracy)
        );
    }
    s += &format!("  time spent in trials: {seconds:.1} s\n");
    Ok(s)
}
