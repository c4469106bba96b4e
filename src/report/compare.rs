//! `hypersweep report A B …`: two or more sweeps side by side, one table of every trial with
//! its sweep and one bar chart.

use super::{Block, export, load};
use crate::error::Result;
use crate::format::pct;
use std::path::{Path, PathBuf};

/// Two or more sweeps side by side: one table of every trial, with its sweep.
pub fn compare(dirs: &[PathBuf], out: &Path) -> Result<PathBuf> {
    let mut b = vec![Block::Heading(
        1,
        format!(
            "Comparison: {}",
            dirs.iter()
                .map(|d| d
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default())
                .collect::<Vec<_>>()
                .join(" vs ")
        ),
    )];
    let mut rows = vec![];
    let mut bars = vec![];
    for d in dirs {
        let l = load(d)?;
        for r in &l.rows {
            rows.push(vec![
                l.name.clone(),
                r.name.clone(),
                r.result.status.to_string(),
                pct(r.result.test_accuracy),
                pct(r.result.best_val_accuracy),
                r.result.epochs_run.to_string(),
                format!("{:.1}", r.result.total_seconds),
            ]);
            if let Some(a) = r.result.test_accuracy {
                bars.push((format!("{}: {}", l.name, r.name), a, 0.0));
            }
        }
    }
    // Best test accuracy first (the percentage text is parsed back; "–" sorts last).
    let key = |r: &Vec<String>| {
        r[3].trim_end_matches('%')
            .parse::<f64>()
            .unwrap_or(f64::NEG_INFINITY)
    };
    rows.sort_by(|a, c| key(c).total_cmp(&key(a)));
    bars.sort_by(|a, c| c.1.total_cmp(&a.1));
    b.push(Block::Table(
        [
            "sweep",
            "trial",
            "status",
            "test acc",
            "best val acc",
            "epochs",
            "seconds",
        ]
        .map(String::from)
        .to_vec(),
        rows,
        Some(0),
    ));
    b.push(Block::Plot(
        "compare-test-accuracy".into(),
        super::bars::bar_chart("Test accuracy", &bars, Some(0)),
    ));
    crate::store::create_dir(out)?;
    export::write_named(&b, out, "compare")?;
    Ok(out.join("compare.html"))
}
