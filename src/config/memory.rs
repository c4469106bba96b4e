//! How much memory a trial needs at the least, so that a trial that cannot fit fails on its own
//! (`out of memory: …`) instead of taking the sweep down: Rust aborts the whole process when an
//! allocation fails, and the kernel's OOM killer ends it without a word. Both are beyond
//! catching, so the check comes before the trial allocates anything.
//!
//! The estimate is a floor: the parameters with their gradients and optimizer state, and the
//! activations one batch leaves for the backward pass. Anything it refuses could not have run;
//! a trial it lets through may still need more (temporaries, allocator slack), and one that
//! then runs out of memory ends the process as before, without losing what was saved.

use super::{CLASSES, PIXELS};
use super::{ModelKind, OptimizerKind, TrialConfig};

/// The floor of a trial's memory need, broken down for the error message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemoryNeed {
    /// Learned parameters (weights and biases).
    pub parameters: f64,
    /// Copies of them held while training: values, gradients, optimizer state, best weights.
    pub copies: f64,
    /// Values one sample leaves for the backward pass (every layer's output, plus the largest
    /// layer's gradient).
    pub per_sample: f64,
    /// The batch size the trial trains with.
    pub batch: usize,
}

impl MemoryNeed {
    /// Bytes, as 32-bit floats.
    pub fn bytes(&self) -> f64 {
        4.0 * (self.parameters * self.copies + self.per_sample * self.batch as f64)
    }
}

/// Bytes as GiB with one decimal.
pub fn gib(bytes: f64) -> String {
    format!("{:.1} GiB", bytes / f64::from(1u32 << 30))
}

impl TrialConfig {
    /// The least memory this trial needs when it trains with batches of `batch` samples.
    pub fn memory_need(&self, batch: usize) -> MemoryNeed {
        let m = &self.model;
        let (mut parameters, mut outputs, mut widest) = (0f64, PIXELS as f64, PIXELS as f64);
        let mut inputs = PIXELS as f64;
        let mut layer = |fan_in: f64, weights: f64, biases: f64, out: f64| {
            parameters += fan_in * weights + biases;
            outputs += out;
            widest = widest.max(out);
        };
        if m.kind == ModelKind::Cnn {
            // The same shapes as `estimate::rough_cost`: each convolution, then its pooling.
            let (mut side, mut ch) = (28usize, 1usize);
            for &c in &m.channels {
                let out = side + 2 * m.padding + 1 - m.kernel.min(side + 2 * m.padding);
                let k2 = (m.kernel * m.kernel) as f64;
                layer(
                    ch as f64 * k2,
                    c as f64,
                    c as f64,
                    (out * out) as f64 * c as f64,
                );
                side = (out / m.pool.max(1)).max(1);
                layer(0.0, 0.0, 0.0, (side * side) as f64 * c as f64);
                ch = c;
            }
            inputs = (side * side * ch) as f64;
        }
        if m.kind != ModelKind::Linear {
            for &h in &m.hidden {
                layer(inputs, h as f64, h as f64, h as f64);
                inputs = h as f64;
            }
        }
        layer(inputs, CLASSES as f64, CLASSES as f64, CLASSES as f64);
        let o = &self.optimizer;
        let state = match o.kind {
            OptimizerKind::Sgd => u8::from(o.momentum > 0.0),
            OptimizerKind::Rmsprop => 1 + u8::from(o.momentum > 0.0),
            OptimizerKind::Adam | OptimizerKind::Adamw | OptimizerKind::Radam => 2,
        };
        MemoryNeed {
            parameters,
            copies: 2.0 + f64::from(state) + f64::from(u8::from(self.restore_best)),
            per_sample: outputs + widest,
            batch,
        }
    }

    /// `Err("out of memory: …")` when the trial's least need is above `available` bytes on
    /// `device` (named in the message).
    pub fn check_memory(&self, batch: usize, available: u64, device: &str) -> Result<(), String> {
        let need = self.memory_need(batch);
        if need.bytes() <= available as f64 {
            return Ok(());
        }
        Err(format!(
            "out of memory: this trial needs at least {} ({:.0} parameters × {} copies for \
             values, gradients and optimizer state, and {:.0} values per sample × batch {}), \
             but {device} has {} available; make the model or the batch smaller",
            gib(need.bytes()),
            need.parameters,
            need.copies,
            need.per_sample,
            need.batch,
            gib(available as f64),
        ))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{ModelKind, OptimizerKind, TrialConfig};

    #[test]
    fn the_floor_counts_parameters_copies_and_one_batch() {
        let mut c = TrialConfig::default();
        c.model.kind = ModelKind::Linear;
        let n = c.memory_need(10);
        assert_eq!(n.parameters, 7850.0);
        assert_eq!(n.copies, 2.0);
        assert_eq!(n.per_sample, 784.0 + 10.0 + 784.0);
        assert_eq!(n.bytes(), 4.0 * (7850.0 * 2.0 + 1578.0 * 10.0));
        c.optimizer.kind = OptimizerKind::Adam;
        c.restore_best = true;
        assert_eq!(c.memory_need(10).copies, 5.0);
        // The default CNN: 5×5 convolutions of 16 then 32 channels, padding 2, pooling 2.
        c.model.kind = ModelKind::Cnn;
        let n = c.memory_need(1);
        let convs = (25 * 16 + 16) + (25 * 16 * 32 + 32);
        assert_eq!(n.parameters, f64::from(convs + 7 * 7 * 32 * 10 + 10));
        assert_eq!(
            n.per_sample,
            f64::from(784 + 28 * 28 * 16 + 14 * 14 * 16 + 14 * 14 * 32 + 7 * 7 * 32 + 10)
                + f64::from(28 * 28 * 16)
        );
    }

    #[test]
    fn a_trial_that_cannot_fit_is_out_of_memory() {
        let mut c = TrialConfig::default();
        c.model.kind = ModelKind::Mlp;
        c.model.hidden = vec![1_000_000_000];
        let e = c.check_memory(64, 64 << 30, "cpu").unwrap_err();
        assert!(e.starts_with("out of memory: "), "{e}");
        assert!(e.contains("cpu has 64.0 GiB available"), "{e}");
        c.model.hidden = vec![100];
        assert!(c.check_memory(64, 64 << 30, "cpu").is_ok());
        // The batch counts: a modest CNN on a huge batch does not fit in 1 GiB.
        c.model.kind = ModelKind::Cnn;
        c.model.channels = vec![512, 512];
        assert!(c.check_memory(64, 1 << 30, "cpu").is_ok());
        assert!(c.check_memory(8000, 1 << 30, "cpu").is_err());
    }
}
