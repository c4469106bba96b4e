//! The burn engine: one trial from data to final metrics, generic over the backend. CPU trials
//! run on Flex inside their own rayon pool (so `threads` bounds them); CUDA trials on burn's
//! Cuda backend when the `cuda` feature is built in, `wgpu` trials on burn's Wgpu backend.

use super::closing::{batch_size, summarise, test_and_close};
use super::epochs::Trainer;
use super::model::Net;
use super::net_ops::NetOps;
use super::optim::Optim;
use super::{Device, Engine, Trial, TrialContext, TrialResult, builtin_config};
use crate::config::TrialConfig;
use crate::data::{self, Stream};
use crate::error::{Error, Result};
use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use std::time::Instant;

/// The CPU backend: Flex under autodiff.
pub type CpuBackend = burn::backend::Autodiff<burn::backend::Flex>;
/// The CUDA backend: burn's Cuda under autodiff.
#[cfg(feature = "cuda")]
pub type CudaBackend = burn::backend::Autodiff<burn::backend::Cuda>;
/// The wgpu backend (Vulkan, Metal, DX12): burn's Wgpu under autodiff.
#[cfg(feature = "wgpu")]
pub type WgpuBackend = burn::backend::Autodiff<burn::backend::Wgpu>;

/// The engine that really trains, on the device of the trial's slot.
#[derive(Debug, Default, Clone, Copy)]
pub struct BurnEngine;

impl Engine for BurnEngine {
    fn run(&self, trial: &Trial, ctx: &mut TrialContext<'_>) -> Result<TrialResult> {
        let config = builtin_config(trial)?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(ctx.threads.now())
            .build()
            .map_err(|e| Error::Trial(format!("cannot start a thread pool: {e}")))?;
        let device = ctx.device;
        let memory = available(device);
        let watch = super::gpu_faults::Watch::new(device);
        let result = pool.install(|| match device {
            Device::Cpu => {
                train::<CpuBackend>(config, &burn::backend::flex::FlexDevice, ctx, memory)
            }
            #[cfg(feature = "cuda")]
            Device::Cuda(i) => train::<CudaBackend>(
                config,
                &burn::backend::cuda::CudaDevice::new(i),
                ctx,
                memory,
            ),
            #[cfg(not(feature = "cuda"))]
            Device::Cuda(_) => Err(not_built("cuda")),
            #[cfg(feature = "wgpu")]
            Device::Wgpu => train::<WgpuBackend>(
                config,
                &burn::backend::wgpu::WgpuDevice::DefaultDevice,
                ctx,
                memory,
            ),
            #[cfg(not(feature = "wgpu"))]
            Device::Wgpu => Err(not_built("wgpu")),
        });
        match watch.fault() {
            Some(fault) => Err(Error::Trial(format!("the GPU failed ({device}): {fault}"))),
            None => result,
        }
    }

    fn run_group(&self, trials: &[Trial], ctxs: &mut [TrialContext<'_>], done: super::Done<'_>) {
        if trials.len() == 1 {
            let result = self.run(&trials[0], &mut ctxs[0]);
            done(0, result);
            return;
        }
        self.fused(trials, ctxs, done);
    }
}

impl BurnEngine {
    /// [`Engine::run_group`]: the members (built-in trials of one fusion key) as one fused
    /// model on the first context's device and threads.
    fn fused(&self, trials: &[Trial], ctxs: &mut [TrialContext<'_>], done: super::Done<'_>) {
        let configs: Result<Vec<&TrialConfig>> = trials.iter().map(builtin_config).collect();
        let configs = match configs {
            Ok(c) => c,
            Err(e) => {
                for i in 0..trials.len() {
                    done(i, Err(Error::Internal(format!("cannot fuse: {e}"))));
                }
                return;
            }
        };
        let info = crate::trial::FusedGroup {
            group: trials[0].id.clone(),
            size: trials.len(),
            members: trials.iter().map(|t| t.id.clone()).collect(),
        };
        let device = ctxs[0].device;
        let memory = available(device);
        let pool = match rayon::ThreadPoolBuilder::new()
            .num_threads(ctxs[0].threads.now())
            .build()
        {
            Ok(p) => p,
            Err(e) => {
                for i in 0..trials.len() {
                    done(
                        i,
                        Err(Error::Trial(format!("cannot start a thread pool: {e}"))),
                    );
                }
                return;
            }
        };
        pool.install(|| match device {
            Device::Cpu => super::fused::train_group::<CpuBackend>(
                &configs,
                &burn::backend::flex::FlexDevice,
                ctxs,
                (info, memory),
                done,
            ),
            #[cfg(feature = "cuda")]
            Device::Cuda(i) => super::fused::train_group::<CudaBackend>(
                &configs,
                &burn::backend::cuda::CudaDevice::new(i),
                ctxs,
                (info, memory),
                done,
            ),
            #[cfg(feature = "wgpu")]
            Device::Wgpu => super::fused::train_group::<WgpuBackend>(
                &configs,
                &burn::backend::wgpu::WgpuDevice::DefaultDevice,
                ctxs,
                (info, memory),
                done,
            ),
            #[allow(unreachable_patterns)]
            _ => {
                for i in 0..trials.len() {
                    done(i, Err(Error::Trial(format!("{device}: not built in"))));
                }
            }
        });
    }
}

/// What a trial may take on `device`: the machine's free memory on CPU, the card's on a GPU
/// (unknown through wgpu).
fn available(device: Device) -> Option<(u64, Device)> {
    match device {
        Device::Cpu => crate::devices::available_memory(),
        Device::Cuda(i) => crate::devices::cuda_total_memory(i),
        Device::Wgpu => None,
    }
    .map(|bytes| (bytes, device))
}

#[cfg(not(all(feature = "cuda", feature = "wgpu")))]
fn not_built(feature: &str) -> Error {
    Error::Trial(format!(
        "this hypersweep was built without the `{feature}` feature; rebuild with default features"
    ))
}

/// Trains one trial on `device` and evaluates it: the setup, the epochs, the summary of the
/// epoch rows, then the test set with the final (or restored best) weights. With `memory`
/// (bytes available, and where), a trial whose least need is above it fails with
/// `out of memory: …` before its model is allocated.
pub fn train<B: AutodiffBackend + NetOps>(
    cfg: &TrialConfig,
    device: &B::Device,
    ctx: &mut TrialContext<'_>,
    memory: Option<(u64, Device)>,
) -> Result<TrialResult>
where
    B::InnerBackend: NetOps + super::optim::FusedAdam,
{
    let started = Instant::now();
    let loaded = super::loaded::load::<B::InnerBackend>(&cfg.data, cfg.seed, device)?;
    let splits = &loaded.splits;
    let mut out = TrialResult {
        data: splits.summary.clone(),
        ..Default::default()
    };
    let bs = batch_size(cfg, splits.train.len(), &mut out.notes)?;
    if let Some((available, on)) = memory {
        cfg.check_memory(bs, available, &on.to_string())
            .map_err(Error::Trial)?;
    }
    let model: Net<B> = Net::new(&cfg.model, &mut data::rng(cfg.seed, Stream::Init), device);
    let optim = Optim::new(&cfg.optimizer).into_adaptor::<B, Net<B>>();
    let x_train = loaded.x_train.clone();
    let mut trainer = Trainer::new(cfg, (&splits.train, x_train), bs, optim, device);
    let (val, test) = (&loaded.val, &loaded.test);
    let start = trainer.start(model, ctx, &mut out);
    let trained = trainer.run(start, (val, test), &mut out, ctx);
    summarise(&mut out, trained.samples_seen, trained.train_seconds);
    let final_model = match trained.best {
        Some((epoch, m)) => {
            out.notes.push(format!(
                "test metrics use the weights of epoch {epoch} (best validation)"
            ));
            m
        }
        None => trained.model,
    };
    test_and_close(&mut out, trained.status, &final_model.valid(), &loaded);
    if trained.status != super::Status::Interrupted {
        keep_final(ctx, &final_model, &mut out);
    }
    out.total_seconds = started.elapsed().as_secs_f64();
    Ok(out)
}

/// Writes the weights the test set used to `trials/<id>/weights.mpk` (burn's named
/// MessagePack record), when the sweep's `checkpoint: {keep_final: true}` asks.
fn keep_final<B: AutodiffBackend + NetOps>(
    ctx: &TrialContext<'_>,
    model: &Net<B>,
    out: &mut TrialResult,
) {
    let Some(path) = ctx
        .checkpoint
        .and_then(crate::store::TrialCheckpoint::final_weights)
    else {
        return;
    };
    let written = super::resume::weights_bytes(model)
        .and_then(|b| crate::store::write_atomic(&path, &b).map_err(|e| e.to_string()));
    match written {
        Ok(()) => out
            .notes
            .push(format!("final weights kept in {}", path.display())),
        Err(e) => out
            .notes
            .push(format!("cannot keep the final weights: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::PIXELS;
    use crate::engine::{EpochRow, Status};
    use crate::spec::Spec;
    use crate::trial::Trial;
    use burn::optim::{GradientsParams, Optimizer};
    use burn::tensor::activation::log_softmax;
    use burn::tensor::{Int, Tensor, TensorData};
    use std::sync::atomic::AtomicBool;

    fn trial(yaml: &str) -> Trial {
        crate::plan::expand(&Spec::parse("t.yaml", yaml).unwrap())
            .unwrap()
            .trials
            .remove(0)
    }

    fn train_cpu(t: &Trial) -> TrialResult {
        let cancel = AtomicBool::new(false);
        let mut ctx = TrialContext {
            device: Device::Cpu,
            threads: crate::cores::Threads::fixed(2),
            progress: &mut |_| {},
            cancel: &cancel,
            stop_now: &crate::engine::NEVER,
            checkpoint: None,
        };
        BurnEngine.run(t, &mut ctx).unwrap()
    }

    #[test]
    fn summary_takes_the_last_training_row_and_the_best_validation() {
        let row = |epoch, train_loss, val_loss, val_accuracy| EpochRow {
            epoch,
            train_loss,
            train_accuracy: train_loss / 10.0,
            val_loss,
            val_accuracy,
            ..Default::default()
        };
        let mut out = TrialResult {
            epochs: vec![
                row(1, 2.0, Some(0.9), Some(0.7)),
                row(2, 1.0, Some(0.5), Some(0.8)),
                row(3, 0.5, Some(0.6), Some(0.9)),
            ],
            ..Default::default()
        };
        summarise(&mut out, 300, 2.0);
        assert_eq!(out.epochs_run, 3);
        assert_eq!(out.samples_per_second, Some(150.0));
        assert_eq!(
            (out.train_loss, out.train_accuracy),
            (Some(0.5), Some(0.05))
        );
        assert_eq!((out.best_val_loss, out.best_epoch), (Some(0.5), Some(2)));
        assert_eq!(out.best_val_accuracy, Some(0.9));
        let mut none = TrialResult {
            epochs: vec![row(1, 2.0, None, None)],
            ..Default::default()
        };
        summarise(&mut none, 0, 0.0);
        assert_eq!(none.samples_per_second, None);
        assert_eq!((none.best_val_loss, none.best_epoch), (None, None));
    }

    #[test]
    fn linear_on_1000_samples_passes_80_percent_in_3_epochs() {
        let r = train_cpu(&trial(
            "name: t\ndata: {train_size: 1000, normalize: mnist}\nfixed:\n  optimizer: {kind: sgd, learning_rate: 0.05}\n  batch_size: 32\n  epochs: 3\n  seed: 1\n",
        ));
        assert_eq!(r.status, Status::Ok);
        assert_eq!(r.data.train, 1000);
        assert!(r.test_accuracy.unwrap() > 0.80, "{:?}", r.test_accuracy);
        assert_eq!(r.epochs.len(), 3);
        assert_eq!(r.confusion_matrix.iter().flatten().sum::<u64>(), 2000);
    }

    #[test]
    fn s3_mlp_passes_90_percent_in_2_epochs() {
        let r = train_cpu(&trial(
            "name: t\ndata: {normalize: unit}\nfixed:\n  model: {kind: mlp, hidden: [512, 256], dropout: 0.2}\n  optimizer: {kind: adam, learning_rate: 0.001}\n  batch_size: 128\n  epochs: 2\n  seed: 42\n",
        ));
        assert!(r.test_accuracy.unwrap() > 0.90, "{:?}", r.test_accuracy);
        assert!(r.epochs[1].train_loss < r.epochs[0].train_loss);
    }

    #[test]
    fn same_seed_same_numbers_other_seed_other_numbers() {
        let y = "name: t\ndata: {split: {official: true, val: 0.1}, train_size: 500}\nfixed:\n  model: {kind: mlp, hidden: [32], dropout: 0.3}\n  optimizer: {kind: sgd, learning_rate: 0.1, momentum: 0.9}\n  batch_size: 50\n  epochs: 2\n  augment: {rotate: 10}\n  seed: 7\n";
        let a = train_cpu(&trial(y));
        let b = train_cpu(&trial(y));
        let strip = |r: &TrialResult| {
            (
                r.test_accuracy,
                r.test_loss,
                r.epochs
                    .iter()
                    .map(|e| (e.train_loss, e.train_accuracy, e.val_loss))
                    .collect::<Vec<_>>(),
                r.confusion_matrix.clone(),
            )
        };
        assert_eq!(strip(&a), strip(&b));
        let c = train_cpu(&trial(&y.replace("seed: 7", "seed: 8")));
        assert_ne!(strip(&a), strip(&c));
    }

    /// A trial sharing 2 cores with another starts on 1 thread; when the other ends mid-epoch,
    /// the steps go on with 2 threads from the next one (its only epoch ends on 2), and the
    /// numbers are those of 1 thread or 2 throughout.
    #[test]
    fn a_share_that_grows_mid_epoch_changes_the_threads_not_the_numbers() {
        let t = trial(
            "name: t\ndata: {train_size: 2000}\nfixed:\n  model: {kind: mlp, hidden: [128]}\n  optimizer: {kind: adam, learning_rate: 0.001}\n  batch_size: 256\n  steps_per_epoch: 200\n  epochs: 1\n  seed: 3\n",
        );
        let run = |threads: crate::cores::Threads| {
            let cancel = AtomicBool::new(false);
            let mut ctx = TrialContext {
                device: Device::Cpu,
                threads,
                progress: &mut |_| {},
                cancel: &cancel,
                stop_now: &crate::engine::NEVER,
                checkpoint: None,
            };
            BurnEngine.run(&t, &mut ctx).unwrap()
        };
        let share = crate::cores::CoreShare::new(2);
        let other = share.sit();
        let mine = share.sit();
        assert_eq!(mine.now(), 1);
        let ends = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            drop(other);
        });
        let shared = run(mine);
        ends.join().unwrap();
        assert_eq!(shared.epochs.len(), 1);
        assert_eq!(
            shared.epochs[0].threads,
            Some(2),
            "the epoch ended on 2 threads"
        );
        let numbers = |r: &TrialResult| {
            (
                r.epochs[0].train_loss,
                r.epochs[0].val_loss,
                r.test_loss,
                r.confusion_matrix.clone(),
            )
        };
        for n in [1, 2] {
            let fixed = run(crate::cores::Threads::fixed(n));
            assert_eq!(fixed.epochs[0].threads, Some(n));
            assert_eq!(numbers(&shared), numbers(&fixed), "against {n} threads");
        }
    }

    #[test]
    fn a_huge_learning_rate_diverges_and_keeps_its_epochs() {
        let r = train_cpu(&trial(
            "name: t\ndata: {train_size: 200}\nfixed:\n  model: {kind: mlp, hidden: [16]}\n  optimizer: {kind: sgd, learning_rate: 1.0e30}\n  batch_size: 20\n  epochs: 5\n",
        ));
        assert_eq!(r.status, Status::Diverged);
        assert!(
            !r.epochs.is_empty() && r.epochs.len() < 5,
            "{}",
            r.epochs.len()
        );
    }

    #[test]
    fn an_exploding_loss_is_diverged_even_when_it_stays_finite() {
        // SGD at lr 1000 drives the loss to ~1e11 and then leaves the net at chance with a
        // finite loss; the linear model at 1e30 as well.
        for model in ["{kind: mlp, hidden: [32]}", "{kind: linear}"] {
            let lr = if model.contains("mlp") {
                "1000"
            } else {
                "1.0e30"
            };
            let r = train_cpu(&trial(&format!(
                "name: t\ndata: {{train_size: 500}}\nfixed:\n  model: {model}\n  optimizer: {{kind: sgd, learning_rate: {lr}}}\n  batch_size: 50\n  epochs: 3\n  log_steps: true\n"
            )));
            assert_eq!(r.status, Status::Diverged, "{model}: {:?}", r.epochs);
        }
    }

    #[test]
    fn a_trial_too_big_for_memory_fails_before_allocating() {
        // 784 × 10⁹ weights, terabytes: allocating them would abort the whole process (or wake
        // the kernel's OOM killer); the trial fails alone, at once.
        let t = trial(
            "name: t\ndata: {train_size: 100}\nfixed:\n  model: {kind: mlp, hidden: [1000000000]}\n  epochs: 1\n",
        );
        let cancel = AtomicBool::new(false);
        let mut ctx = TrialContext {
            device: Device::Cpu,
            threads: crate::cores::Threads::fixed(1),
            progress: &mut |_| {},
            cancel: &cancel,
            stop_now: &crate::engine::NEVER,
            checkpoint: None,
        };
        let e = BurnEngine.run(&t, &mut ctx).unwrap_err().to_string();
        assert!(e.starts_with("out of memory: "), "{e}");
        assert!(e.contains("cpu has"), "{e}");
    }

    #[test]
    fn a_huge_steps_per_epoch_draws_batches_lazily() {
        // Drawing 1e8 batches up front took gigabytes before the first step; lazily drawn,
        // the trial starts at once and stops when asked.
        let t = trial(
            "name: t\ndata: {train_size: 100}\nfixed:\n  batch_size: 1\n  steps_per_epoch: 100000000\n  epochs: 1\n",
        );
        let cancel = std::sync::Arc::new(AtomicBool::new(false));
        let c = cancel.clone();
        let stopper = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            c.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let t0 = std::time::Instant::now();
        let mut ctx = TrialContext {
            device: Device::Cpu,
            threads: crate::cores::Threads::fixed(1),
            progress: &mut |_| {},
            cancel: &cancel,
            stop_now: &crate::engine::NEVER,
            checkpoint: None,
        };
        let r = BurnEngine.run(&t, &mut ctx).unwrap();
        stopper.join().unwrap();
        assert_eq!(r.status, Status::Interrupted);
        assert!(t0.elapsed().as_secs() < 10, "{:?}", t0.elapsed());
    }

    #[test]
    fn early_stopping_and_restore_best() {
        let r = train_cpu(&trial(
            "name: t\ndata: {split: {official: true, val: 0.2}, train_size: 300}\nfixed:\n  optimizer: {kind: sgd, learning_rate: 0.5}\n  batch_size: 10\n  epochs: 30\n  early_stopping: {patience: 2, min_delta: 0.0}\n  restore_best: true\n",
        ));
        assert_eq!(r.status, Status::StoppedEarly, "{:?}", r.notes);
        assert!(r.epochs.len() < 30);
        assert!(r.notes.iter().any(|n| n.contains("best validation")));
    }

    #[test]
    fn cnn_forward_shape_and_one_step_lowers_the_loss() {
        type B = CpuBackend;
        let cfg = crate::config::ModelConfig {
            kind: crate::config::ModelKind::Cnn,
            hidden: vec![100],
            ..Default::default()
        };
        let dev = burn::backend::flex::FlexDevice;
        let mut rng = data::rng(1, Stream::Init);
        let model: Net<B> = Net::new(&cfg, &mut rng, &dev);
        let s = data::prepare(&Default::default(), 1).unwrap();
        let n = 64;
        let x: Tensor<B, 2> = Tensor::from_data(
            TensorData::new(s.train.x[..n * PIXELS].to_vec(), [n, PIXELS]),
            &dev,
        );
        let ys: Vec<i64> = s.train.y[..n].iter().map(|&v| i64::from(v)).collect();
        let y: Tensor<B, 1, Int> = Tensor::from_data(TensorData::new(ys, [n]), &dev);
        let loss_of = |m: &Net<B>| {
            -log_softmax(m.forward(x.clone(), None), 1)
                .gather(1, y.clone().reshape([n, 1]))
                .mean()
        };
        assert_eq!(model.forward(x.clone(), None).dims(), [n, 10]);
        let before = loss_of(&model);
        let b0: f32 = before.clone().into_data().iter::<f32>().next().unwrap();
        let mut opt = Optim::new(&crate::config::OptimizerConfig {
            kind: crate::config::OptimizerKind::Adam,
            ..Default::default()
        })
        .into_adaptor::<B, Net<B>>();
        let grads = GradientsParams::from_grads(before.backward(), &model);
        let model = opt.step(1e-3, model, grads);
        let b1: f32 = loss_of(&model).into_data().iter::<f32>().next().unwrap();
        assert!(b1 < b0, "loss {b0} → {b1}");
    }
}
