//! The epoch loop of one trial: each epoch's minibatches and optimizer steps, its validation
//! and row, and the reasons to stop early (cancellation, divergence, the early-stopping policy).

use super::early_stop::{Action, EarlyStop};
use super::eval::{DeviceSet, Eval, evaluate};
use super::model::Net;
use super::net_ops::NetOps;
use super::schedule::lr_at;
use super::{EpochRow, Progress, Status, TrialContext, TrialResult};
use crate::config::TrialConfig;
use crate::cores::Pool;
use crate::data::{self, PIXELS, Part, Stream, augment};
use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Int, Tensor, TensorData};
use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// A mean training loss this far above chance level (ln 10 ≈ 2.3 for ten classes) means the
/// weights blew up: a learning rate of 1000 sends the loss to 1e11 and then leaves the net at
/// chance with a finite loss, which without this rule would be reported `ok`.
pub(super) const EXPLODED_LOSS: f64 = 100.0 * std::f64::consts::LN_10;

/// One epoch's minibatches, drawn as they are needed: `steps_per_epoch: 1e8` must not build
/// a hundred million index lists before the first step. The draws are the same, in the same
/// order, as drawing them all up front. Saved as it stands in a mid-epoch checkpoint.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) enum Batches {
    /// `left` more batches of `bs` indices drawn with replacement.
    Sampled { left: usize, bs: usize, n: usize },
    /// One shuffled pass in chunks of `bs` (the last one dropped when short and `drop_last`).
    Shuffled {
        order: Vec<usize>,
        at: usize,
        bs: usize,
        drop_last: bool,
    },
}

impl Batches {
    pub(super) fn new(cfg: &TrialConfig, n: usize, bs: usize, rng: &mut impl Rng) -> Batches {
        match cfg.steps_per_epoch {
            Some(k) => Batches::Sampled { left: k, bs, n },
            None => {
                let mut order: Vec<usize> = (0..n).collect();
                order.shuffle(rng);
                Batches::Shuffled {
                    order,
                    at: 0,
                    bs,
                    drop_last: cfg.drop_last,
                }
            }
        }
    }

    pub(super) fn next(&mut self, rng: &mut impl Rng) -> Option<Vec<usize>> {
        match self {
            Batches::Sampled { left, bs, n } => {
                if *left == 0 {
                    return None;
                }
                *left -= 1;
                Some((0..*bs).map(|_| rng.random_range(0..*n)).collect())
            }
            Batches::Shuffled {
                order,
                at,
                bs,
                drop_last,
            } => {
                let end = (*at + *bs).min(order.len());
                if *at >= end || (*drop_last && end - *at < *bs) {
                    return None;
                }
                let batch = order[*at..end].to_vec();
                *at = end;
                Some(batch)
            }
        }
    }
}

/// What stays with a trial's training from epoch to epoch: its config, the training split (on
/// the device and raw, for augmentation), the optimizer and the random streams of batches,
/// dropout and augmentation.
pub struct Trainer<'a, B: AutodiffBackend, O> {
    pub(super) cfg: &'a TrialConfig,
    pub(super) device: &'a B::Device,
    train: &'a Part,
    x_train: Tensor<B::InnerBackend, 2>,
    batch_size: usize,
    pub(super) optim: O,
    /// The streams of batches, dropout and augmentation, in that order.
    pub(super) rngs: [ChaCha8Rng; 3],
}

/// Where the epoch loop starts: a fresh trial's first epoch, or where its checkpoint left it.
pub struct Start<B: AutodiffBackend> {
    /// The weights to train on.
    pub model: Net<B>,
    /// Epochs already complete.
    pub epoch: usize,
    /// The best validation epoch (1-based) and its weights, when they will be restored.
    pub best: Option<(usize, Net<B>)>,
    /// The early-stopping policy as it stood.
    pub stopper: EarlyStop,
    /// The epoch an interrupt stopped part-way, to go on from the batch it stopped at.
    pub mid: Option<MidEpoch>,
    /// Training samples and step time of the epochs complete.
    pub seen: (usize, f64),
}

impl<B: AutodiffBackend> Start<B> {
    /// The start of a trial trained from its first epoch.
    pub fn fresh(model: Net<B>, cfg: &TrialConfig) -> Self {
        Start {
            model,
            epoch: 0,
            best: None,
            stopper: EarlyStop::new(&cfg.early_stopping, cfg.epochs),
            mid: None,
            seen: (0, 0.0),
        }
    }
}

/// How an epoch's steps ended.
enum EpochEnd<B: AutodiffBackend> {
    /// All of them ran: what they measured, the epoch's row and its validation.
    Done(EpochSteps, EpochRow, Option<Eval>),
    /// The trial was asked to stop: the epoch as it stood at the batch it stopped on.
    Paused(EpochRun<B>),
}

/// One batch's forward pass.
struct BatchLoss<B: AutodiffBackend> {
    /// The mean loss, on the autodiff graph.
    loss: Tensor<B, 1>,
    /// The same loss off the graph, for the epoch's sums.
    value: Tensor<B::InnerBackend, 1>,
    /// How many samples of the batch the model got right.
    correct: Tensor<B::InnerBackend, 1, Int>,
}

/// What one epoch's steps measured.
struct EpochSteps {
    /// Mean of the steps' losses.
    loss: f64,
    correct: i64,
    samples: usize,
    /// Every step's loss, when the config logs them.
    step_losses: Vec<f64>,
    /// Wall time of the steps.
    seconds: f64,
}

/// An epoch's batches and its sums so far (kept on the device, read back once per epoch rather
/// than once per step).
pub(super) struct EpochRun<B: AutodiffBackend> {
    pub(super) batches: Batches,
    pub(super) steps: usize,
    pub(super) samples: usize,
    pub(super) loss_sum: Option<Tensor<B::InnerBackend, 1>>,
    pub(super) correct_sum: Option<Tensor<B::InnerBackend, 1, Int>>,
    pub(super) step_losses: Vec<Tensor<B::InnerBackend, 1>>,
    /// Seconds its steps took before an interrupt (the epoch resumed from a checkpoint).
    pub(super) seconds_before: f64,
}

impl<B: AutodiffBackend> EpochRun<B> {
    fn new(cfg: &TrialConfig, n: usize, bs: usize, rng: &mut impl Rng) -> Self {
        EpochRun {
            batches: Batches::new(cfg, n, bs, rng),
            steps: 0,
            samples: 0,
            loss_sum: None,
            correct_sum: None,
            step_losses: vec![],
            seconds_before: 0.0,
        }
    }

    /// Counts one step's loss and correct answers.
    fn add(
        &mut self,
        loss: Tensor<B::InnerBackend, 1>,
        correct: Tensor<B::InnerBackend, 1, Int>,
        samples: usize,
        log_steps: bool,
    ) {
        self.steps += 1;
        self.samples += samples;
        if log_steps {
            self.step_losses.push(loss.clone());
        }
        self.loss_sum = Some(match self.loss_sum.take() {
            Some(s) => s + loss,
            None => loss,
        });
        self.correct_sum = Some(match self.correct_sum.take() {
            Some(s) => s + correct,
            None => correct,
        });
    }

    /// The epoch's mean loss, correct answers and step losses (its time is filled in later).
    fn finish(self) -> EpochSteps {
        let loss = self
            .loss_sum
            .map(|t| f64::from(t.into_data().iter::<f32>().next().unwrap_or(f32::NAN)))
            .unwrap_or(f64::NAN)
            / self.steps.max(1) as f64;
        let correct = self
            .correct_sum
            .map(|t| t.into_data().iter::<i64>().next().unwrap_or(0))
            .unwrap_or(0);
        let step_losses = if self.step_losses.is_empty() {
            vec![]
        } else {
            let all = Tensor::cat(self.step_losses, 0).into_data();
            all.iter::<f32>().map(f64::from).collect()
        };
        EpochSteps {
            loss,
            correct,
            samples: self.samples,
            step_losses,
            seconds: 0.0,
        }
    }
}

impl<'a, B, O> Trainer<'a, B, O>
where
    B: AutodiffBackend + NetOps,
    B::InnerBackend: NetOps,
    O: Optimizer<Net<B>, B>,
{
    /// A trainer for `cfg` on the split `train`, its pixels `x_train` already on `device`.
    pub fn new(
        cfg: &'a TrialConfig,
        (train, x_train): (&'a Part, Tensor<B::InnerBackend, 2>),
        batch_size: usize,
        optim: O,
        device: &'a B::Device,
    ) -> Self {
        Trainer {
            cfg,
            device,
            train,
            x_train,
            batch_size,
            optim,
            rngs: [
                data::rng(cfg.seed, Stream::Batches),
                data::rng(cfg.seed, Stream::Dropout),
                data::rng(cfg.seed, Stream::Augment),
            ],
        }
    }

    /// The epoch loop from `start`: trains, validates and reports each epoch, adds its row
    /// (and step losses and notes) to `out`, and stops on cancellation, divergence or early
    /// stopping. Checkpoints go to the context's checkpoint as its policy says, and whenever
    /// the trial is asked to stop (at the batch it stops on).
    pub fn run(
        &mut self,
        start: Start<B>,
        (val, test): (&DeviceSet<B::InnerBackend>, &DeviceSet<B::InnerBackend>),
        out: &mut TrialResult,
        ctx: &mut TrialContext<'_>,
    ) -> Trained<B> {
        let cfg = self.cfg;
        // The epochs run on the trial's share of the cores as it stands when each starts.
        let mut pool = Pool::default();
        let Start {
            mut model,
            epoch: first,
            mut best,
            mut stopper,
            mut mid,
            mut seen,
        } = start;
        let mut status = Status::Ok;
        let gpu = super::gpu_faults::Watch::new(ctx.device);
        let mut last_save = (first, Instant::now());
        for epoch in first..cfg.epochs {
            let lr = lr_at(cfg.optimizer.lr(), &cfg.schedule, epoch, cfg.epochs);
            let resumed = mid.take().map(|m| m.into_run(self.device));
            let (next, end) =
                self.epoch_on(&mut pool, ctx, (model, resumed), (epoch, lr), (val, test));
            model = next;
            let (steps, row, v) = match end {
                EpochEnd::Done(steps, row, v) => (steps, row, v),
                EpochEnd::Paused(run) => {
                    status = Status::Interrupted;
                    let at = At::new(epoch, &model, &best, &stopper, seen);
                    self.save(ctx, at.paused(run), out);
                    break;
                }
            };
            out.step_losses.extend(&steps.step_losses);
            seen = (seen.0 + steps.samples, seen.1 + steps.seconds);
            out.epochs.push(row.clone());
            (ctx.progress)(Progress::Epoch(row));
            if gpu.fault().is_some() {
                // The engine fails the trial with the GPU's message; the epochs after it, and
                // the test set, would only repeat it.
                status = Status::Interrupted;
                break;
            }
            if !steps.loss.is_finite() || steps.loss > EXPLODED_LOSS {
                status = Status::Diverged;
                out.notes.push(format!(
                    "training loss became {} in epoch {}: stopped",
                    steps.loss,
                    epoch + 1
                ));
                break;
            }
            if let Some(v) = v
                && let Some(note) = observe(&mut stopper, &v, epoch, (&model, &mut best), cfg)
            {
                status = Status::StoppedEarly;
                out.notes.push(note);
                break;
            }
            let since = (epoch + 1 - last_save.0, last_save.1.elapsed().as_secs_f64());
            if epoch + 1 < cfg.epochs
                && ctx
                    .checkpoint
                    .is_some_and(|c| c.policy.due(since.0, since.1))
            {
                let at = At::new(epoch + 1, &model, &best, &stopper, seen);
                self.save(ctx, at, out);
                last_save = (epoch + 1, Instant::now());
            }
        }
        Trained {
            model,
            best,
            status,
            samples_seen: seen.0,
            train_seconds: seen.1,
        }
    }

    /// One epoch's steps and its row (with the validation), on the trial's share of the cores,
    /// from the batch an interrupted attempt stopped at when `resumed`: when the share changes
    /// mid-epoch (another trial ended or started), the steps go on from the next one on a pool
    /// of the new size. Paused when cancelled.
    fn epoch_on(
        &mut self,
        pool: &mut Pool,
        ctx: &TrialContext<'_>,
        (mut model, resumed): (Net<B>, Option<EpochRun<B>>),
        (epoch, lr): (usize, f64),
        sets: (&DeviceSet<B::InnerBackend>, &DeviceSet<B::InnerBackend>),
    ) -> (Net<B>, EpochEnd<B>) {
        let (cancel, share) = (ctx.cancel, &ctx.threads);
        let t_epoch = Instant::now();
        let mut run = match resumed {
            Some(run) => run,
            None => EpochRun::new(
                self.cfg,
                self.train.len(),
                self.batch_size,
                &mut self.rngs[0],
            ),
        };
        let me = &mut *self;
        let threads = loop {
            let threads = share.now();
            let stop = || cancel.load(Ordering::Relaxed) || share.now() != threads;
            let (next, done) = pool.run(threads, || me.steps(model, lr, &mut run, stop));
            model = next;
            if done {
                break threads;
            }
            if cancel.load(Ordering::Relaxed) {
                run.seconds_before += t_epoch.elapsed().as_secs_f64();
                return (model, EpochEnd::Paused(run));
            }
        };
        let before = run.seconds_before;
        let mut steps = run.finish();
        steps.seconds = before + t_epoch.elapsed().as_secs_f64();
        pool.run(threads, move || {
            let (row, v) = me.epoch_row(&model, epoch, lr, &steps, sets, t_epoch);
            (model, EpochEnd::Done(steps, row, v))
        })
    }

    /// Steps of the epoch `run` at learning rate `lr` until it ends (true) or `stop` says to
    /// pause before the next step (false).
    fn steps(
        &mut self,
        mut model: Net<B>,
        lr: f64,
        run: &mut EpochRun<B>,
        stop: impl Fn() -> bool,
    ) -> (Net<B>, bool) {
        loop {
            if stop() {
                return (model, false);
            }
            let Some(idx) = run.batches.next(&mut self.rngs[0]) else {
                return (model, true);
            };
            let BatchLoss {
                loss,
                value,
                correct,
            } = self.batch_loss(&model, &idx);
            run.add(value, correct, idx.len(), self.cfg.log_steps);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = self.optim.step(lr, model, grads);
        }
    }

    /// Validates the weights after an epoch (and tests them, when the config asks every epoch)
    /// and builds the epoch's row; the validation also goes back for early stopping.
    fn epoch_row(
        &self,
        model: &Net<B>,
        epoch: usize,
        lr: f64,
        steps: &EpochSteps,
        (val, test): (&DeviceSet<B::InnerBackend>, &DeviceSet<B::InnerBackend>),
        started: Instant,
    ) -> (EpochRow, Option<Eval>) {
        let valid = model.valid();
        let v = evaluate(&valid, val);
        let te = if self.cfg.test_each_epoch {
            evaluate(&valid, test)
        } else {
            None
        };
        let row = EpochRow {
            epoch: epoch + 1,
            train_loss: steps.loss,
            train_accuracy: steps.correct as f64 / steps.samples.max(1) as f64,
            val_loss: v.as_ref().map(|e| e.loss),
            val_accuracy: v.as_ref().map(|e| e.accuracy),
            test_loss: te.as_ref().map(|e| e.loss),
            test_accuracy: te.as_ref().map(|e| e.accuracy),
            lr,
            seconds: started.elapsed().as_secs_f64(),
            threads: Some(rayon::current_num_threads()),
        };
        (row, v)
    }

    /// The forward pass on the samples `idx` (dropout on).
    fn batch_loss(&mut self, model: &Net<B>, idx: &[usize]) -> BatchLoss<B> {
        let b = idx.len();
        let ys: Vec<i64> = idx.iter().map(|&i| i64::from(self.train.y[i])).collect();
        let y: Tensor<B, 1, Int> = Tensor::from_data(TensorData::new(ys, [b]), self.device);
        let logits = if self.cfg.augment.enabled {
            let x = Tensor::from_inner(self.augmented(idx));
            model.forward(x, Some(&mut self.rngs[1]))
        } else {
            let data = Tensor::from_inner(self.x_train.clone());
            model.forward_rows(data, idx, Some(&mut self.rngs[1]))
        };
        let loss = -log_softmax(logits.clone(), 1)
            .gather(1, y.clone().reshape([b, 1]))
            .mean();
        let value = loss.clone().inner();
        let correct = logits
            .inner()
            .argmax(1)
            .reshape([b])
            .equal(y.inner())
            .int()
            .sum();
        BatchLoss {
            loss,
            value,
            correct,
        }
    }

    /// The pixels of the samples `idx`, augmented from the raw bytes.
    fn augmented(&mut self, idx: &[usize]) -> Tensor<B::InnerBackend, 2> {
        augmented(self.cfg, self.train, idx, &mut self.rngs[2], self.device)
    }
}

/// Gives the early-stopping policy an epoch's validation, keeping the weights as the best when
/// they will be restored; `Some(note)` when the trial stops here.
fn observe<B: AutodiffBackend>(
    stopper: &mut EarlyStop,
    v: &Eval,
    epoch: usize,
    (model, best): (&Net<B>, &mut Option<(usize, Net<B>)>),
    cfg: &TrialConfig,
) -> Option<String> {
    // The weights are cloned only when the test set will use them.
    let mut keep_best = || {
        if cfg.restore_best {
            *best = Some((epoch + 1, model.clone()));
        }
    };
    match stopper.observe(stopper.score(v.loss, v.accuracy), epoch + 1) {
        Action::Continue => None,
        Action::KeepBest => {
            keep_best();
            None
        }
        Action::Stop {
            note,
            keep_best: also_best,
        } => {
            if also_best {
                keep_best();
            }
            Some(note)
        }
    }
}

/// An epoch stopped part-way: its batches as they stand and its sums so far.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct MidEpoch {
    pub(super) batches: Batches,
    pub(super) steps: usize,
    pub(super) samples: usize,
    pub(super) loss_sum: Option<f32>,
    pub(super) correct_sum: Option<i64>,
    pub(super) step_losses: Vec<f32>,
    pub(super) seconds: f64,
}

impl MidEpoch {
    pub(super) fn of<B: AutodiffBackend>(run: EpochRun<B>) -> MidEpoch {
        let first = |d: TensorData| d.iter::<f32>().next().unwrap_or(f32::NAN);
        MidEpoch {
            batches: run.batches,
            steps: run.steps,
            samples: run.samples,
            loss_sum: run.loss_sum.map(|t| first(t.into_data())),
            correct_sum: run
                .correct_sum
                .map(|t| t.into_data().iter::<i64>().next().unwrap_or(0)),
            step_losses: run
                .step_losses
                .into_iter()
                .map(|t| first(t.into_data()))
                .collect(),
            seconds: run.seconds_before,
        }
    }

    /// The epoch as it stood, its sums back on `device`.
    pub(super) fn into_run<B: AutodiffBackend>(self, device: &B::Device) -> EpochRun<B> {
        let one = |v: f32| Tensor::from_data(TensorData::new(vec![v], [1]), device);
        EpochRun {
            batches: self.batches,
            steps: self.steps,
            samples: self.samples,
            loss_sum: self.loss_sum.map(one),
            correct_sum: self.correct_sum.map(|c| {
                Tensor::<B::InnerBackend, 1, Int>::from_data(TensorData::new(vec![c], [1]), device)
            }),
            step_losses: self.step_losses.into_iter().map(one).collect(),
            seconds_before: self.seconds,
        }
    }
}

/// Where the epoch loop stands when it saves: the epochs complete and what they left.
pub struct At<'a, B: AutodiffBackend> {
    pub(super) epoch: usize,
    pub(super) model: &'a Net<B>,
    pub(super) best: &'a Option<(usize, Net<B>)>,
    pub(super) stopper: &'a EarlyStop,
    pub(super) seen: (usize, f64),
    pub(super) mid: Option<EpochRun<B>>,
}

impl<'a, B: AutodiffBackend> At<'a, B> {
    /// At the end of an epoch, `epoch` of them complete.
    pub fn new(
        epoch: usize,
        model: &'a Net<B>,
        best: &'a Option<(usize, Net<B>)>,
        stopper: &'a EarlyStop,
        seen: (usize, f64),
    ) -> Self {
        At {
            epoch,
            model,
            best,
            stopper,
            seen,
            mid: None,
        }
    }

    /// Part-way through the next epoch, as `run` stands.
    pub(super) fn paused(self, run: EpochRun<B>) -> Self {
        At {
            mid: Some(run),
            ..self
        }
    }
}

/// How a trial's epochs ended.
pub struct Trained<B: AutodiffBackend> {
    /// The weights after the last epoch run.
    pub model: Net<B>,
    /// The best validation epoch (1-based) and its weights, kept only when they will be
    /// restored for the test set.
    pub best: Option<(usize, Net<B>)>,
    /// `ok`, or why the epochs stopped before the last.
    pub status: Status,
    /// Training samples over all complete epochs.
    pub samples_seen: usize,
    /// Time spent in the epochs' steps, without validation.
    pub train_seconds: f64,
}

/// The training samples `idx` of `train`, augmented from the raw bytes with `rng` as `cfg`
/// says, normalised, on `device`.
pub(super) fn augmented<B: burn::tensor::backend::Backend>(
    cfg: &TrialConfig,
    train: &Part,
    idx: &[usize],
    rng: &mut ChaCha8Rng,
    device: &B::Device,
) -> Tensor<B, 2> {
    let norm = &cfg.data.normalize;
    let (mean, std) = (norm.mean as f32, norm.std as f32);
    let mut xs = Vec::with_capacity(idx.len() * PIXELS);
    for &i in idx {
        augment::augment_into(
            &train.raw[i * PIXELS..(i + 1) * PIXELS],
            &cfg.augment,
            mean,
            std,
            rng,
            &mut xs,
        );
    }
    Tensor::from_data(TensorData::new(xs, [idx.len(), PIXELS]), device)
}
