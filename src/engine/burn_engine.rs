//! The burn engine: one trial from data to final metrics, generic over the backend. CPU trials
//! run on Flex inside their own rayon pool (so `threads` bounds them); CUDA trials on burn's
//! Cuda backend when the `cuda` feature is built in.

use super::model::Net;
use super::optim::Optim;
use super::schedule::lr_at;
use super::{Device, Engine, EpochRow, Mistake, Progress, Status, TrialResult};
use crate::config::{StopMetric, TrialConfig};
use crate::data::{self, CLASSES, PIXELS, Part, Stream, augment};
use crate::plan::Trial;
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
    fn run(
        &self,
        trial: &Trial,
        device: Device,
        threads: usize,
        progress: &mut (dyn FnMut(Progress) + Send),
        cancel: &AtomicBool,
    ) -> Result<TrialResult, String> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .build()
            .map_err(|e| format!("cannot start a thread pool: {e}"))?;
        pool.install(|| match device {
            Device::Cpu => train::<CpuBackend>(
                trial,
                burn::backend::flex::FlexDevice,
                device,
                progress,
                cancel,
            ),
            #[cfg(feature = "cuda")]
            Device::Cuda(i) => train::<CudaBackend>(
                trial,
                burn::backend::cuda::CudaDevice::new(i),
                device,
                progress,
                cancel,
            ),
            #[cfg(not(feature = "cuda"))]
            Device::Cuda(_) => Err(
                "this hypersweep was built without the `cuda` feature; rebuild with default features"
                    .into(),
            ),
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

fn evaluate<B: Backend>(model: &Net<B>, set: &DeviceSet<B>) -> Option<Eval> {
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

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n;
    (m, var.sqrt())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn train<B: AutodiffBackend>(
    trial: &Trial,
    device: B::Device,
    label: Device,
    progress: &mut (dyn FnMut(Progress) + Send),
    cancel: &AtomicBool,
) -> Result<TrialResult, String> {
    let cfg = &trial.config;
    let started = Instant::now();
    let splits = data::prepare(&cfg.data, cfg.seed)?;
    let mut out = TrialResult {
        id: trial.id.clone(),
        name: trial.name.clone(),
        device: label.to_string(),
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
        return Err("drop_last leaves no batch".into());
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
        let (m, s) = mean_std(&ev.batch_ms);
        out.inference_ms_per_batch_mean = Some(m);
        out.inference_ms_per_batch_std = Some(s);
        if !ev.loss.is_finite() && status == Status::Ok {
            status = Status::Diverged;
        }
    }
    out.status = Some(status);
    out.total_seconds = started.elapsed().as_secs_f64();
    Ok(out)
}
