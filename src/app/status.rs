//! `hypersweep status`: counts by status, the trials running now (from their markers), the best
//! so far and the time spent, read only through the store.

use super::load_plan;
use crate::error::Result;
use crate::format::pct;
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
    if let Some((pid, true)) = store.lock_holder() {
        s += &format!("  a run is in progress (pid {pid})\n");
    }
    let (running, stale) = store.running();
    for r in &running {
        s += &format!("    running: {} on {} (pid {})\n", r.name, r.device, r.pid);
    }
    if stale > 0 {
        s += &format!(
            "  {stale} trial(s) were running in a process that is gone; rerun the sweep to finish them\n"
        );
    }
    let best = finished
        .iter()
        .filter(|f| f.result.test_accuracy.is_some())
        .max_by(|a, b| {
            let acc = |f: &crate::store::Finished| f.result.test_accuracy.unwrap_or(f64::NAN);
            acc(a).total_cmp(&acc(b))
        });
    if let Some(best) = best {
        s += &format!(
            "  best so far: {} — test accuracy {}\n",
            best.trial.name,
            pct(best.result.test_accuracy)
        );
    }
    for u in &unreadable {
        s += &format!("  skipped: {u}\n");
    }
    s += &format!("  time spent in trials: {seconds:.1} s\n");
    Ok(s)
}
