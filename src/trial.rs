//! The trial vocabulary every room shares: a planned `Trial` and its `TrialId`, the `Status` it
//! ended in, and the `TrialResult` (with its `EpochRow`s and `Mistake`s) that `result.json` holds.

use crate::config::TrialConfig;
use crate::data::DataSummary;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;

/// A trial's stable id: a short hash of its fully resolved config (see `trial_id`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TrialId(pub String);

impl TrialId {
    /// The id as text (also the name of its directory under `trials/`).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TrialId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One trial to run: its stable id, readable name, the values that vary, and the resolved config.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Trial {
    /// Hash of the resolved config.
    pub id: TrialId,
    /// Readable name built from the varied values (`batch_size=8,learning_rate=0.1`).
    pub name: String,
    /// Only the keys the sweep varies (grid, zip, named-trial overrides, seed), in axis order.
    pub varied: Vec<(String, Value)>,
    /// What the trial runs: a built-in model's config or the user's program with its parameters.
    pub config: TrialKind,
}

impl Trial {
    /// The value of a varied key, if the sweep varies it.
    pub fn varied_value(&self, key: &str) -> Option<&Value> {
        self.varied.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The built-in model's config, when the trial is not a program.
    pub fn builtin(&self) -> Option<&TrialConfig> {
        match &self.config {
            TrialKind::Builtin(c) => Some(c.as_ref()),
            TrialKind::Program(_) => None,
        }
    }

    /// Epochs the trial is configured for: the built-in `epochs`, or a program's `epochs`
    /// parameter when it has one (progress bars only).
    pub fn epochs(&self) -> Option<usize> {
        match &self.config {
            TrialKind::Builtin(c) => Some(c.epochs),
            TrialKind::Program(p) => p
                .params
                .get("epochs")
                .and_then(Value::as_u64)
                .map(|e| e as usize),
        }
    }
}

/// What a trial runs. Stored untagged, so a built-in trial's `config` in plan.json and
/// config.json is the same object as before programs existed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum TrialKind {
    /// One of hypersweep's MNIST models, trained in process.
    Builtin(Box<TrialConfig>),
    /// The user's program, run as a child process.
    Program(ProgramTrial),
}

/// A program trial: the command as written (placeholders unfilled) and the trial's parameters.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProgramTrial {
    /// The argument vector with `{key}` placeholders, filled when the trial starts.
    pub command: Vec<String>,
    /// Free-form parameters (nested objects for dotted keys); `seed` is always present.
    pub params: Map<String, Value>,
}

/// One row of metrics a program reported: metric name → value (`epoch` or `step` among them).
pub type MetricRow = BTreeMap<String, f64>;

/// How a trial ended.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Trained to the end.
    Ok,
    /// The loss became non-finite.
    Diverged,
    /// Early stopping ended it.
    StoppedEarly,
    /// An error, a panic or a failed write; never trusted as done unless asked.
    /// Also the default: a result nobody set a status on is not a success.
    #[default]
    Failed,
    /// Stopped by Ctrl-C or SIGTERM; trained again on the next run.
    Interrupted,
    /// Stopped by the sweep's `early_terminate` rule after a weak epoch; final, like `ok`.
    Pruned,
}

impl Status {
    /// Finished trials a rerun keeps (a pruned one too: the rule that stopped it would stop it
    /// again); failed and interrupted ones are retried on request.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Status::Ok | Status::Diverged | Status::StoppedEarly | Status::Pruned
        )
    }

    /// A trial with this result is done, not trained again by a rerun: final, or failed unless
    /// the rerun retries failed trials.
    pub fn is_done(self, rerun_failed: bool) -> bool {
        self.is_final() || (self == Status::Failed && !rerun_failed)
    }

    /// The name written in tables and result.json.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Diverged => "diverged",
            Status::StoppedEarly => "stopped_early",
            Status::Failed => "failed",
            Status::Interrupted => "interrupted",
            Status::Pruned => "pruned",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// FNV-1a, 64 bits: tiny, stable across platforms and releases (unlike std's hasher).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The id of a trial: a short hash of its fully resolved config (a program's: its parameters
/// and command). serde_json's map is ordered by key, so the order of keys in the YAML file does
/// not matter; a built-in config hashes as it did before programs existed.
pub fn trial_id(config: &TrialKind) -> String {
    let canonical = serde_json::to_string(&serde_json::to_value(config).expect("config is JSON"))
        .expect("JSON value serialises");
    format!("{:012x}", fnv1a(canonical.as_bytes()) >> 16)
}

pub use crate::format::value_text;

/// The per-epoch metrics of built-in trials (columns of epochs.csv).
pub const EPOCH_METRICS: &[&str] = &[
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "test_loss",
    "test_accuracy",
];

/// One row of epochs.csv.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct EpochRow {
    /// 1-based.
    pub epoch: usize,
    /// Mean minibatch loss over the epoch.
    pub train_loss: f64,
    /// Fraction of training samples classified right during the epoch.
    pub train_accuracy: f64,
    /// Validation loss, when there is a validation split.
    pub val_loss: Option<f64>,
    /// Validation accuracy, when there is a validation split.
    pub val_accuracy: Option<f64>,
    /// Test loss, with `test_each_epoch`.
    pub test_loss: Option<f64>,
    /// Test accuracy, with `test_each_epoch`.
    pub test_accuracy: Option<f64>,
    /// Learning rate used in this epoch.
    pub lr: f64,
    /// Wall time of the epoch, evaluation included.
    pub seconds: f64,
    /// CPU threads the epoch ran on (built-in trials; more than at the start once other trials
    /// have ended and left their cores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
}

/// A misclassified test digit, kept with its pixels so the report can draw it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Mistake {
    /// Position in the trial's test split.
    pub index: usize,
    /// The right class.
    pub truth: u8,
    /// What the model said.
    pub predicted: u8,
    /// Softmax probability of the predicted class.
    #[serde(deserialize_with = "nan_for_null::one")]
    pub confidence: f64,
    /// 784 bytes as hex.
    pub pixels: String,
}

/// The group of trials a fused trial trained with (`--fuse`): an execution detail, the trial's
/// numbers are its own.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct FusedGroup {
    /// The group's name: its first member's id.
    pub group: TrialId,
    /// How many trials started in the group.
    pub size: usize,
    /// The group's members, in order.
    pub members: Vec<TrialId>,
}

/// What a trial produced. Written as result.json; accuracies are fractions in [0, 1].
/// The engine fills in what it measured; the scheduler stamps `id`, `name` and `device`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct TrialResult {
    /// The trial's id (stamped by the scheduler).
    pub id: TrialId,
    /// The trial's readable name (stamped by the scheduler).
    pub name: String,
    /// How the trial ended.
    pub status: Status,
    /// Why the trial failed (the error or panic text); `None` unless it failed.
    pub error: Option<String>,
    /// The device it ran on, `cpu` or `cuda:N` (stamped by the scheduler).
    pub device: String,
    /// CPU threads the trial ran on: its slot's, or the mean of its epochs' when its share of
    /// the cores changed (stamped by the scheduler; absent in results of older versions). Cost
    /// estimates scale measured speeds by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    /// Epochs completed: fewer than configured when it stopped early, diverged or was interrupted.
    pub epochs_run: usize,
    /// Mean cross-entropy per test sample of the final model (the best epoch's weights with
    /// `restore_best`); `None` when interrupted.
    pub test_loss: Option<f64>,
    /// Fraction of test samples that model classifies right, in [0, 1]; `None` when interrupted.
    pub test_accuracy: Option<f64>,
    /// Last epoch's training loss: the mean of its minibatch losses (dropout on, as trained).
    pub train_loss: Option<f64>,
    /// Last epoch's training accuracy, in [0, 1], counted on its minibatches while training.
    pub train_accuracy: Option<f64>,
    /// Lowest validation loss over the epochs; `None` without a validation split.
    pub best_val_loss: Option<f64>,
    /// Highest validation accuracy over the epochs, in [0, 1] (not necessarily at `best_epoch`);
    /// `None` without a validation split.
    pub best_val_accuracy: Option<f64>,
    /// The 1-based epoch of `best_val_loss`; `None` without a validation split.
    pub best_epoch: Option<usize>,
    /// Test counts, 10 × 10, indexed `[true digit][predicted digit]`; empty when not evaluated.
    pub confusion_matrix: Vec<Vec<u64>>,
    /// Per digit 0–9, the fraction of its test samples classified right (recall), in [0, 1].
    #[serde(deserialize_with = "nan_for_null::vec")]
    pub per_class_accuracy: Vec<f64>,
    /// (true, predicted, count), most frequent first.
    pub most_confused: Vec<(u8, u8, u64)>,
    /// Up to 25 misclassified test digits, most confidently wrong first.
    pub mistakes: Vec<Mistake>,
    /// Mean wall time, in milliseconds, of one test-set evaluation batch (up to 1,000 samples,
    /// forward pass and read-back).
    pub inference_ms_per_batch_mean: Option<f64>,
    /// Sample standard deviation of that batch time, in milliseconds (0 with one batch).
    pub inference_ms_per_batch_std: Option<f64>,
    /// Seconds spent in the training epochs (minibatch steps), evaluation excluded.
    #[serde(deserialize_with = "nan_for_null::one")]
    pub train_seconds: f64,
    /// Wall-clock seconds of the whole trial: data preparation, training and evaluation.
    #[serde(deserialize_with = "nan_for_null::one")]
    pub total_seconds: f64,
    /// Training samples processed per second of `train_seconds`; `None` when no time was measured.
    pub samples_per_second: Option<f64>,
    /// Sizes and origin of the trial's data splits.
    pub data: DataSummary,
    /// Remarks in words: a clamped batch size, divergence, early stopping, restored weights.
    pub notes: Vec<String>,
    /// Training loss of every step, when `log_steps` is on (non-finite ones are stored as null).
    #[serde(deserialize_with = "nan_for_null::vec")]
    pub step_losses: Vec<f64>,
    /// A program's metrics: the last value it reported of each (absent for built-in trials).
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "nan_for_null::map"
    )]
    pub metrics: BTreeMap<String, f64>,
    /// A program's exit code, when it exited by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The epochs complete in the checkpoint the trial resumed from, when it resumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_from_epoch: Option<usize>,
    /// How many times the trial started before the attempt that finished it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub restarts: u32,
    /// The fused group the trial trained in, when it trained with others in one model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fused: Option<FusedGroup>,
    /// Kept in epochs.csv, not in result.json.
    #[serde(skip)]
    pub epochs: Vec<EpochRow>,
    /// A program's metric rows, in the order reported; kept in epochs.csv.
    #[serde(skip)]
    pub rows: Vec<MetricRow>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl TrialResult {
    /// A trial that could not train: `error` says why.
    pub fn failed(trial: &Trial, device: &str, error: String, seconds: f64) -> TrialResult {
        TrialResult {
            id: trial.id.clone(),
            name: trial.name.clone(),
            status: Status::Failed,
            error: Some(error),
            device: device.into(),
            total_seconds: seconds,
            ..Default::default()
        }
    }

    /// A final metric by name: a program's reported value, or a built-in trial's field of that
    /// name (`test_accuracy`, `best_val_loss`, …).
    pub fn metric(&self, name: &str) -> Option<f64> {
        if let Some(v) = self.metrics.get(name) {
            return Some(*v);
        }
        match name {
            "test_accuracy" => self.test_accuracy,
            "test_loss" => self.test_loss,
            "train_accuracy" => self.train_accuracy,
            "train_loss" => self.train_loss,
            "best_val_accuracy" => self.best_val_accuracy,
            "best_val_loss" => self.best_val_loss,
            _ => None,
        }
    }

    /// Puts the planned trial's identity and the device it ran on into an engine's measurement.
    pub fn stamped(mut self, trial: &Trial, device: &str) -> TrialResult {
        self.id = trial.id.clone();
        self.name = trial.name.clone();
        self.device = device.into();
        self
    }
}

/// JSON has no NaN or infinity: serde_json writes them as `null`. A number field read back from
/// `null` is NaN, so a diverged trial's result.json stays readable.
mod nan_for_null {
    use serde::{Deserialize, Deserializer};

    pub fn one<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }

    pub fn vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        let v = Vec::<Option<f64>>::deserialize(d)?;
        Ok(v.into_iter().map(|x| x.unwrap_or(f64::NAN)).collect())
    }

    pub fn map<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<std::collections::BTreeMap<String, f64>, D::Error> {
        let m = std::collections::BTreeMap::<String, Option<f64>>::deserialize(d)?;
        Ok(m.into_iter()
            .map(|(k, v)| (k, v.unwrap_or(f64::NAN)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_numbers_survive_result_json() {
        let r = TrialResult {
            status: Status::Diverged,
            step_losses: vec![2.3, f64::NAN, f64::INFINITY],
            train_seconds: f64::NAN,
            ..Default::default()
        };
        let text = serde_json::to_string(&r).unwrap();
        let back: TrialResult = serde_json::from_str(&text).unwrap();
        assert_eq!(back.step_losses[0], 2.3);
        assert!(back.step_losses[1].is_nan() && back.step_losses[2].is_nan());
        assert!(back.train_seconds.is_nan());
        assert_eq!(back.status, Status::Diverged);
    }
}
