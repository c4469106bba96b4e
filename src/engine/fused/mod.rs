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
use rayon::prelude::*;
use std::sync::Arc;
use std::time::Instant;
use sums::Sums;

/// `f` of each item (one per member) in member order: on CPU side by side over the group's
/// threads, as unfused trials load, validate and test side by side on their cores (one after
/// another, a group of 16 spent 0.3 s of its 2.5 s there); elsewhere one after another on the
/// device.
fn each<I: Send, T: Send>(cpu: bool, items: Vec<I>, f: impl Fn(I) -> T + Sync + Send) -> Vec<T> {
    if cpu {
        items.into_par_iter().map(f).collect()
    } else {
        items.into_iter().map(f).collect()
    }
}

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
/// On CPU a group trains as several (see [`cpu_lanes`]).
struct Group<'a, B: AutodiffBackend> {
    /// On CPU, where the members' evaluations run side by side ([`each`]).
    cpu: bool,
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
    /// The position of the first of the contexts this group is given.
    base: usize,
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
    let cpu = ctxs[0].device == crate::devices::Device::Cpu;
    let mut members = vec![];
    let mut bs = 0;
    let built = each(cpu, (0..cfgs.len()).collect(), |pos| {
        Member::<B>::new(pos, cfgs[pos], device, (cfgs.len(), memory))
    });
    for (pos, built) in built.into_iter().enumerate() {
        match built {
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
    // The group's share of the cores, asked once its members are loaded (when the slots
    // starting beside it have taken their seats) and again before every epoch.
    let (threads, on) = (ctxs[0].threads.clone(), ctxs[0].device);
    let (lanes, size) = match cpu {
        true => cpu_lanes(
            members.len(),
            members[0].cfg.memory_need(bs).bytes(),
            threads.now(),
        ),
        false => (1, members.len()),
    };
    let mut lanes = split(members, lanes, size, ctxs, |wave, base| {
        Group::new(cpu, wave, device, (&info, started, base))
    });
    let done = std::sync::Mutex::new(done);
    let gpu = super::gpu_faults::Watch::new(on);
    let mut pool = crate::cores::Pool::default();
    for epoch in 0..cfgs[0].epochs {
        // Lanes side by side, one per thread: a lane's steps never wait for another's.
        pool.run(threads.now(), || {
            lanes.par_iter_mut().for_each(|(waves, ctxs)| {
                let mut done = |pos, r| report(&done, pos, r);
                for wave in waves.iter_mut().filter(|w| !w.members.is_empty()) {
                    wave.epoch(epoch, bs, ctxs, &mut done);
                }
            });
        });
        let mut waves = lanes.iter_mut().flat_map(|(waves, _)| waves.iter_mut());
        if waves.all(|w| w.members.is_empty()) {
            return;
        }
        if let Some(fault) = gpu.fault() {
            let why = format!("the GPU failed ({on}): {fault}");
            for (waves, _) in &mut lanes {
                for m in waves
                    .iter_mut()
                    .flat_map(|w| std::mem::take(&mut w.members))
                {
                    report(&done, m.pos, Err(Error::Trial(why.clone())));
                }
            }
            return;
        }
    }
    let done = done
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for wave in lanes.into_iter().flat_map(|(waves, _)| waves) {
        let mut wave = wave;
        let all: Vec<Ending> = (0..wave.members.len())
            .map(|i| (i, Status::Ok, None))
            .collect();
        wave.end(&all, done);
    }
}

/// Hands a member's result to the group's `done`, which the lanes share.
fn report(done: &std::sync::Mutex<Done<'_>>, pos: usize, r: Result<TrialResult>) {
    (done
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner))(pos, r);
}

/// One lane's waves and the contexts of its positions.
type Lane<'a, 'c, 't, B> = (Vec<Group<'a, B>>, &'c mut [TrialContext<'t>]);

/// The members (in position order) in `lanes` lanes of waves of `size`, each wave made by
/// `wave(members, base)`, where `base` is the position of the lane's first context. A lane's
/// contexts are those of its members' positions and of any member that failed between them.
fn split<'a, 'c, 't, B: AutodiffBackend>(
    members: Vec<Member<'a, B>>,
    lanes: usize,
    size: usize,
    ctxs: &'c mut [TrialContext<'t>],
    wave: impl Fn(Vec<Member<'a, B>>, usize) -> Group<'a, B>,
) -> Vec<Lane<'a, 'c, 't, B>> {
    let per_lane = members.len().div_ceil(lanes);
    let mut members = members.into_iter().peekable();
    let (mut rest, mut base) = (ctxs, 0);
    let mut out = vec![];
    while members.peek().is_some() {
        let mut lane = members
            .by_ref()
            .take(per_lane)
            .collect::<Vec<_>>()
            .into_iter();
        let end = members.peek().map_or(base + rest.len(), |m| m.pos);
        let (mine, others) = rest.split_at_mut(end - base);
        let mut waves = vec![];
        while lane.len() > 0 {
            waves.push(wave(lane.by_ref().take(size).collect(), base));
        }
        out.push((waves, mine));
        (rest, base) = (others, end);
    }
    out
}

/// Bytes of one thread's wave on CPU: the members' weights, gradients, optimizer state and
/// batch activations ([`TrialConfig::memory_need`]).
/// Measured on 2 cores, 16 fused trials over 16 unfused: the S5 MLP (5 MB a member) 0.96× in
/// waves of 1, 0.94× of 2, 0.91× of 4, 1.03× of 8; the S4 CNN (88 MB a member) 0.98× in waves
/// of 1, 0.99× of 2.
const WAVE_BYTES: f64 = 24e6;

/// How a group of `members` trains on CPU: in how many lanes side by side, and in waves of
/// how many members. On a GPU all members step together as one model: one launch per layer
/// instead of K is the point. On CPU there are no launches to save, and K members stepping
/// together hold K times an unfused trial's working set and wait for each other at every
/// layer: measured on 2 cores, 16 fused CNN trials took 1.17-1.25× their unfused time. So on
/// CPU the members are split into one lane per thread, as unfused trials take one core each,
/// and a lane steps its members in waves of about [`WAVE_BYTES`], each wave in turn every
/// epoch. A member's numbers do not depend on its lane or wave: members never mix.
fn cpu_lanes(members: usize, member_bytes: f64, threads: usize) -> (usize, usize) {
    #[cfg(test)]
    if let Some(forced) = tests::LANES.get() {
        return forced;
    }
    let lanes = threads.clamp(1, members);
    let per_lane = members.div_ceil(lanes);
    let fit = (WAVE_BYTES / member_bytes.max(1.0)) as usize;
    (lanes, fit.clamp(1, per_lane))
}

impl<'a, B> Group<'a, B>
where
    B: AutodiffBackend + NetOps,
    B::InnerBackend: NetOps + optim::MemberSteps,
{
    /// These members stacked into one model, given the contexts from position `base` on.
    fn new(
        cpu: bool,
        members: Vec<Member<'a, B>>,
        device: &'a B::Device,
        (info, started, base): (&FusedGroup, Instant, usize),
    ) -> Self {
        let nets: Vec<&Net<B::InnerBackend>> = members.iter().map(|m| &m.like).collect();
        let net = FusedNet::stack(&nets);
        let settings = members
            .iter()
            .map(|m| Optim::new(&m.cfg.optimizer))
            .collect();
        let optim = FusedOptim::new(settings, net.params.len());
        Group {
            cpu,
            members,
            net,
            optim,
            sums: Sums::default(),
            lrs: vec![],
            device,
            info: info.clone(),
            started,
            train_seconds: 0.0,
            base,
        }
    }

    /// One epoch: its steps, then each member's row, and the members it ends.
    fn epoch(&mut self, epoch: usize, bs: usize, ctxs: &mut [TrialContext<'_>], done: Done<'_>) {
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
                .filter(|&i| ctxs[self.members[i].pos - self.base].cancelled())
                .map(|i| (i, Status::Interrupted, None))
                .collect();
            self.end(&asked, done);
            if self.members.is_empty() {
                return;
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
    }

    /// Each member's row of the epoch that just trained (validated, reported), and the members
    /// it ends: diverged, or stopped early by their own policy.
    fn rows(&mut self, epoch: usize, t0: Instant, ctxs: &mut [TrialContext<'_>]) -> Vec<Ending> {
        let (losses, correct, steps) = self.sums.read(self.members.len());
        let mut ending: Vec<Ending> = vec![];
        let weights: Vec<_> = (self.members.iter().enumerate())
            .map(|(i, m)| self.net.member(i, &m.like))
            .collect();
        let members = &self.members;
        let evals = each(self.cpu, (0..members.len()).collect(), |i| {
            let m = &members[i];
            let v = evaluate(&weights[i], &m.loaded.val);
            let te = (m.cfg.test_each_epoch)
                .then(|| evaluate(&weights[i], &m.loaded.test))
                .flatten();
            (v, te)
        });
        for (i, ((v, te), weights)) in evals.into_iter().zip(weights).enumerate() {
            let m = &mut self.members[i];
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
            (ctxs[m.pos - self.base].progress)(Progress::Epoch(row));
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
        let x = if self.members.iter().any(|m| m.cfg.augment.enabled) {
            let xs = (self.members.iter_mut().zip(idx))
                .map(|(m, idx)| m.batch(idx, device))
                .collect();
            Tensor::stack(xs, 0)
        } else {
            let sets: Vec<_> = (self.members.iter().zip(idx))
                .map(|(m, idx)| (m.loaded.x_train.clone(), &idx[..]))
                .collect();
            B::InnerBackend::stacked_rows(&sets)
        };
        let x: Tensor<B, 3> = Tensor::from_inner(x);
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
        let mut closing = vec![];
        for (i, status, note) in ending {
            let weights = self.net.member(*i, &self.members[*i].like);
            let m = &mut self.members[*i];
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
            out.fused = Some(self.info.clone());
            closing.push((m.pos, *status, final_weights, m.loaded.clone(), out));
        }
        // Their test sets side by side (on CPU), their results handed on in order.
        let closed = each(
            self.cpu,
            closing,
            |(pos, status, weights, loaded, mut out)| {
                test_and_close(&mut out, status, &weights, &loaded);
                (pos, out)
            },
        );
        for (pos, mut out) in closed {
            out.total_seconds = self.started.elapsed().as_secs_f64();
            done(pos, Ok(out));
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
