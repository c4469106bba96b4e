//! Training one trial: the engine trait the scheduler calls, the device names, and the result a
//! trial returns. The burn implementation (models, optimizers, schedules, the loop) is generic
//! over the backend, so one binary trains on CPU (Flex) and on CUDA GPUs.

pub mod burn_engine;
pub mod cnn_ops;
pub mod kernels;
pub mod model;
pub mod optim;
pub mod schedule;

use crate::data::DataSummary;
use crate::plan::Trial;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::atomic::AtomicBool;

pub use burn_engine::BurnEngine;

/// Where a trial trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Device {
    Cpu,
    Cuda(usize),
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Diverged,
    StoppedEarly,
    Failed,
    Interrupted,
}

impl Status {
    /// Finished trials a rerun keeps; failed and interrupted ones are retried on request.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Ok | Status::Diverged | Status::StoppedEarly)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Diverged => "diverged",
            Status::StoppedEarly => "stopped_early",
            Status::Failed => "failed",
            Status::Interrupted => "interrupted",
        }
    }
}

/// One row of epochs.csv.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct EpochRow {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub val_loss: Option<f64>,
    pub val_accuracy: Option<f64>,
    pub test_loss: Option<f64>,
    pub test_accuracy: Option<f64>,
    pub lr: f64,
    pub seconds: f64,
}

/// A misclassified test digit, kept with its pixels so the report can draw it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Mistake {
    /// Position in the trial's test split.
    pub index: usize,
    pub truth: u8,
    pub predicted: u8,
    /// Softmax probability of the predicted class.
    pub confidence: f64,
    /// 784 bytes as hex.
    pub pixels: String,
}

/// What a trial produced. Written as result.json; accuracies are fractions in [0, 1].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct TrialResult {
    pub id: String,
    pub name: String,
    pub status: Option<Status>,
    pub error: Option<String>,
    pub device: String,
    pub epochs_run: usize,
    pub test_loss: Option<f64>,
    pub test_accuracy: Option<f64>,
    pub train_loss: Option<f64>,
    pub train_accuracy: Option<f64>,
    pub best_val_loss: Option<f64>,
    pub best_val_accuracy: Option<f64>,
    pub best_epoch: Option<usize>,
    pub confusion_matrix: Vec<Vec<u64>>,
    pub per_class_accuracy: Vec<f64>,
    /// (true, predicted, count), most frequent first.
    pub most_confused: Vec<(u8, u8, u64)>,
    pub mistakes: Vec<Mistake>,
    pub inference_ms_per_batch_mean: Option<f64>,
    pub inference_ms_per_batch_std: Option<f64>,
    pub train_seconds: f64,
    pub total_seconds: f64,
    pub samples_per_second: Option<f64>,
    pub data: DataSummary,
    pub notes: Vec<String>,
    /// Training loss of every step, when `log_steps` is on.
    pub step_losses: Vec<f64>,
    #[serde(skip)]
    pub epochs: Vec<EpochRow>,
}

/// Progress a running trial reports.
#[derive(Debug, Clone)]
pub enum Progress {
    Epoch(EpochRow),
}

/// Trains one trial. The scheduler and the tests may use a scripted engine instead.
pub trait Engine: Send + Sync {
    /// Runs a trial to its end (or until `cancel` is set, returning what it has with status
    /// `interrupted`). An `Err` is a failure of this trial only.
    fn run(
        &self,
        trial: &Trial,
        device: Device,
        threads: usize,
        progress: &mut (dyn FnMut(Progress) + Send),
        cancel: &AtomicBool,
    ) -> Result<TrialResult, String>;
}
