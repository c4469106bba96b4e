//! The value checks of a resolved trial, run before anything trains so that an impossible value
//! is a user error with its dotted key rather than a failure (or a NaN) deep into a sweep.

use super::{
    Augment, DataConfig, Invalid, ModelConfig, ModelKind, OptimizerConfig, OptimizerKind,
    ScheduleConfig, ScheduleKind, SplitConfig, TrialConfig,
};

fn bad(path: &str, message: impl Into<String>) -> Invalid {
    Invalid {
        path: path.into(),
        message: message.into(),
    }
}

/// The most step losses one trial may log (8 bytes each in memory, ~20 in result.json).
const MAX_LOGGED_STEPS: usize = 10_000_000;

impl TrialConfig {
    /// The first impossible value, if any.
    pub fn check(&self) -> Result<(), Invalid> {
        // The order decides which error a trial with several gets; keep it stable.
        check_data(&self.data)?;
        check_model(&self.model)?;
        check_optimizer(&self.optimizer)?;
        check_schedule(&self.schedule)?;
        self.check_loop()?;
        self.check_validation()?;
        check_augment(&self.augment)
    }

    fn check_loop(&self) -> Result<(), Invalid> {
        if self.batch_size == 0 {
            return Err(bad("batch_size", "must be at least 1"));
        }
        if self.epochs == 0 {
            return Err(bad("epochs", "must be at least 1"));
        }
        if self.steps_per_epoch == Some(0) {
            return Err(bad("steps_per_epoch", "must be at least 1"));
        }
        // log_steps keeps every step's loss in memory and in result.json.
        let steps = self.steps_per_epoch.map(|k| k.saturating_mul(self.epochs));
        if self.log_steps && steps.is_some_and(|n| n > MAX_LOGGED_STEPS) {
            return Err(bad(
                "log_steps",
                format!(
                    "keeps every step's loss; at most {MAX_LOGGED_STEPS} steps (epochs × steps_per_epoch) can be logged"
                ),
            ));
        }
        Ok(())
    }

    /// Early stopping and restoring the best weights both watch the validation set.
    fn check_validation(&self) -> Result<(), Invalid> {
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
        Ok(())
    }
}

fn check_data(d: &DataConfig) -> Result<(), Invalid> {
    if super::Dataset::from_name(&d.source).is_none() {
        return Err(bad(
            "data.source",
            format!(
                "unknown data source `{}`: expected {}",
                d.source,
                super::Dataset::NAMES
            ),
        ));
    }
    check_split(&d.split)?;
    if d.train_size == Some(0) {
        return Err(bad("data.train_size", "must be at least 1"));
    }
    if d.normalize.std.is_nan() || d.normalize.std <= 0.0 || !d.normalize.mean.is_finite() {
        return Err(bad(
            "data.normalize",
            "std must be above 0 and mean a finite number",
        ));
    }
    Ok(())
}

fn check_split(s: &SplitConfig) -> Result<(), Invalid> {
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
        // The official split has its own test files; only `val` is carved from training.
        if s.val >= 1.0 {
            return Err(bad(
                "data.split.val",
                "val must leave some training data (< 1)",
            ));
        }
        return Ok(());
    }
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
    Ok(())
}

fn check_model(m: &ModelConfig) -> Result<(), Invalid> {
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
        check_cnn(m)?;
    }
    Ok(())
}

/// The convolution stack must leave at least a 1×1 image of the 28×28 input.
fn check_cnn(m: &ModelConfig) -> Result<(), Invalid> {
    if m.channels.is_empty() || m.channels.contains(&0) {
        return Err(bad(
            "model.channels",
            "a cnn needs at least one convolution with at least 1 channel",
        ));
    }
    if m.kernel == 0 {
        return Err(bad("model.kernel", "the kernel must be at least 1"));
    }
    if m.pool == 0 {
        return Err(bad("model.pool", "the pooling window must be at least 1"));
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
    Ok(())
}

fn check_optimizer(o: &OptimizerConfig) -> Result<(), Invalid> {
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
    Ok(())
}

fn check_schedule(sc: &ScheduleConfig) -> Result<(), Invalid> {
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
    Ok(())
}

fn check_augment(a: &Augment) -> Result<(), Invalid> {
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
