//! `hypersweep bench`: training throughput of the three reference models on the bundled data,
//! through the same engine a sweep uses, for the side-by-side comparison with PyTorch
//! (scripts/bench-cpu.sh). Times only the training steps, not evaluation.

use crate::engine::{BurnEngine, Device, Engine, TrialContext};
use crate::error::{Error, Result};
use crate::spec::Spec;
use std::sync::atomic::AtomicBool;

/// The models of the benchmark, as sweep snippets (the settings STUDIES.md names).
pub fn model_yaml(model: &str) -> Option<&'static str> {
    Some(match model {
        "linear" => {
            "model: {kind: linear}\n  optimizer: {kind: sgd, learning_rate: 0.01}\n  batch_size: 100"
        }
        "mlp" => {
            "model: {kind: mlp, hidden: [512, 256], dropout: 0.2}\n  optimizer: {kind: adam, learning_rate: 0.001}\n  batch_size: 128"
        }
        "cnn" => {
            "model: {kind: cnn, channels: [16, 32], kernel: 5, padding: 2, pool: 2, hidden: [100]}\n  optimizer: {kind: adam, learning_rate: 0.001}\n  batch_size: 600"
        }
        _ => return None,
    })
}

/// One benchmark measurement: how fast a reference model trained, and how well.
pub struct BenchResult {
    /// Reference model: `linear`, `mlp` or `cnn`.
    pub model: String,
    /// The device it ran on, `cpu` or `cuda:N`.
    pub device: String,
    /// CPU threads the trial could use.
    pub threads: usize,
    /// Training samples processed over all epochs (recomputed as throughput × seconds).
    pub samples: usize,
    /// Seconds spent in the training epochs, evaluation excluded.
    pub seconds: f64,
    /// Training throughput, samples per second; 0 when no time was measured.
    pub samples_per_second: f64,
    /// Fraction of test samples classified right after training, in [0, 1]; NaN when not measured.
    pub test_accuracy: f64,
}

/// Trains reference `model` for `epochs` epochs on `device` (on a seeded subset of `train_size`
/// training samples when given) and measures its training throughput.
pub fn throughput(
    model: &str,
    device: Device,
    threads: usize,
    epochs: usize,
    train_size: Option<usize>,
) -> Result<BenchResult> {
    let snippet = model_yaml(model).ok_or_else(|| {
        Error::Input(format!("unknown bench model `{model}`: linear, mlp or cnn"))
    })?;
    let size = train_size
        .map(|n| format!(", train_size: {n}"))
        .unwrap_or_default();
    let yaml = format!(
        "name: bench\ndata: {{split: official, normalize: mnist{size}}}\nfixed:\n  {snippet}\n  epochs: {epochs}\n  seed: 1\n"
    );
    let plan = crate::plan::expand(&Spec::parse("bench", &yaml)?)?;
    let cancel = AtomicBool::new(false);
    let mut ctx = TrialContext {
        device,
        threads: crate::cores::Threads::fixed(threads),
        progress: &mut |_| {},
        cancel: &cancel,
        stop_now: &crate::engine::NEVER,
        checkpoint: None,
    };
    let r = BurnEngine.run(&plan.trials[0], &mut ctx)?;
    let samples = (r.samples_per_second.unwrap_or(0.0) * r.train_seconds).round() as usize;
    Ok(BenchResult {
        model: model.into(),
        device: device.to_string(),
        threads,
        samples,
        seconds: r.train_seconds,
        samples_per_second: r.samples_per_second.unwrap_or(0.0),
        test_accuracy: r.test_accuracy.unwrap_or(f64::NAN),
    })
}
