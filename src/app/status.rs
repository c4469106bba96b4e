//! `hypersweep status`: counts by status, the trials running now (from their markers), the best
//! so far and the time spent, read only through the store.

use super::load_plan;
use crate::error::Result;
use crate::format::metric_text;
use crate::spec::Goal;
use crate::store::Store;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The status text of a results directory (or of the sweep file's results under `out_root`).
pub fn status(path: &Path, out_root: &Path) -> Result<String> {
    let dir: PathBuf = if path.is_file() {
        let (_, plan) = load_plan(path, None)?;
        out_root.join(&plan.name)
    } else {
        path.to_path_buf()
    };
    let store = Store::open(&dir)?;
    let (info, finished, unreadable) = store.read_sweep()?;
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &finished {
        *counts.entry(f.result.status.as_str()).or_default() += 1;
    }
    // A fold from +0.0: an empty f64 sum is -0.0, which prints as "-0.0 s".
    let seconds = finished.iter().fold(0.0, |t, f| t + f.result.total_seconds);
    let mut s = format!("{}: {} trials planned\n", dir.display(), info.trials.len());
    for (k, v) in &counts {
        s += &format!("  {k:<14} {v}\n");
    }
    if !unreadable.is_empty() {
        s += &format!("  {:<14} {}\n", "unreadable", unreadable.len());
    }
    s += &format!(
        "  {:<14} {}\n",
        "not finished",
        info.trials.len().saturating_sub(finished.len())
    );
    // An interrupted trial trains again on the next run: it has a result but is not done.
    let done = finished
        .iter()
        .filter(|f| f.result.status.is_done(false))
        .count();
    s += &claims_text(&store, done, info.trials.len());
    s += &super::estimate::status_line(&store, &info, &finished);
    s += &super::submit::squeue_text(&dir).unwrap_or_default();
    // Built-in sweeps show test accuracy; a program's sweep its own metric and goal.
    let metric = match &info.program {
        Some(_) => info.report.metric.clone(),
        None => "test_accuracy".to_string(),
    };
    let sign = match (&info.program, info.report.goal()) {
        (Some(_), Goal::Minimize) => -1.0,
        _ => 1.0,
    };
    let value = |f: &crate::store::Finished| {
        f.result
            .metric(&metric)
            .filter(|v| v.is_finite())
            .map(|v| v * sign)
    };
    let best = finished
        .iter()
        .filter(|f| value(f).is_some())
        .max_by(|a, b| {
            value(a)
                .unwrap_or(f64::NAN)
                .total_cmp(&value(b).unwrap_or(f64::NAN))
        });
    if let Some(best) = best {
        s += &format!(
            "  best so far: {} — {} {}\n",
            best.trial.name,
            metric.replace('_', " "),
            metric_text(&metric, best.result.metric(&metric))
        );
    }
    for u in &unreadable {
        s += &format!("  skipped: {u}\n");
    }
    s += &format!("  time spent in trials: {seconds:.1} s\n");
    Ok(s)
}

/// The claims: which trial trains where (host, pid, Slurm task), stale claims, what remains
/// (the planned trials not `done`).
fn claims_text(store: &Store, done: usize, planned: usize) -> String {
    let mut claims = store.claims();
    claims.sort_by(|a, b| {
        let name = |f: &crate::store::Found| f.claim.as_ref().map(|c| c.name.clone());
        name(a).cmp(&name(b))
    });
    let live: Vec<_> = claims.iter().filter(|f| f.live).collect();
    let mut s = String::new();
    for f in &live {
        let Some(c) = &f.claim else { continue };
        let slurm = match (&c.slurm_job, &c.slurm_task) {
            (Some(j), Some(t)) => format!(", Slurm job {j} task {t}"),
            (Some(j), None) => format!(", Slurm job {j}"),
            _ => String::new(),
        };
        s += &format!(
            "    running: {} on {} ({}, pid {}{slurm}; heartbeat {:.0} s ago)\n",
            c.name, c.device, c.host, c.pid, f.age
        );
    }
    let stale = claims.len() - live.len();
    if stale > 0 {
        s += &format!(
            "  {stale} claim(s) left by processes that are gone or silent; the next run or worker takes them over\n"
        );
    }
    s += &format!(
        "  {:<14} {} ({} running now)\n",
        "remaining",
        planned.saturating_sub(done),
        live.len()
    );
    s
}
