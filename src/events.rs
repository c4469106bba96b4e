//! `SweepEvent`: the one contract between running a sweep and everything that watches it (the
//! progress display, the log, the store).

use crate::trial::{EpochRow, Trial, TrialId, TrialResult};

#[derive(Debug, Clone)]
pub enum SweepEvent {
    /// The sweep begins: `total` trials in the plan, `skipped` already done on disk.
    Started {
        total: usize,
        skipped: usize,
        slots: Vec<String>,
    },
    /// A trial began on a device.
    TrialStarted {
        id: TrialId,
        name: String,
        device: String,
        epochs: usize,
    },
    /// A running trial finished an epoch.
    TrialEpoch {
        id: TrialId,
        name: String,
        device: String,
        row: EpochRow,
    },
    /// A trial ended, in any status (ok, diverged, stopped_early, failed, interrupted).
    TrialFinished {
        /// The planned trial.
        trial: Box<Trial>,
        /// What it produced, stamped with its id, name and device.
        result: Box<TrialResult>,
    },
    /// The first Ctrl-C: no new trials start.
    Stopping {
        hard: bool,
    },
    Done {
        seconds: f64,
    },
}
