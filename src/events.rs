//! `SweepEvent`: the one contract between running a sweep and everything that watches it (the
//! progress display, the log, the store).

use crate::trial::{EpochRow, MetricRow, Trial, TrialId, TrialResult};

/// Something that happened in a sweep; watchers receive them in the order they happened.
#[derive(Debug, Clone)]
pub enum SweepEvent {
    /// The sweep begins: `total` trials in the plan, `skipped` already done on disk.
    Started {
        /// Trials in the plan, those already done included.
        total: usize,
        /// Trials already done on disk, not run again.
        skipped: usize,
        /// The slots trials run on, each as `device×threads` (e.g. `cpu×2t`).
        slots: Vec<String>,
    },
    /// A trial began on a device.
    TrialStarted {
        /// The trial's id.
        id: TrialId,
        /// The trial's readable name.
        name: String,
        /// The device it runs on, `cpu` or `cuda:N`.
        device: String,
        /// Epochs it is configured for (it may stop sooner).
        epochs: usize,
    },
    /// A running trial finished an epoch.
    TrialEpoch {
        /// The trial's id.
        id: TrialId,
        /// The trial's readable name.
        name: String,
        /// The device it runs on, `cpu` or `cuda:N`.
        device: String,
        /// The metrics of the epoch that just ended.
        row: EpochRow,
    },
    /// A running program reported a row of metrics.
    TrialMetrics {
        /// The trial's id.
        id: TrialId,
        /// The trial's readable name.
        name: String,
        /// The device it runs on, `cpu` or `cuda:N`.
        device: String,
        /// The metrics of the row, `epoch` or `step` among them when the program gave one.
        row: MetricRow,
    },
    /// A trial ended, in any status (ok, diverged, stopped_early, failed, interrupted, pruned).
    TrialFinished {
        /// The planned trial.
        trial: Box<Trial>,
        /// What it produced, stamped with its id, name and device.
        result: Box<TrialResult>,
    },
    /// Stopping, announced as soon as it is asked for: once when new trials stop (the first
    /// Ctrl-C), once more when running trials stop (the second Ctrl-C, or one SIGTERM), and
    /// once more when they are stopped without waiting (one interrupt more).
    Stopping {
        /// How far stopping has gone.
        stage: Stop,
    },
    /// The sweep is over: every slot's worker has finished.
    Done {
        /// Wall-clock seconds since the scheduler started.
        seconds: f64,
    },
}

/// The stages of stopping a sweep, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stop {
    /// Running as usual.
    No,
    /// No new trial starts; running ones finish.
    New,
    /// Running trials are asked to stop, each within its grace period.
    Running,
    /// Running trials are stopped without waiting: programs' groups get SIGKILL.
    Now,
}
