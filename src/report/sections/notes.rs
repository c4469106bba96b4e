//! Notes: what a reader should not miss (failed, diverged, interrupted or unreadable trials,
//! trials at chance accuracy, and what the engine noted while training).

use super::super::{Block, Loaded};
use crate::format::pct;
use crate::trial::Status;

/// The notes heading and list, when there is anything to note.
pub fn section(l: &Loaded) -> Vec<Block> {
    let mut flags = vec![];
    for r in &l.rows {
        let x = &r.result;
        match x.status {
            Status::Failed => flags.push(format!(
                "**{}** failed: {}",
                r.name,
                x.error.clone().unwrap_or_default()
            )),
            Status::Diverged => flags.push(format!(
                "**{}** diverged (loss became NaN or infinite).",
                r.name
            )),
            Status::Interrupted => flags.push(format!(
                "**{}** was interrupted; rerun the sweep to finish it.",
                r.name
            )),
            Status::Pruned => flags.push(format!(
                "**{}** was pruned after epoch {} by the sweep's early termination.",
                r.name, x.epochs_run
            )),
            Status::Ok | Status::StoppedEarly => {}
        }
        if x.test_accuracy.is_some_and(|a| a < 0.2) && x.status != Status::Diverged {
            flags.push(format!(
                "**{}** did not learn: test accuracy {} is near chance (10%).",
                r.name,
                pct(x.test_accuracy)
            ));
        }
        for n in &x.notes {
            flags.push(format!("{}: {n}", r.name));
        }
    }
    for u in &l.unreadable {
        flags.push(format!("skipped an unreadable result: {u}"));
    }
    if flags.is_empty() {
        return vec![];
    }
    vec![
        Block::Heading(2, "Notes".into()),
        Block::Para(
            flags
                .iter()
                .map(|f| format!("- {f}"))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
    ]
}
