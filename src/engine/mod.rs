//! Training one trial: the engine trait the scheduler calls, the device names, and the result a
//! trial returns. The burn implementation (models, optimizers, schedules, the loop) is generic
//! over the backend, so one binary trains on CPU (Flex) and on CUDA GPUs.

pub mod burn_engine;
pub mod closing;
pub mod early_stop;
pub mod epochs;
pub mod eval;
pub mod flex_tensors;
pub mod fused;
pub mod gpu_faults;
pub mod kernels;
pub mod loaded;
pub mod metrics;
pub mod model;
pub mod net_ops;
pub mod optim;
#[cfg(test)]
mod optim_tests;
pub mod probe;
pub mod resume;
pub mod schedule;
pub mod scripted;
pub mod tensor_conv;

use crate::config::TrialConfig;
use crate::error::{Error, Result};
use std::sync::atomic::AtomicBool;

pub use crate::trial::{EpochRow, MetricRow, Mistake, Status, Trial, TrialResult};
pub use burn_engine::BurnEngine;

pub use crate::devices::Device;

/// Progress a running trial reports.
#[derive(Debug, Clone)]
pub enum Progress {
    /// An epoch ended.
    Epoch(EpochRow),
    /// A program reported a row of metrics.
    Metrics(MetricRow),
}

/// What a trial is given besides its config: where it runs, how many CPU threads it may use,
/// where its progress goes, and the flag that asks it to stop.
pub struct TrialContext<'a> {
    /// The device of the trial's slot.
    pub device: Device,
    /// CPU threads the trial may use: fixed, or its share of the cores, which grows when other
    /// trials end (asked again at each epoch).
    pub threads: crate::cores::Threads,
    /// Called after every epoch.
    pub progress: &'a mut (dyn FnMut(Progress) + Send),
    /// Set when running trials must stop (second Ctrl-C, SIGTERM).
    pub cancel: &'a AtomicBool,
    /// Set when they must stop without a grace period (one interrupt more): a program's
    /// group is killed at once.
    pub stop_now: &'a AtomicBool,
    /// The trial's checkpoint (where it is, how often to write it, restarts so far); `None`
    /// where nothing is kept (benchmarks, probes, tests).
    pub checkpoint: Option<&'a crate::store::TrialCheckpoint>,
}

/// A `stop_now` flag that is never set, for contexts nobody interrupts (benchmarks, probes).
pub static NEVER: AtomicBool = AtomicBool::new(false);

impl TrialContext<'_> {
    /// True once the trial has been asked to stop.
    pub fn cancelled(&self) -> bool {
        self.cancel.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Where each member of a group's result goes when it ends: its position in the group as it
/// started.
pub type Done<'a> = &'a mut (dyn FnMut(usize, Result<TrialResult>) + Send);

/// Runs one trial: the built-in burn engine and the program runner (`crate::program`) are its
/// two implementations; the scheduler and the tests may use a scripted engine instead.
pub trait Engine: Send + Sync {
    /// Runs a trial to its end (or until cancelled, returning what it has with status
    /// `interrupted`) and returns what it measured; the scheduler stamps the trial's id, name
    /// and device. An `Err` is a failure of this trial only.
    fn run(&self, trial: &Trial, ctx: &mut TrialContext<'_>) -> Result<TrialResult>;

    /// Runs a group of trials that may train together (`--fuse`), each with its own context,
    /// and hands each member's result to `done` (with the member's position) as soon as that
    /// member ends. By default the members run one after another; the burn engine trains them
    /// as one fused model.
    fn run_group(&self, trials: &[Trial], ctxs: &mut [TrialContext<'_>], done: Done<'_>) {
        for (i, (trial, ctx)) in trials.iter().zip(ctxs.iter_mut()).enumerate() {
            let result = self.run(trial, ctx);
            done(i, result);
        }
    }
}

/// The built-in config of a trial, for engines that train built-in models.
pub fn builtin_config(trial: &Trial) -> Result<&TrialConfig> {
    trial.builtin().ok_or_else(|| {
        Error::Internal(format!(
            "trial `{}` runs a program, not a built-in model",
            trial.name
        ))
    })
}
