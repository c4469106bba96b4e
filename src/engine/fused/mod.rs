//! Fused trials: up to K trials that share a network's shape, batch size and epochs train as
//! one model on one device ([`net::FusedNet`], [`optim::FusedOptim`]). Each member keeps its
//! own data split, batch order, initial weights, dropout masks and augmentation (the streams
//! it would use alone), its own learning rate and optimizer settings, and ends on its own: a
//! diverged, early-stopped, pruned or interrupted member leaves the group, which goes on
//! without it.

pub mod flex;
pub mod net;
pub mod optim;
mod sums;
#[cfg(test)]
mod tests;

use super::closing::{batch_size, summarise, test_and_close};
use super::early_stop::{Action, EarlyStop};
use super::epochs::{Batches, EXPLODED_LOSS, augmented};
use super::eval::evaluate;
use super::loaded::{Loaded, load};
use super::model::Net;
use super::net_ops::{NetOps, gather};
use super::optim::Optim;
use super::schedule::lr_at;
use super::{Done, EpochRow, Progress, Status, TrialContext, TrialResult};
use crate::config::TrialConfig;
use crate::data::{self, Stream};
use crate::error::{Error, Result};
use crate::trial::FusedGroup;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Int, Tensor, TensorData};
use net::{Dropouts, FusedNet, losses};
use optim::FusedOptim;
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;
use std::time::Instant;
use sums::Sums;

/// A member leaving the group: its current position, how it ended, and a note saying why.
type Ending = (usize, Status, Option<String>);

/// One member of a running group: its config, data and streams, and what it has measured.
struct Member<'a, B: AutodiffBackend> {
    /// Position in the group as it started (its context and its `done` call).
    pos: usize,
    cfg: &'a TrialConfig,
    loaded: Arc<Loaded<B::InnerBackend>>,
    /// Its own network as built alone, the layout its weights are read back into.
    like: Net<B::InnerBackend>,
    out: TrialResult,
    batch_rng: ChaCha8Rng,
    drop_rng: ChaCha8Rng,
    aug_rng: ChaCha8Rng,
    stopper: EarlyStop,
    /// The best validation epoch and its weights, kept when they will be restored.
    best: Option<(usize, Net<B::InnerBackend>)>,
    samples_seen: usize,
    batches: Option<Batches>,
}

impl<'a, B: AutodiffBackend> Member<'a, B>
where
    B::InnerBackend: NetOps + optim::MemberSteps,
{
    /// Member `pos` of a group of `k`, its data loaded and its network built. With `memory`
    /// (bytes available, and where), a group whose K batches would not fit fails before
    /// anything is allocated, with the advice to fuse fewer.
    fn new(
        pos: usize,
        cfg: &'a TrialConfig,
        device: &B::Device,
        (k, memory): (usize, Option<(u64, crate::devices::Device)>),
    ) -> Result<(Self, usize)> {
        let loaded = load::<B::InnerBackend>(&cfg.data, cfg.seed, device)?;
        let mut out = TrialResult {
            data: loaded.splits.summary.clone(),
            ..Default::default()
        };
        let bs = batch_size(cfg, loaded.splits.train.len(), &mut out.notes)?;
        if let Some((bytes, on)) = memory {
            cfg.check_memory(bs * k, bytes, &on.to_string())
                .map_err(|e| {
                    Error::Trial(format!(
                        "{e} (in a fused group of {k}: use a smaller --fuse)"
                    ))
                })?;
        }
        let like = Net::new(&cfg.model, &mut data::rng(cfg.seed, Stream::Init), device);
        let member = Member {
            pos,
            cfg,
            loaded,
            like,
            out,
            batch_rng: data::rng(cfg.seed, Stream::Batches),
            drop_rng: data::rng(cfg.seed, Stream::Dropout),
            aug_rng: data::rng(cfg.seed, Stream::Augment),
            stopper: EarlyStop::new(&cfg.early_stopping, cfg.epochs),
            best: None,
            samples_seen: 0,
            batches: None,
        };
        Ok((member, bs))
    }

    /// This member's pixels of the samples `idx` (augmented when its config says so).
    fn batch(&mut self, idx: &[usize], device: &B::Device) -> Tensor<B::InnerBackend, 2> {
        if self.cfg.augment.enabled {
            let train = &self.loaded.splits.train;
            augmented(self.cfg, train, idx, &mut self.aug_rng, device)
        } else {
            gather(self.loaded.x_train.clone(), idx)
        }
    }
}

/// A group as it trains: its members, their stacked weights and optimizer, and the sums of
/// the epoch under way, all in the members' current order.
struct Group<'a, B: AutodiffBackend> {
    members: Vec<Member<'a, B>>,
    net: FusedNet<B::InnerBackend>,
    optim: FusedOptim<B::InnerBackend>,
    sums: Sums<B::InnerBackend>,
    /// Each member's learning rate this epoch.
    lrs: Vec<f64>,
    device: &'a B::Device,
    info: FusedGroup,
    started: Instant,
    /// The group's time in training steps so far (every member's `train_seconds`).
    train_seconds: f64,
}

/// Trains the members `cfgs` as one model on `device`, handing each member's result to `done`
/// as it ends. A member whose data cannot be loaded fails alone, before the others start.
pub fn train_group<B>(
    cfgs: &[&TrialConfig],
    device: &B::Device,
    ctxs: &mut [TrialContext<'_>],
    (info, memory): (FusedGroup, Option<(u64, crate::devices::Device)>),
    done: Done<'_>,
) where
    B: AutodiffBackend + NetOps,
    B::InnerBackend: NetOps + optim::MemberSteps,
{
    let started = Instant::now();
    let mut members = vec![];
    let mut bs = 0;
    for (pos, cfg) in cfgs.iter().enumerate() {
        match Member::<B>::new(pos, cfg, device, (cfgs.len(), memory)) {
            Ok((m, b)) => {
                bs = b;
                members.push(m);
            }
            Err(e) => done(pos, Err(e)),
        }
    }
    if members.is_empty() {
        return;
    }
    let nets: Vec<&Net<B::InnerBackend>> = members.iter().map(|m| &m.like).collect();
    let net = FusedNet::stack(&nets);
    let settings = members
        .iter()
        .map(|m| Optim::new(&m.cfg.optimizer))
        .collect();
    let optim = FusedOptim::new(settings, net.params.len());
    let mut group = Group {
        members,
        net,
        optim,
        sums: Sums::default(),
        lrs: vec![],
        device,
        info,
        started,
        train_seconds: 0.0,
    };
    let epochs = cfgs[0].epochs;
    let gpu = super::gpu_faults::Watch::new(ctxs[0].device);
    for epoch in 0..epochs {
        if !group.epoch(epoch, bs, ctxs, done) {
            return;
        }
        if let Some(fault) = gpu.fault() {
            let why = format!("the GPU failed ({}): {fault}", ctxs[0].device);
            for m in std::mem::take(&mut group.members) {
                done(m.pos, Err(Error::Trial(why.clone())));
            }
            return;
        }
    }
    let all: Vec<Ending> = (0..group.members.len())
        .map(|i| (i, Status::Ok, None))
        .collect();
    group.end(&all, done);
}

impl<'a, B> Group<'a, B>
where
    B: AutodiffBackend + NetOps,
    B::InnerBackend: NetOps + optim::MemberSteps,
{
    /// One epoch: its steps, then each member's row, and the members it ends. False when no
    /// member is left.
    fn epoch(
        &mut self,
        epoch: usize,
        bs: usize,
        ctxs: &mut [TrialContext<'_>],
        done: Done<'_>,
    ) -> bool {
        let t0 = Instant::now();
        let n = self.members[0].loaded.splits.train.len();
        self.lrs = self
            .members
            .iter()
            .map(|m| lr_at(m.cfg.optimizer.lr(), &m.cfg.schedule, epoch, m.cfg.epochs))
            .collect();
        for m in &mut self.members {
            m.batches = Some(Batches::new(m.cfg, n, bs, &mut m.batch_rng));
        }
        self.sums = Sums::default();
        loop {
            // A member asked to stop (Ctrl-C, SIGTERM, its pruning) ends before the next step.
            let asked: Vec<Ending> = (0..self.members.len())
                .filter(|&i| ctxs[self.members[i].pos].cancelled())
                .map(|i| (i, Status::Interrupted, None))
                .collect();
            self.end(&asked, done);
            if self.members.is_empty() {
                return false;
            }
            let mut idx = vec![];
            for m in &mut self.members {
                let batches = m.batches.as_mut().expect("drawn above");
                idx.extend(batches.next(&mut m.batch_rng));
            }
            if idx.len() < self.members.len() {
                break;
            }
            self.step(&idx);
        }
        self.train_seconds += t0.elapsed().as_secs_f64();
        let ending = self.rows(epoch, t0, ctxs);
        self.end(&ending, done);
        !self.members.is_empty()
    }

    /// Each member's row of the epoch that just trained (validated, reported), and the members
    /// it ends: diverged, or stopped early by their own policy.
    fn rows(&mut self, epoch: usize, t0: Instant, ctxs: &mut [TrialContext<'_>]) -> Vec<Ending> {
        let (losses, correct, steps) = self.sums.read(self.members.len());
        let mut ending: Vec<Ending> = vec![];
        for i in 0..self.members.len() {
            let weights = self.net.member(i, &self.members[i].like);
            let m = &mut self.members[i];
            let v = evaluate(&weights, &m.loaded.val);
            let te = m
                .cfg
                .test_each_epoch
                .then(|| evaluate(&weights, &m.loaded.test))
                .flatten();
            let row = EpochRow {
                epoch: epoch + 1,
                train_loss: losses[i],
                train_accuracy: correct[i] as f64 / self.sums.samples.max(1) as f64,
                val_loss: v.as_ref().map(|e| e.loss),
                val_accuracy: v.as_ref().map(|e| e.accuracy),
                test_loss: te.as_ref().map(|e| e.loss),
                test_accuracy: te.as_ref().map(|e| e.accuracy),
                lr: self.lrs[i],
                seconds: t0.elapsed().as_secs_f64(),
                threads: Some(rayon::current_num_threads()),
            };
            if m.cfg.log_steps {
                m.out.step_losses.extend(&steps[i]);
            }
            m.samples_seen += self.sums.samples;
            m.out.epochs.push(row.clone());
            (ctxs[m.pos].progress)(Progress::Epoch(row));
            if !losses[i].is_finite() || losses[i] > EXPLODED_LOSS {
                let note = format!(
                    "training loss became {} in epoch {}: stopped",
                    losses[i],
                    epoch + 1
                );
                ending.push((i, Status::Diverged, Some(note)));
                continue;
            }
            let Some(v) = v else { continue };
            let restore = m.cfg.restore_best;
            match m
                .stopper
                .observe(m.stopper.score(v.loss, v.accuracy), epoch + 1)
            {
                Action::Continue => {}
                Action::KeepBest => {
                    if restore {
                        m.best = Some((epoch + 1, weights));
                    }
                }
                Action::Stop { note, keep_best } => {
                    if keep_best && restore {
                        m.best = Some((epoch + 1, weights));
                    }
                    ending.push((i, Status::StoppedEarly, Some(note)));
                }
            }
        }
        ending
    }

    /// One optimizer step of every member on its batch `idx[k]`.
    fn step(&mut self, idx: &[Vec<usize>]) {
        let (k, b) = (self.members.len(), idx[0].len());
        let device = self.device;
        let xs: Vec<_> = self
            .members
            .iter_mut()
            .zip(idx)
            .map(|(m, idx)| m.batch(idx, device))
            .collect();
        let x: Tensor<B, 3> = Tensor::from_inner(Tensor::stack(xs, 0));
        let ys: Vec<i64> = self
            .members
            .iter()
            .zip(idx)
            .flat_map(|(m, idx)| idx.iter().map(|&i| i64::from(m.loaded.splits.train.y[i])))
            .collect();
        let y: Tensor<B, 3, Int> = Tensor::from_data(TensorData::new(ys, [k, b, 1]), device);
        let params: Vec<Tensor<B, 3>> = self
            .net
            .params
            .iter()
            .map(|p| Tensor::from_inner(p.clone()).require_grad())
            .collect();
        let layout = self.net.layout();
        let mut drops = Dropouts {
            hidden: self.members.iter().map(|m| m.like.shape.dropout).collect(),
            input: self
                .members
                .iter()
                .map(|m| m.like.shape.input_dropout)
                .collect(),
            rngs: self.members.iter_mut().map(|m| &mut m.drop_rng).collect(),
        };
        let logits = layout.forward(&params, x, Some(&mut drops));
        let (loss, values, correct) = losses(logits, y);
        let log = self.members.iter().any(|m| m.cfg.log_steps);
        self.sums.add(values, correct, b, log);
        let grads = loss.backward();
        let g: Vec<Tensor<B::InnerBackend, 3>> = params
            .iter()
            .map(|p| p.grad(&grads).expect("every weight is on the loss's graph"))
            .collect();
        // The graph's copies share the weights' storage: dropped now, the update writes the
        // weights in place instead of copying all of them first (7% of a fused MLP's time).
        drop(params);
        let old = std::mem::take(&mut self.net.params);
        self.net.params = self.optim.step(&self.lrs, old, g);
    }

    /// Ends the members `ending` names (their current positions, each with its status and
    /// note), all at once: their test set (unless interrupted), their result to `done`; then
    /// the group shrinks to the others. One call per step or epoch, since positions change.
    fn end(&mut self, ending: &[Ending], done: Done<'_>) {
        if ending.is_empty() {
            return;
        }
        for (i, status, note) in ending {
            let (i, status) = (*i, *status);
            let weights = self.net.member(i, &self.members[i].like);
            let m = &mut self.members[i];
            m.out.notes.extend(note.clone());
            let final_weights = match m.best.take() {
                Some((epoch, w)) => {
                    m.out.notes.push(format!(
                        "test metrics use the weights of epoch {epoch} (best validation)"
                    ));
                    w
                }
                None => weights,
            };
            let mut out = std::mem::take(&mut m.out);
            summarise(&mut out, m.samples_seen, self.train_seconds);
            test_and_close(&mut out, status, &final_weights, &m.loaded);
            out.fused = Some(self.info.clone());
            out.total_seconds = self.started.elapsed().as_secs_f64();
            done(m.pos, Ok(out));
        }
        let keep: Vec<usize> = (0..self.members.len())
            .filter(|i| !ending.iter().any(|e| e.0 == *i))
            .collect();
        let mut slots: Vec<Option<Member<'a, B>>> = std::mem::take(&mut self.members)
            .into_iter()
            .map(Some)
            .collect();
        self.members = keep
            .iter()
            .map(|&i| slots[i].take().expect("kept once"))
            .collect();
        self.lrs = keep
            .iter()
            .filter_map(|&i| self.lrs.get(i).copied())
            .collect();
        if !self.members.is_empty() {
            self.net.keep(&keep);
            self.optim.keep(&keep, self.device);
            self.sums.keep(&keep, self.device);
        }
    }
}
