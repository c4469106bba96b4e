//! The burn engine: one trial from data to final metrics, generic over the backend. CPU trials
//! run on Flex inside their own rayon pool (so `threads` bounds them); CUDA trials on burn's
//! Cuda backend when the `cuda` feature is built in.

use super::cnn_ops::CnnOps;
use super::model::Net;
use super::optim::Optim;
use super::schedule::lr_at;
use super::{Device, Engine, EpochRow, Mistake, Progress, Status, TrialContext, TrialResult};
use crate::config::{StopMetric, TrialConfig};
use crate::data::{self, CLASSES, PIXELS, Part, Stream, augment};
use crate::error::{Error, Result};
use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use rand::Rng;
use rand::seq::SliceRandom;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// How many misclassified test digits a result keeps for the report.
const KEEP_MISTAKES: usize = 25;
const EVAL_BATCH: usize = 1000;

pub type CpuBackend = burn::backend::Autodiff<burn::backend::Flex>;
#[cfg(feature = "cuda")]
pub type CudaBackend = burn::backend::Autodiff<burn::backend::Cuda>;

#[derive(Debug, Default, Clone, Copy)]
pub struct BurnEngine;

impl Engine for BurnEngine {
    fn run(&self, config: &TrialConfig, ctx: &mut TrialContext<'_>) -> Result<TrialResult> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(ctx.threads.max(1))
            .build()
            .map_err(|e| Error::Trial(format!("cannot start a thread pool: {e}")))?;
        let device = ctx.device;
        let progress = &mut *ctx.progress;
        let cancel = ctx.cancel;
        pool.install(|| match device {
            Device::Cpu => {
                train::<CpuBackend>(config, burn::backend::flex::FlexDevice, progress, cancel)
            }
            #[cfg(feature = "cuda")]
            Device::Cuda(i) => train::<CudaBackend>(
                config,
                burn::backend::cuda::CudaDevice::new(i),
                progress,
                cancel,
            ),
            #[cfg(not(feature = "cuda"))]
            Device::Cuda(_) => Err(Error::Trial(
                "this hypersweep was built without the `cuda` feature; rebuild with default features"
                    .into(),
            )),
        })
    }
}

/// Loss and accuracy over a whole set, plus per-sample predictions when asked.
struct Eval {
    loss: f64,
    accuracy: f64,
    predictions: Vec<u8>,
    confidence: Vec<f32>,
    batch_ms: Vec<f64>,
}

/// A split held on the device, ready for evaluation.
struct DeviceSet<B: Backend> {
    x: Option<Tensor<B, 2>>,
    y: Vec<u8>,
}

impl<B: Backend> DeviceSet<B> {
    fn new(part: &Part, device: &B::Device) -> Self {
        let x = (!part.is_empty()).then(|| {
            Tensor::from_data(
                TensorData::new(part.x.clone(), [part.len(), PIXELS]),
                device,
            )
        });
        DeviceSet {
            x,
            y: part.y.clone(),
        }
    }
}

fn evaluate<B: CnnOps>(model: &Net<B>, set: &DeviceSet<B>) -> Option<Eval> {
    let x = set.x.as_ref()?;
    let n = set.y.len();
    let mut loss = 0f64;
    let mut correct = 0usize;
    let mut predictions = Vec::with_capacity(n);
    let mut confidence = Vec::with_capacity(n);
    let mut batch_ms = vec![];
    let mut start = 0;
    while start < n {
        let len = EVAL_BATCH.min(n - start);
        let t = Instant::now();
        let logp = log_softmax(model.forward(x.clone().narrow(0, start, len), None), 1);
        let values: Vec<f32> = logp.into_data().iter::<f32>().collect();
        batch_ms.push(t.elapsed().as_secs_f64() * 1e3);
        for (row, &truth) in values.chunks(CLASSES).zip(&set.y[start..start + len]) {
            loss -= f64::from(row[usize::from(truth)]);
            let (pred, best) =
                row.iter()
                    .enumerate()
                    .fold(
                        (0, f32::NEG_INFINITY),
                        |acc, (i, &v)| {
                            if v > acc.1 { (i, v) } else { acc }
                        },
                    );
            correct += usize::from(pred == usize::from(truth));
            predictions.push(pred as u8);
            confidence.push(best.exp());
        }
        start += len;
    }
    Some(Eval {
        loss: loss / n as f64,
        accuracy: correct as f64 / n as f64,
        predictions,
        confidence,
        batch_ms,
    })
}

/// The index lists of one epoch's minibatches.
fn epoch_batches(cfg: &TrialConfig, n: usize, bs: usize, rng: &mut impl Rng) -> Vec<Vec<usize>> {
    match cfg.steps_per_epoch {
        Some(k) => (0..k)
            .map(|_| (0..bs).map(|_| rng.random_range(0..n)).collect())
            .collect(),
        None => {
            let mut order: Vec<usize> = (0..n).collect();
            order.shuffle(rng);
            order
                .chunks(bs)
                .filter(|c| !(cfg.drop_last && c.len() < bs))
                .map(<[usize]>::to_vec)
                .collect()
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn train<B: AutodiffBackend + CnnOps>(
    cfg: &TrialConfig,
    device: B::Device,
    progress: &mut (dyn FnMut(Progress) + Send),
    cancel: &AtomicBool,
) -> Result<TrialResult>
where
    B::InnerBackend: CnnOps,
{
    let started = Instant::now();
    let splits = data::prepare(&cfg.data, cfg.seed)?;
    let mut out = TrialResult {
        data: splits.summary.clone(),
        ..Default::default()
    };
    let n = splits.train.len();
    let bs = if cfg.batch_size > n {
        out.notes.push(format!(
            "batch_size {} is larger than the {n} training samples: clamped to {n}",
            cfg.batch_size
        ));
        n
    } else {
        cfg.batch_size
    };
    if cfg.drop_last && cfg.steps_per_epoch.is_none() && n < bs {
        return Err(Error::Trial("drop_last leaves no batch".into()));
    }

    let mut init_rng = data::rng(cfg.seed, Stream::Init);
    let mut model: Net<B> = Net::new(&cfg.model, &mut init_rng, &device);
    let mut optim = Optim::new(&cfg.optimizer).into_adaptor::<B, Net<B>>();
    let mut batch_rng = data::rng(cfg.seed, Stream::Batches);
    let mut drop_rng = data::rng(cfg.seed, Stream::Dropout);
    let mut aug_rng = data::rng(cfg.seed, Stream::Augment);

    let x_train: Tensor<B::InnerBackend, 2> = Tensor::from_data(
        TensorData::new(splits.train.x.clone(), [n, PIXELS]),
        &device,
    );
    let val = DeviceSet::<B::InnerBackend>::new(&splits.val, &device);
    let test = DeviceSet::<B::InnerBackend>::new(&splits.test, &device);
    let (mean, std) = (
        cfg.data.normalize.mean as f32,
        cfg.data.normalize.std as f32,
    );
    let base_lr = cfg.optimizer.lr();

    let mut best: Option<(f64, usize, Option<Net<B>>)> = None;
    let mut patience_left = cfg.early_stopping.patience;
    let mut status = Status::Ok;
    let mut samples_seen = 0usize;
    let mut train_seconds = 0f64;

    'epochs: for epoch in 0..cfg.epochs {
        let t_epoch = Instant::now();
        let lr = lr_at(base_lr, &cfg.schedule, epoch, cfg.epochs);
        let batches = epoch_batches(cfg, n, bs, &mut batch_rng);
        let mut loss_sum: Option<Tensor<B::InnerBackend, 1>> = None;
        let mut correct_sum: Option<Tensor<B::InnerBackend, 1, Int>> = None;
        let mut step_losses: Vec<Tensor<B::InnerBackend, 1>> = vec![];
        let mut epoch_samples = 0usize;
        for idx in &batches {
            if cancel.load(Ordering::Relaxed) {
                status = Status::Interrupted;
                break 'epochs;
            }
            let b = idx.len();
            let x_inner = if cfg.augment.enabled {
                let mut xs = Vec::with_capacity(b * PIXELS);
                for &i in idx {
                    augment::augment_into(
                        &splits.train.raw[i * PIXELS..(i + 1) * PIXELS],
                        &cfg.augment,
                        mean,
                        std,
                        &mut aug_rng,
                        &mut xs,
                    );
                }
                Tensor::from_data(TensorData::new(xs, [b, PIXELS]), &device)
            } else {
                let ids: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
                x_train
                    .clone()
                    .select(0, Tensor::from_data(TensorData::new(ids, [b]), &device))
            };
            let ys: Vec<i64> = idx.iter().map(|&i| i64::from(splits.train.y[i])).collect();
            let y: Tensor<B, 1, Int> = Tensor::from_data(TensorData::new(ys, [b]), &device);
            let logits = model.forward(Tensor::from_inner(x_inner), Some(&mut drop_rng));
            let loss = -log_softmax(logits.clone(), 1)
                .gather(1, y.clone().reshape([b, 1]))
                .mean();
            let l = loss.clone().inner();
            let correct = logits
                .inner()
                .argmax(1)
                .reshape([b])
                .equal(y.inner())
                .int()
                .sum();
            if cfg.log_steps {
                step_losses.push(l.clone());
            }
            loss_sum = Some(match loss_sum {
                Some(s) => s + l,
                None => l,
            });
            correct_sum = Some(match correct_sum {
                Some(s) => s + correct,
                None => correct,
            });
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(lr, model, grads);
            epoch_samples += b;
        }
        let steps = batches.len().max(1) as f64;
        let read = |t: Option<Tensor<B::InnerBackend, 1>>| -> f64 {
            t.map(|t| f64::from(t.into_data().iter::<f32>().next().unwrap_or(f32::NAN)))
                .unwrap_or(f64::NAN)
        };
        let train_loss = read(loss_sum) / steps;
        let correct = correct_sum
            .map(|t| t.into_data().iter::<i64>().next().unwrap_or(0))
            .unwrap_or(0);
        if cfg.log_steps && !step_losses.is_empty() {
            let all = Tensor::cat(step_losses, 0).into_data();
            out.step_losses.extend(all.iter::<f32>().map(f64::from));
        }
        samples_seen += epoch_samples;
        train_seconds += t_epoch.elapsed().as_secs_f64();

        let valid = model.valid();
        let v = evaluate(&valid, &val);
        let te = if cfg.test_each_epoch {
            evaluate(&valid, &test)
        } else {
            None
        };
        let row = EpochRow {
            epoch: epoch + 1,
            train_loss,
            train_accuracy: correct as f64 / epoch_samples.max(1) as f64,
            val_loss: v.as_ref().map(|e| e.loss),
            val_accuracy: v.as_ref().map(|e| e.accuracy),
            test_loss: te.as_ref().map(|e| e.loss),
            test_accuracy: te.as_ref().map(|e| e.accuracy),
            lr,
            seconds: t_epoch.elapsed().as_secs_f64(),
        };
        out.epochs.push(row.clone());
        progress(Progress::Epoch(row));
        if !train_loss.is_finite() {
            status = Status::Diverged;
            out.notes.push(format!(
                "training loss became {train_loss} in epoch {}: stopped",
                epoch + 1
            ));
            break;
        }
        if let Some(v) = &v {
            let score = match cfg.early_stopping.metric {
                StopMetric::ValLoss => v.loss,
                StopMetric::ValAccuracy => -v.accuracy,
            };
            let improved = best.as_ref().is_none_or(|(s, _, _)| score < *s);
            let worse = best
                .as_ref()
                .is_some_and(|(s, _, _)| score > *s + cfg.early_stopping.min_delta);
            if improved {
                // The weights are kept only when the test set will use them.
                best = Some((score, epoch + 1, cfg.restore_best.then(|| model.clone())));
                patience_left = cfg.early_stopping.patience;
            } else if worse {
                patience_left = patience_left.saturating_sub(1);
            }
            if cfg.early_stopping.enabled && patience_left == 0 && epoch + 1 < cfg.epochs {
                status = Status::StoppedEarly;
                out.notes.push(format!(
                    "early stopping after epoch {} (no improvement beyond min_delta {} for {} epochs)",
                    epoch + 1,
                    cfg.early_stopping.min_delta,
                    cfg.early_stopping.patience
                ));
                break;
            }
        }
    }
    out.epochs_run = out.epochs.len();
    out.train_seconds = train_seconds;
    if train_seconds > 0.0 {
        out.samples_per_second = Some(samples_seen as f64 / train_seconds);
    }
    if let Some(last) = out.epochs.last() {
        out.train_loss = Some(last.train_loss);
        out.train_accuracy = Some(last.train_accuracy);
    }
    let best_val = out
        .epochs
        .iter()
        .filter_map(|e| e.val_loss.map(|l| (l, e)))
        .min_by(|a, b| a.0.total_cmp(&b.0));
    if let Some((l, e)) = best_val {
        out.best_val_loss = Some(l);
        out.best_epoch = Some(e.epoch);
    }
    out.best_val_accuracy = out
        .epochs
        .iter()
        .filter_map(|e| e.val_accuracy)
        .max_by(f64::total_cmp);

    let final_model = match (cfg.restore_best, best) {
        (true, Some((_, epoch, Some(m)))) => {
            out.notes.push(format!(
                "test metrics use the weights of epoch {epoch} (best validation)"
            ));
            m
        }
        _ => model,
    };
    if status != Status::Interrupted
        && let Some(ev) = evaluate(&final_model.valid(), &test)
    {
        out.test_loss = Some(ev.loss);
        out.test_accuracy = Some(ev.accuracy);
        let mut cm = vec![vec![0u64; CLASSES]; CLASSES];
        for (p, t) in ev.predictions.iter().zip(&test.y) {
            cm[usize::from(*t)][usize::from(*p)] += 1;
        }
        out.per_class_accuracy = cm
            .iter()
            .enumerate()
            .map(|(i, row)| row[i] as f64 / row.iter().sum::<u64>().max(1) as f64)
            .collect();
        let mut pairs: Vec<(u8, u8, u64)> = (0..CLASSES)
            .flat_map(|t| (0..CLASSES).map(move |p| (t, p)))
            .filter(|(t, p)| t != p)
            .map(|(t, p)| (t as u8, p as u8, cm[t][p]))
            .filter(|x| x.2 > 0)
            .collect();
        pairs.sort_by(|a, b| b.2.cmp(&a.2).then((a.0, a.1).cmp(&(b.0, b.1))));
        pairs.truncate(5);
        out.most_confused = pairs;
        out.confusion_matrix = cm;
        let mut wrong: Vec<usize> = (0..test.y.len())
            .filter(|&i| ev.predictions[i] != test.y[i])
            .collect();
        // Most confidently wrong first (S5's "25 most confidently wrong").
        wrong.sort_by(|&a, &b| ev.confidence[b].total_cmp(&ev.confidence[a]));
        out.mistakes = wrong
            .iter()
            .take(KEEP_MISTAKES)
            .map(|&i| Mistake {
                index: i,
                truth: test.y[i],
                predicted: ev.predictions[i],
                confidence: f64::from(ev.confidence[i]),
                pixels: hex(&splits.test.raw[i * PIXELS..(i + 1) * PIXELS]),
            })
            .collect();
        let (m, s) = crate::format::mean_std(&ev.batch_ms);
        out.inference_ms_per_batch_mean = Some(m);
        out.inference_ms_per_batch_std = Some(s);
        if !ev.loss.is_finite() && status == Status::Ok {
            status = Status::Diverged;
        }
    }
    out.status = status;
    out.total_seconds = started.elapsed().as_secs_f64();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::optim::OptimState;
    use crate::spec::Spec;
    use crate::trial::Trial;
    use burn::optim::SimpleOptimizer;

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
            threads: 2,
            progress: &mut |_| {},
            cancel: &cancel,
        };
        BurnEngine.run(&t.config, &mut ctx).unwrap()
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

    type F = burn::backend::Flex;

    /// Runs `steps` updates of one optimizer on p = [1, -2] with gradients g_t = [0.5, 0.1] · t.
    fn steps(kind: crate::config::OptimizerKind, extra: &str, steps: usize) -> Vec<f32> {
        let mut c: crate::config::OptimizerConfig = serde_json::from_str(&format!(
            "{{\"kind\": {}{extra}}}",
            serde_json::to_string(&kind).unwrap()
        ))
        .unwrap();
        c.learning_rate = Some(0.1);
        let o = Optim::new(&c);
        let dev = burn::backend::flex::FlexDevice;
        let mut p: Tensor<F, 1> = Tensor::from_data(TensorData::new(vec![1.0f32, -2.0], [2]), &dev);
        let mut state: Option<OptimState<F, 1>> = None;
        for t in 1..=steps {
            let g: Tensor<F, 1> = Tensor::from_data(
                TensorData::new(vec![0.5 * t as f32, 0.1 * t as f32], [2]),
                &dev,
            );
            let (np, ns) = <Optim as SimpleOptimizer<F>>::step(&o, 0.1, p, g, state);
            p = np;
            state = ns;
        }
        p.into_data().iter::<f32>().collect()
    }

    /// PyTorch's update rules on scalars, written out independently of the tensor code.
    fn reference(
        kind: &str,
        wd: f64,
        momentum: f64,
        nesterov: bool,
        b2: f64,
        n: usize,
    ) -> Vec<f64> {
        let (lr, b1, eps, alpha) = (0.1, 0.9, 1e-8, 0.99);
        let mut out = vec![];
        for (mut p, g0) in [(1.0f64, 0.5f64), (-2.0, 0.1)] {
            let (mut m, mut v, mut buf) = (0.0, 0.0, None::<f64>);
            for t in 1..=n {
                let mut g = g0 * t as f64;
                let tf = t as i32;
                match kind {
                    "sgd" => {
                        g += wd * p;
                        if momentum > 0.0 {
                            let b = buf.map_or(g, |b| momentum * b + g);
                            buf = Some(b);
                            g = if nesterov { g + momentum * b } else { b };
                        }
                        p -= lr * g;
                    }
                    "adam" | "adamw" => {
                        if kind == "adam" {
                            g += wd * p
                        } else {
                            p *= 1.0 - lr * wd
                        }
                        m = b1 * m + (1.0 - b1) * g;
                        v = b2 * v + (1.0 - b2) * g * g;
                        let mh = m / (1.0 - b1.powi(tf));
                        let vh = v / (1.0 - b2.powi(tf));
                        p -= lr * mh / (vh.sqrt() + eps);
                    }
                    "radam" => {
                        p *= 1.0 - lr * wd;
                        m = b1 * m + (1.0 - b1) * g;
                        v = b2 * v + (1.0 - b2) * g * g;
                        let mh = m / (1.0 - b1.powi(tf));
                        let rho_inf = 2.0 / (1.0 - b2) - 1.0;
                        let rho = rho_inf - 2.0 * t as f64 * b2.powi(tf) / (1.0 - b2.powi(tf));
                        if rho > 5.0 {
                            let l = (1.0 - b2.powi(tf)).sqrt() / (v.sqrt() + eps);
                            let r = ((rho - 4.0) * (rho - 2.0) * rho_inf
                                / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho))
                                .sqrt();
                            p -= lr * mh * r * l;
                        } else {
                            p -= lr * mh;
                        }
                    }
                    "rmsprop" => {
                        g += wd * p;
                        v = alpha * v + (1.0 - alpha) * g * g;
                        let s = g / (v.sqrt() + eps);
                        if momentum > 0.0 {
                            let b = buf.map_or(s, |b| momentum * b + s);
                            buf = Some(b);
                            p -= lr * b;
                        } else {
                            p -= lr * s;
                        }
                    }
                    _ => unreachable!(),
                }
            }
            out.push(p);
        }
        out
    }

    fn close(a: &[f32], b: &[f64]) {
        for (x, y) in a.iter().zip(b) {
            assert!(
                (f64::from(*x) - y).abs() < 1e-5 * (1.0 + y.abs()),
                "{a:?} vs {b:?}"
            );
        }
    }

    #[test]
    fn optimizers_match_hand_computed_steps() {
        use crate::config::OptimizerKind::*;
        // By hand: SGD momentum 0.9, wd 0.01, lr 0.1, g1 = [0.5, 0.1], g2 = [1.0, 0.2].
        // step 1: g' = [0.51, 0.08] = buf; p1 = [0.949, -2.008]
        // step 2: g' = [1.00949, 0.17992]; buf = [1.46849, 0.25192]; p2 = [0.802151, -2.033192]
        close(
            &steps(Sgd, ", \"momentum\": 0.9, \"weight_decay\": 0.01", 2),
            &[0.802151, -2.033192],
        );
        // By hand: Adam's first step moves each weight by lr against the gradient's sign.
        close(&steps(Adam, "", 1), &[0.9, -2.1]);
        close(
            &steps(Sgd, "", 2),
            &reference("sgd", 0.0, 0.0, false, 0.999, 2),
        );
        close(
            &steps(
                Sgd,
                ", \"momentum\": 0.9, \"nesterov\": true, \"weight_decay\": 0.01",
                2,
            ),
            &reference("sgd", 0.01, 0.9, true, 0.999, 2),
        );
        close(
            &steps(Adam, ", \"weight_decay\": 0.1", 2),
            &reference("adam", 0.1, 0.0, false, 0.999, 2),
        );
        close(
            &steps(Adamw, ", \"weight_decay\": 0.1", 2),
            &reference("adamw", 0.1, 0.0, false, 0.999, 2),
        );
        // RAdam with beta2 0.9 crosses from the plain-momentum phase into the rectified one.
        close(
            &steps(Radam, ", \"weight_decay\": 0.1, \"betas\": [0.9, 0.9]", 12),
            &reference("radam", 0.1, 0.0, false, 0.9, 12),
        );
        close(
            &steps(Rmsprop, "", 2),
            &reference("rmsprop", 0.0, 0.0, false, 0.999, 2),
        );
        close(
            &steps(Rmsprop, ", \"momentum\": 0.5, \"weight_decay\": 0.01", 2),
            &reference("rmsprop", 0.01, 0.5, false, 0.999, 2),
        );
    }
}
