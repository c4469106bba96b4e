//! The resolved configuration of one trial: serde types with PyTorch-like defaults, and the
//! value checks that make an impossible trial an error before anything trains.

mod check;
mod memory;

mod dataset;

pub use dataset::{CLASSES, Dataset, FASHION_DIR, PIXELS};
pub use memory::{MemoryNeed, gib};

use serde::{Deserialize, Serialize};

/// Everything one trial needs. A sweep's `data` + `fixed` sections form the base of it; grid, zip
/// and named-trial overrides are dotted paths into it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TrialConfig {
    /// Where the digits come from and how they are split and scaled.
    pub data: DataConfig,
    /// The network.
    pub model: ModelConfig,
    /// The optimizer and its hyperparameters.
    pub optimizer: OptimizerConfig,
    /// How the learning rate changes over the epochs.
    pub schedule: ScheduleConfig,
    /// Samples per minibatch.
    pub batch_size: usize,
    /// Training epochs (the most, when early stopping is on).
    pub epochs: usize,
    /// Sample this many random minibatches (with replacement) per epoch instead of full passes.
    pub steps_per_epoch: Option<usize>,
    /// Skip the last minibatch of an epoch when it is smaller than `batch_size`.
    pub drop_last: bool,
    /// Stop when the validation metric stops improving.
    pub early_stopping: EarlyStopping,
    /// Evaluate the test set with the weights of the best validation loss.
    pub restore_best: bool,
    /// Random distortions of the training images.
    pub augment: Augment,
    /// Record the training loss of every step (the S2 plot against the iteration counter).
    pub log_steps: bool,
    /// Evaluate the test set after every epoch (S2 plots test accuracy per epoch).
    pub test_each_epoch: bool,
    /// Seeds every random choice of the trial: split, subset, init, batches, dropout, augment.
    pub seed: u64,
}

impl Default for TrialConfig {
    fn default() -> Self {
        Self {
            data: DataConfig::default(),
            model: ModelConfig::default(),
            optimizer: OptimizerConfig::default(),
            schedule: ScheduleConfig::default(),
            batch_size: 64,
            epochs: 10,
            steps_per_epoch: None,
            drop_last: false,
            early_stopping: EarlyStopping::default(),
            restore_best: false,
            augment: Augment::default(),
            log_steps: false,
            test_each_epoch: false,
            seed: 0,
        }
    }
}

/// The data of a trial.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// `mnist` (the bundled 10k sample, or the official files under `path`) or `fashion-mnist`
    /// (Debian's `dataset-fashion-mnist` package, or the official files under `path`).
    pub source: String,
    /// A directory holding the four official IDX files (optionally gzipped).
    pub path: Option<String>,
    /// How the samples are divided into train, validation and test.
    pub split: SplitConfig,
    /// Draw this many training samples uniformly without replacement, after splitting.
    pub train_size: Option<usize>,
    /// Pixel standardisation; `unit` and `mnist` are shorthands for it.
    pub normalize: Normalize,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            source: "mnist".into(),
            path: None,
            split: SplitConfig::default(),
            train_size: None,
            normalize: Normalize::default(),
        }
    }
}

/// Either `official` (the train/test files; on the bundled sample the first 8,000 digits train
/// and the last 2,000 test), with `val` carved from the training part, or seeded fractions of
/// all samples pooled together.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SplitConfig {
    /// Use the official train/test division instead of pooled fractions.
    pub official: bool,
    /// Fraction of the pooled samples that trains (pooled split only).
    pub train: f64,
    /// Fraction held out for validation: of the training part in the official split.
    pub val: f64,
    /// Fraction of the pooled samples that tests (pooled split only).
    pub test: f64,
    /// Keep class proportions equal across the parts.
    pub stratify: bool,
}

impl Default for SplitConfig {
    fn default() -> Self {
        Self {
            official: true,
            train: 1.0,
            val: 0.0,
            test: 0.0,
            stratify: false,
        }
    }
}

/// Pixel standardisation: (x - mean) / std.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Normalize {
    /// Subtracted from every pixel (after scaling to [0, 1]).
    pub mean: f64,
    /// Every pixel is divided by it after the mean is subtracted.
    pub std: f64,
}

impl Default for Normalize {
    /// `unit`: pixels scaled to [0, 1], as `transforms.ToTensor()` gives.
    fn default() -> Self {
        Self {
            mean: 0.0,
            std: 1.0,
        }
    }
}

/// The architectures.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Softmax regression: one linear layer.
    Linear,
    /// Fully connected hidden layers.
    Mlp,
    /// Convolutions with max pooling, then fully connected layers.
    Cnn,
}

/// Non-linearities.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// max(0, x).
    Relu,
    /// 1 / (1 + e^-x).
    Sigmoid,
    /// Hyperbolic tangent.
    Tanh,
    /// Gaussian error linear unit.
    Gelu,
    /// max(0.01x, x), PyTorch's default slope.
    LeakyRelu,
}

/// Weight initialisations.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Init {
    /// PyTorch's nn.Linear / nn.Conv2d default: U(±1/sqrt(fan_in)) for weights and biases.
    Default,
    /// All zeros.
    Zeros,
    /// Glorot uniform.
    XavierUniform,
    /// He normal.
    KaimingNormal,
}

/// Bias initialisations.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BiasInit {
    /// Zeros, except for `init: default` where PyTorch's U(±1/sqrt(fan_in)) applies.
    Default,
    /// All zeros.
    Zeros,
    /// The same distribution as the weights (S5's Xavier-uniform biases).
    Same,
}

/// The network of a trial; the CNN fields are ignored by the other kinds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// The architecture.
    pub kind: ModelKind,
    /// Hidden widths of an MLP, or the fully connected widths after a CNN's convolutions.
    pub hidden: Vec<usize>,
    /// The non-linearity after each hidden layer.
    pub activation: Activation,
    /// Dropout after each hidden activation.
    pub dropout: f64,
    /// Dropout on the input pixels (the S1 softmax regulariser).
    pub input_dropout: f64,
    /// Batch normalisation in the hidden layers.
    pub batch_norm: bool,
    /// How the weights are initialised.
    pub init: Init,
    /// How the biases are initialised.
    pub bias_init: BiasInit,
    /// CNN: output channels of each convolution.
    pub channels: Vec<usize>,
    /// CNN: side of the square convolution kernel.
    pub kernel: usize,
    /// CNN: zero padding on each side of each convolution's input.
    pub padding: usize,
    /// CNN: max-pool window (and stride) after each convolution; 1 disables pooling.
    pub pool: usize,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            kind: ModelKind::Linear,
            hidden: vec![],
            activation: Activation::Relu,
            dropout: 0.0,
            input_dropout: 0.0,
            batch_norm: false,
            init: Init::Default,
            bias_init: BiasInit::Default,
            channels: vec![16, 32],
            kernel: 5,
            padding: 2,
            pool: 2,
        }
    }
}

/// Update rules, as in torch.optim.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// Stochastic gradient descent, with optional momentum.
    Sgd,
    /// Adam.
    Adam,
    /// Adam with decoupled weight decay.
    Adamw,
    /// Rectified Adam.
    Radam,
    /// RMSprop.
    Rmsprop,
}

/// The optimizer of a trial; fields a kind does not use are ignored.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OptimizerConfig {
    /// Which update rule.
    pub kind: OptimizerKind,
    /// Defaults to PyTorch's: 1e-3 for the adaptive optimizers, 0.01 for SGD and RMSprop.
    pub learning_rate: Option<f64>,
    /// SGD and RMSprop momentum.
    pub momentum: f64,
    /// Nesterov momentum (SGD only).
    pub nesterov: bool,
    /// Coupled (L2 added to the gradient) for sgd, adam, rmsprop; decoupled for adamw and radam.
    pub weight_decay: f64,
    /// Adam-family moment decay rates.
    pub betas: [f64; 2],
    /// Added to the denominator of the adaptive optimizers.
    pub eps: f64,
    /// RMSprop smoothing constant.
    pub alpha: f64,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        Self {
            kind: OptimizerKind::Sgd,
            learning_rate: None,
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            betas: [0.9, 0.999],
            eps: 1e-8,
            alpha: 0.99,
        }
    }
}

impl OptimizerConfig {
    /// The learning rate, given or PyTorch's default for the kind.
    pub fn lr(&self) -> f64 {
        self.learning_rate.unwrap_or(match self.kind {
            OptimizerKind::Sgd | OptimizerKind::Rmsprop => 0.01,
            OptimizerKind::Adam | OptimizerKind::Adamw | OptimizerKind::Radam => 1e-3,
        })
    }
}

/// Learning-rate schedules.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    /// A constant learning rate.
    None,
    /// Cosine annealing to `min_lr` over all epochs.
    Cosine,
    /// Linear warmup, then cosine annealing.
    WarmupCosine,
    /// Multiplied by `gamma` every epoch.
    Exponential,
    /// Multiplied by `gamma` every `step_size` epochs.
    Step,
}

/// Learning-rate schedules are stepped once per epoch, as the course notebooks did.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    /// Which schedule.
    pub kind: ScheduleKind,
    /// eta_min of the cosine schedules.
    pub min_lr: f64,
    /// Epochs of linear warmup of `warmup_cosine`.
    pub warmup_epochs: usize,
    /// The warmup starts at learning_rate × start_factor.
    pub start_factor: f64,
    /// Decay factor of `exponential` (per epoch) and `step` (per step_size epochs).
    pub gamma: f64,
    /// Epochs between two decays of `step`.
    pub step_size: usize,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            kind: ScheduleKind::None,
            min_lr: 0.0,
            warmup_epochs: 5,
            start_factor: 1.0 / 3.0,
            gamma: 0.1,
            step_size: 10,
        }
    }
}

/// Early stopping on a validation metric, and which epoch counts as best.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EarlyStopping {
    /// Stop training when the metric stops improving.
    pub enabled: bool,
    /// Epochs allowed without improvement before stopping.
    pub patience: usize,
    /// The counter grows only when the metric is worse than best + min_delta (S1's rule).
    pub min_delta: f64,
    /// The validation metric watched.
    pub metric: StopMetric,
}

impl Default for EarlyStopping {
    fn default() -> Self {
        Self {
            enabled: false,
            patience: 10,
            min_delta: 0.0,
            metric: StopMetric::ValLoss,
        }
    }
}

/// What early stopping watches.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StopMetric {
    /// Validation loss (lower is better).
    ValLoss,
    /// Validation accuracy (higher is better).
    ValAccuracy,
}

/// Training-time augmentation (S1). Rotation, translation, scale and shear form one random affine
/// map per image; blur is a 3×3 Gaussian with a random sigma; elastic is a smoothed random
/// displacement field (Simard et al.).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Augment {
    /// Augment the training images (never validation or test).
    pub enabled: bool,
    /// Maximum rotation in degrees (±).
    pub rotate: f64,
    /// Maximum translation as a fraction of the image size (±).
    pub translate: f64,
    /// Zoom factor range [low, high].
    pub scale: [f64; 2],
    /// Maximum shear in degrees (±).
    pub shear: f64,
    /// Gaussian blur sigma range; [0, 0] disables blur.
    pub blur_sigma: [f64; 2],
    /// Elastic distortion strength; 0 disables it.
    pub elastic_alpha: f64,
    /// Smoothness of the elastic displacement field (Gaussian sigma, pixels).
    pub elastic_sigma: f64,
}

impl Default for Augment {
    fn default() -> Self {
        Self {
            enabled: false,
            rotate: 7.5,
            translate: 0.1,
            scale: [0.9, 1.1],
            shear: 5.0,
            blur_sigma: [0.1, 0.2],
            elastic_alpha: 37.0,
            elastic_sigma: 5.0,
        }
    }
}

/// A value check that failed: the dotted key and what was expected.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    /// The dotted key of the value.
    pub path: String,
    /// What was expected.
    pub message: String,
}
