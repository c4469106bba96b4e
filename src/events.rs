//! `SweepEvent`: the one contract between running a sweep and everything that watches it (the
//! progress display, the log, the store).

use crate::engine::{EpochRow, TrialResult};

#[derive(Debug, Clone)]
pub enum SweepEvent {
    /// The sweep begins: `total` trials in the plan, `skipped` already done on disk.
    Started {
        total: usize,
        skipped: usize,
        slots: Vec<String>,
    },
    TrialStarted {
        id: String,
        name: String,
        device: String,
        epochs: usize,
    },
    TrialEpoch {
        id: String,
        name: String,
        device: String,
        row: EpochRow,
    },
    /// A trial ended, in any status (ok, diverged, stopped_early, failed, interrupted).
    TrialFinished(Box<TrialResult>),
    /// The first Ctrl-C: no new trials start.
    Stopping {
        hard: bool,
    },
    Done {
        seconds: f64,
    },
}
