//! `hypersweep bench`: training throughput of the three reference models on the bundled data,
//! through the same engine a sweep uses, for the side-by-side comparison with PyTorch
//! (scripts/bench-cpu.sh). Times only the training steps, not evaluation.

use crate::engine::{BurnEngine, Device, Engine};
use crate::plan::Trial;
use crate::spec::Spec;
use anyhow::{Result, anyhow};
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

pub struct BenchResult {
    pub model: String,
    pub device: String,
    pub threads: usize,
    pub samples: usize,
    pub seconds: f64,
    pub samples_per_second: f64,
    pub test_accuracy: f64,
}

pub fn throughput(
    model: &str,
    device: Device,
    threads: usize,
    epochs: usize,
    train_size: Option<usize>,
) -> Result<BenchResult> {
    let snippet = model_yaml(model)
        .ok_or_else(|| anyhow!("unknown bench model `{model}`: linear, mlp or cnn"))?;
    let size = train_size
        .map(|n| format!(", train_size: {n}"))
        .unwrap_or_default();
    let yaml = format!(
        "name: bench\ndata: {{split: official, normalize: mnist{size}}}\nfixed:\n  {snippet}\n  epochs: {epochs}\n  seed: 1\n"
    );
    let plan = crate::plan::expand(&Spec::parse("bench", &yaml).map_err(|e| anyhow!("{e}"))?)
        .map_err(|e| anyhow!("{e}"))?;
    let trial: &Trial = &plan.trials[0];
    let r = BurnEngine
        .run(trial, device, threads, &mut |_| {}, &AtomicBool::new(false))
        .map_err(|e| anyhow!(e))?;
    let samples = (r.samples_per_second.unwrap_or(0.0) * r.train_seconds).round() as usize;
    Ok(BenchResult {
        model: model.into(),
        device: r.device.clone(),
        threads,
        samples,
        seconds: r.train_seconds,
        samples_per_second: r.samples_per_second.unwrap_or(0.0),
        test_accuracy: r.test_accuracy.unwrap_or(f64::NAN),
    })
}
