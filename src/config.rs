//! The resolved configuration of one trial: serde types with PyTorch-like defaults, and the
//! value checks that make an impossible trial an error before anything trains.

use serde::{Deserialize, Serialize};

/// Everything one trial needs. A sweep's `data` + `fixed` sections form the base of it; grid, zip
/// and named-trial overrides are dotted paths into it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TrialConfig {
    pub data: DataConfig,
    pub model: ModelConfig,
    pub optimizer: OptimizerConfig,
    pub schedule: ScheduleConfig,
    pub batch_size: usize,
    pub epochs: usize,
    /// Sample this many random minibatches (with replacement) per epoch instead of full passes.
    pub steps_per_epoch: Option<usize>,
    pub drop_last: bool,
    pub early_stopping: EarlyStopping,
    /// Evaluate the test set with the weights of the best validation loss.
    pub restore_best: bool,
    pub augment: Augment,
    /// Record the training loss of every step (the S2 plot against the iteration counter).
    pub log_steps: bool,
    /// Evaluate the test set after every epoch (S2 plots test accuracy per epoch).
    pub test_each_epoch: bool,
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

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Only `mnist` today: the bundled 10k sample, or the official files under `path`.
    pub source: String,
    /// A directory holding the four official MNIST IDX files (optionally gzipped).
    pub path: Option<String>,
    pub split: SplitConfig,
    /// Draw this many training samples uniformly without replacement, after splitting.
    pub train_size: Option<usize>,
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
    pub official: bool,
    pub train: f64,
    pub val: f64,
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

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Normalize {
    pub mean: f64,
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

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    Linear,
    Mlp,
    Cnn,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Relu,
    Sigmoid,
    Tanh,
    Gelu,
    LeakyRelu,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Init {
    /// PyTorch's nn.Linear / nn.Conv2d default: U(±1/sqrt(fan_in)) for weights and biases.
    Default,
    Zeros,
    XavierUniform,
    KaimingNormal,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BiasInit {
    /// Zeros, except for `init: default` where PyTorch's U(±1/sqrt(fan_in)) applies.
    Default,
    Zeros,
    /// The same distribution as the weights (S5's Xavier-uniform biases).
    Same,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    pub kind: ModelKind,
    /// Hidden widths of an MLP, or the fully connected widths after a CNN's convolutions.
    pub hidden: Vec<usize>,
    pub activation: Activation,
    /// Dropout after each hidden activation.
    pub dropout: f64,
    /// Dropout on the input pixels (the S1 softmax regulariser).
    pub input_dropout: f64,
    pub batch_norm: bool,
    pub init: Init,
    pub bias_init: BiasInit,
    /// CNN: output channels of each convolution.
    pub channels: Vec<usize>,
    pub kernel: usize,
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

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    Sgd,
    Adam,
    Adamw,
    Radam,
    Rmsprop,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OptimizerConfig {
    pub kind: OptimizerKind,
    /// Defaults to PyTorch's: 1e-3 for the adaptive optimizers, 0.01 for SGD and RMSprop.
    pub learning_rate: Option<f64>,
    pub momentum: f64,
    pub nesterov: bool,
    /// Coupled (L2 added to the gradient) for sgd, adam, rmsprop; decoupled for adamw and radam.
    pub weight_decay: f64,
    pub betas: [f64; 2],
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
    pub fn lr(&self) -> f64 {
        self.learning_rate.unwrap_or(match self.kind {
            OptimizerKind::Sgd | OptimizerKind::Rmsprop => 0.01,
            OptimizerKind::Adam | OptimizerKind::Adamw | OptimizerKind::Radam => 1e-3,
        })
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    None,
    Cosine,
    WarmupCosine,
    Exponential,
    Step,
}

/// Learning-rate schedules are stepped once per epoch, as the course notebooks did.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    pub kind: ScheduleKind,
    /// eta_min of the cosine schedules.
    pub min_lr: f64,
    pub warmup_epochs: usize,
    /// The warmup starts at learning_rate × start_factor.
    pub start_factor: f64,
    /// Decay factor of `exponential` (per epoch) and `step` (per step_size epochs).
    pub gamma: f64,
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

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EarlyStopping {
    pub enabled: bool,
    pub patience: usize,
    /// The counter grows only when the metric is worse than best + min_delta (S1's rule).
    pub min_delta: f64,
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

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StopMetric {
    ValLoss,
    ValAccuracy,
}

/// Training-time augmentation (S1). Rotation, translation, scale and shear form one random affine
/// map per image; blur is a 3×3 Gaussian with a random sigma; elastic is a smoothed random
/// displacement field (Simard et al.).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Augment {
    pub enabled: bool,
    /// Maximum rotation in degrees (±).
    pub rotate: f64,
    /// Maximum translation as a fraction of the image size (±).
    pub translate: f64,
    pub scale: [f64; 2],
    /// Maximum shear in degrees (±).
    pub shear: f64,
    /// Gaussian blur sigma range; [0, 0] disables blur.
    pub blur_sigma: [f64; 2],
    /// Elastic distortion strength; 0 disables it.
    pub elastic_alpha: f64,
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
    pub path: String,
    pub message: String,
}

fn bad(path: &str, message: impl Into<String>) -> Invalid {
    Invalid {
        path: path.into(),
        message: message.into(),
    }
}

impl TrialConfig {
    /// The first impossible value, if any.
    pub fn check(&self) -> Result<(), Invalid> {
        let d = &self.data;
        if d.source != "mnist" {
            return Err(bad(
                "data.source",
                format!("unknown data source `{}`: expected `mnist`", d.source),
            ));
        }
        let s = &d.split;
        for (k, v) in [
            ("data.split.train", s.train),
            ("data.split.val", s.val),
            ("data.split.test", s.test),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(bad(
                    k,
                    format!("a fraction in [0, 1] was expected, got {v}"),
                ));
            }
        }
        if s.official {
            if s.val >= 1.0 {
                return Err(bad(
                    "data.split.val",
                    "val must leave some training data (< 1)",
                ));
            }
        } else {
            let sum = s.train + s.val + s.test;
            if (sum - 1.0).abs() > 1e-6 {
                return Err(bad(
                    "data.split",
                    format!(
                        "split fractions must sum to 1, got {} + {} + {} = {sum}",
                        s.train, s.val, s.test
                    ),
                ));
            }
            if s.train <= 0.0 || s.test <= 0.0 {
                return Err(bad(
                    "data.split",
                    "train and test fractions must both be above 0",
                ));
            }
        }
        if d.train_size == Some(0) {
            return Err(bad("data.train_size", "must be at least 1"));
        }
        if d.normalize.std.is_nan() || d.normalize.std <= 0.0 || !d.normalize.mean.is_finite() {
            return Err(bad(
                "data.normalize",
                "std must be above 0 and mean a finite number",
            ));
        }
        let m = &self.model;
        for (k, v) in [
            ("model.dropout", m.dropout),
            ("model.input_dropout", m.input_dropout),
        ] {
            if !(0.0..1.0).contains(&v) {
                return Err(bad(
                    k,
                    format!("a probability in [0, 1) was expected, got {v}"),
                ));
            }
        }
        if m.hidden.contains(&0) {
            return Err(bad("model.hidden", "every width must be at least 1"));
        }
        if m.kind == ModelKind::Mlp && m.hidden.is_empty() {
            return Err(bad(
                "model.hidden",
                "an mlp needs at least one hidden width (use kind: linear for none)",
            ));
        }
        if m.kind == ModelKind::Cnn {
            if m.channels.is_empty() || m.channels.contains(&0) {
                return Err(bad(
                    "model.channels",
                    "a cnn needs at least one convolution with at least 1 channel",
                ));
            }
            if m.kernel == 0 || m.pool == 0 {
                return Err(bad("model.kernel", "kernel and pool must be at least 1"));
            }
            let mut side = 28usize;
            for _ in &m.channels {
                let out = (side + 2 * m.padding).checked_sub(m.kernel).map(|x| x + 1);
                side = match out {
                    Some(o) if o / m.pool >= 1 => o / m.pool,
                    _ => {
                        return Err(bad(
                            "model.channels",
                            "the convolutions shrink the 28x28 image to nothing: use fewer layers, a smaller kernel or more padding",
                        ));
                    }
                };
            }
        }
        let o = &self.optimizer;
        let lr = o.lr();
        if lr.is_nan() || lr <= 0.0 || !lr.is_finite() {
            return Err(bad(
                "optimizer.learning_rate",
                format!("must be above 0, got {lr}"),
            ));
        }
        if !(0.0..1.0).contains(&o.momentum) {
            return Err(bad("optimizer.momentum", "must be in [0, 1)"));
        }
        if o.nesterov && (o.kind != OptimizerKind::Sgd || o.momentum == 0.0) {
            return Err(bad(
                "optimizer.nesterov",
                "nesterov needs kind: sgd and a momentum above 0",
            ));
        }
        if o.weight_decay < 0.0 {
            return Err(bad("optimizer.weight_decay", "must be 0 or more"));
        }
        if o.betas.iter().any(|b| !(0.0..1.0).contains(b)) {
            return Err(bad("optimizer.betas", "both betas must be in [0, 1)"));
        }
        if o.eps.is_nan() || o.eps <= 0.0 {
            return Err(bad("optimizer.eps", "must be above 0"));
        }
        if !(0.0..1.0).contains(&o.alpha) {
            return Err(bad("optimizer.alpha", "must be in [0, 1)"));
        }
        let sc = &self.schedule;
        if sc.min_lr < 0.0 {
            return Err(bad("schedule.min_lr", "must be 0 or more"));
        }
        if sc.gamma.is_nan() || sc.gamma <= 0.0 {
            return Err(bad("schedule.gamma", "must be above 0"));
        }
        if sc.kind == ScheduleKind::Step && sc.step_size == 0 {
            return Err(bad("schedule.step_size", "must be at least 1"));
        }
        if !(sc.start_factor > 0.0 && sc.start_factor <= 1.0) {
            return Err(bad("schedule.start_factor", "must be in (0, 1]"));
        }
        if self.batch_size == 0 {
            return Err(bad("batch_size", "must be at least 1"));
        }
        if self.epochs == 0 {
            return Err(bad("epochs", "must be at least 1"));
        }
        if self.steps_per_epoch == Some(0) {
            return Err(bad("steps_per_epoch", "must be at least 1"));
        }
        let needs_val = self.early_stopping.enabled || self.restore_best;
        if needs_val && self.data.split.val == 0.0 {
            return Err(bad(
                if self.early_stopping.enabled {
                    "early_stopping"
                } else {
                    "restore_best"
                },
                "needs a validation split: set data.split.val above 0",
            ));
        }
        let a = &self.augment;
        if a.scale[0] <= 0.0 || a.scale[0] > a.scale[1] {
            return Err(bad(
                "augment.scale",
                "expected [low, high] with 0 < low <= high",
            ));
        }
        if a.blur_sigma[0] < 0.0 || a.blur_sigma[0] > a.blur_sigma[1] {
            return Err(bad(
                "augment.blur_sigma",
                "expected [low, high] with 0 <= low <= high",
            ));
        }
        if a.elastic_alpha < 0.0 || a.elastic_sigma <= 0.0 {
            return Err(bad(
                "augment.elastic_alpha",
                "elastic_alpha must be 0 or more and elastic_sigma above 0",
            ));
        }
        Ok(())
    }

    /// A rough cost in multiply-adds, to start the most expensive trials first.
    pub fn cost_estimate(&self, train_samples: usize) -> f64 {
        let m = &self.model;
        let mut macs = 0f64;
        let mut inputs = 784usize;
        if m.kind == ModelKind::Cnn {
            let (mut side, mut ch) = (28usize, 1usize);
            for &c in &m.channels {
                let out = side + 2 * m.padding + 1 - m.kernel.min(side + 2 * m.padding);
                macs += (out * out * c * ch * m.kernel * m.kernel) as f64;
                side = (out / m.pool).max(1);
                ch = c;
            }
            inputs = side * side * ch;
        }
        if m.kind != ModelKind::Linear {
            for &h in &m.hidden {
                macs += (inputs * h) as f64;
                inputs = h;
            }
        }
        macs += (inputs * 10) as f64;
        let samples = match self.steps_per_epoch {
            Some(k) => (k * self.batch_size) as f64,
            None => train_samples as f64,
        };
        macs * samples * self.epochs as f64
    }
}
