//! A short timed probe for `plan`'s cost estimate: a few training steps of a trial's model,
//! optimizer and batch on random pixels, on CPU with the trial's threads, through the same
//! trainer a sweep uses. No data is read and nothing is evaluated.

use super::TrialContext;
use super::burn_engine::CpuBackend;
use super::epochs::Trainer;
use super::eval::DeviceSet;
use super::model::Net;
use super::optim::Optim;
use crate::config::TrialConfig;
use crate::data::{self, PIXELS, Part, Stream};
use crate::error::{Error, Result};
use crate::trial::TrialResult;
use burn::tensor::{Tensor, TensorData};
use rand::Rng;
use std::sync::atomic::AtomicBool;

/// Seconds per training step of `cfg`'s shape with `batch` samples per step, on CPU in a pool
/// of `threads`: one warm-up step (allocation, first-touch, the pool's threads starting), then
/// runs of more and more steps until one takes at least a third of `budget` seconds; its time
/// per step is the answer (a cold first step would make a small batch look 10× slower).
pub fn cpu_step_seconds(
    cfg: &TrialConfig,
    batch: usize,
    threads: usize,
    budget: f64,
) -> Result<f64> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .map_err(|e| Error::Internal(format!("cannot start a thread pool: {e}")))?;
    Ok(pool.install(|| {
        let device = burn::backend::flex::FlexDevice;
        let part = random_part(cfg, batch.max(1));
        let empty = DeviceSet::new(&mut Part::default(), &device);
        let model: Net<CpuBackend> =
            Net::new(&cfg.model, &mut data::rng(cfg.seed, Stream::Init), &device);
        let (mut model, _) = steps(cfg, &part, model, 1, &empty);
        let mut n = 2usize;
        loop {
            let (next, seconds) = steps(cfg, &part, model, n, &empty);
            if seconds >= budget / 3.0 || n >= MAX_STEPS {
                return seconds / n as f64;
            }
            model = next;
            let grow = (budget / 2.0 / seconds.max(1e-9)).clamp(2.0, 16.0);
            n = ((n as f64 * grow).ceil() as usize).min(MAX_STEPS);
        }
    }))
}

/// The most steps one run of the probe takes (tiny batches take microseconds a step).
const MAX_STEPS: usize = 20_000;

/// `n` training steps of one batch each; the model after them and the seconds they took.
fn steps(
    cfg: &TrialConfig,
    part: &Part,
    model: Net<CpuBackend>,
    n: usize,
    empty: &DeviceSet<burn::backend::Flex>,
) -> (Net<CpuBackend>, f64) {
    let probe = TrialConfig {
        epochs: 1,
        steps_per_epoch: Some(n),
        test_each_epoch: false,
        log_steps: false,
        restore_best: false,
        early_stopping: crate::config::EarlyStopping::default(),
        ..cfg.clone()
    };
    let device = burn::backend::flex::FlexDevice;
    let optim = Optim::new(&probe.optimizer).into_adaptor::<CpuBackend, Net<CpuBackend>>();
    let x = Tensor::from_data(
        TensorData::new(part.x.clone(), [part.len(), PIXELS]),
        &device,
    );
    let mut trainer = Trainer::new(&probe, (part, x), part.len(), optim, &device);
    let mut out = TrialResult::default();
    let cancel = AtomicBool::new(false);
    let mut ctx = TrialContext {
        device: super::Device::Cpu,
        threads: crate::cores::Threads::fixed(rayon::current_num_threads()),
        progress: &mut |_| {},
        cancel: &cancel,
        stop_now: &crate::engine::NEVER,
        checkpoint: None,
    };
    let start = super::epochs::Start::fresh(model, &probe);
    let trained = trainer.run(start, (empty, empty), &mut out, &mut ctx);
    (trained.model, trained.train_seconds)
}

/// `n` random digits, normalised as the trial's data would be.
fn random_part(cfg: &TrialConfig, n: usize) -> Part {
    let mut rng = data::rng(cfg.seed, Stream::Batches);
    let raw: Vec<u8> = (0..n * PIXELS).map(|_| rng.random()).collect();
    let norm = &cfg.data.normalize;
    let (mean, std) = (norm.mean as f32, norm.std as f32);
    Part {
        x: raw
            .iter()
            .map(|&p| (f32::from(p) / 255.0 - mean) / std)
            .collect(),
        y: (0..n).map(|_| rng.random_range(0..10u8)).collect(),
        raw,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_measures_a_positive_step_time() {
        let cfg = TrialConfig {
            batch_size: 16,
            ..TrialConfig::default()
        };
        let s = cpu_step_seconds(&cfg, 16, 1, 0.01).unwrap();
        assert!(s > 0.0 && s.is_finite(), "{s}");
    }
}
