//! Resuming a built-in trial: the state its checkpoint holds — weights, optimizer moments, every
//! random stream's position, the early-stopping state and best weights, the epochs so far, and
//! the batch an interrupted epoch stopped at — saved and read back so that a resumed trial ends
//! with the numbers of an uninterrupted one (bit for bit on CPU with the same threads).

use super::early_stop::EarlyStop;
use super::epochs::{At, MidEpoch, Start, Trainer};
use super::model::Net;
use super::net_ops::NetOps;
use super::{TrialContext, TrialResult};
use crate::store::TrialCheckpoint;
use crate::trial::EpochRow;
use burn::module::Module;
use burn::optim::Optimizer;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Recorder};
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

/// burn's named MessagePack records at full precision: weights and moments saved exactly.
type Rec = NamedMpkBytesRecorder<FullPrecisionSettings>;

/// Everything but the weights and moments (they are burn records beside it).
#[derive(Serialize, Deserialize)]
struct State {
    /// Epochs complete.
    epoch: usize,
    /// Word positions of the batch, dropout and augmentation streams, as (high, low) halves.
    rngs: [(u64, u64); 3],
    /// The early-stopping policy's best (score, epoch) and patience left.
    stop: (Option<(f64, usize)>, usize),
    /// The epoch of the best weights saved beside, when they will be restored.
    best_epoch: Option<usize>,
    epochs: Vec<EpochRow>,
    step_losses: Vec<f64>,
    notes: Vec<String>,
    /// Training samples and step seconds of the epochs complete.
    seen: (usize, f64),
    mid: Option<MidEpoch>,
}

/// A network's weights as burn's named MessagePack record at full precision: what a checkpoint
/// holds, and the final weights a trial keeps (`keep_final`).
pub(super) fn weights_bytes<B: AutodiffBackend>(model: &Net<B>) -> Result<Vec<u8>, String> {
    Rec::default()
        .record(model.clone().into_record(), ())
        .map_err(|e| e.to_string())
}

fn split(word: u128) -> (u64, u64) {
    ((word >> 64) as u64, word as u64)
}

fn join((hi, lo): (u64, u64)) -> u128 {
    (u128::from(hi) << 64) | u128::from(lo)
}

/// Sections of a checkpoint's payload, each behind its length.
fn pack(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![];
    for p in parts {
        out.extend_from_slice(&(p.len() as u64).to_le_bytes());
        out.extend_from_slice(p);
    }
    out
}

fn unpack(mut bytes: &[u8]) -> Option<Vec<&[u8]>> {
    let mut parts = vec![];
    while !bytes.is_empty() {
        let len = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?) as usize;
        parts.push(bytes.get(8..8 + len)?);
        bytes = &bytes[8 + len..];
    }
    Some(parts)
}

impl<B, O> Trainer<'_, B, O>
where
    B: AutodiffBackend + NetOps,
    B::InnerBackend: NetOps,
    O: Optimizer<Net<B>, B>,
{
    /// Writes the trial's checkpoint as the loop stands `at`; a checkpoint that cannot be
    /// written is a note on the trial (it trains on; a rerun would start from the last one
    /// written).
    pub(super) fn save(&self, ctx: &TrialContext<'_>, at: At<'_, B>, out: &mut TrialResult) {
        let Some(ck) = ctx.checkpoint.filter(|c| c.policy.enabled) else {
            return;
        };
        match self.payload(at, out) {
            Ok(bytes) => {
                if let Err(e) = ck.save(&bytes) {
                    out.notes.push(format!("cannot write a checkpoint: {e}"));
                }
            }
            Err(e) => out.notes.push(format!("cannot save a checkpoint: {e}")),
        }
    }

    fn payload(&self, at: At<'_, B>, out: &TrialResult) -> Result<Vec<u8>, String> {
        let model = weights_bytes(at.model)?;
        let optim = Rec::default()
            .record(self.optim.to_record(), ())
            .map_err(|e| e.to_string())?;
        let best = match at.best {
            Some((_, m)) => weights_bytes(m)?,
            None => vec![],
        };
        let state = State {
            epoch: at.epoch,
            rngs: [0, 1, 2].map(|i| split(self.rngs[i].get_word_pos())),
            stop: at.stopper.state(),
            best_epoch: at.best.as_ref().map(|(e, _)| *e),
            epochs: out.epochs.clone(),
            step_losses: out.step_losses.clone(),
            notes: out.notes.clone(),
            seen: at.seen,
            mid: at.mid.map(MidEpoch::of),
        };
        let state = rmp_serde::to_vec(&state).map_err(|e| e.to_string())?;
        Ok(pack(&[&state, &model, &optim, &best]))
    }

    /// Where the epoch loop starts for `model` (newly built): from the trial's checkpoint when
    /// a previous attempt left one (its weights, moments, streams and epochs restored into
    /// `self` and `out`), else from the first epoch. A checkpoint that cannot be used is a
    /// note, and the trial starts over.
    pub fn start(
        &mut self,
        model: Net<B>,
        ctx: &TrialContext<'_>,
        out: &mut TrialResult,
    ) -> Start<B> {
        let fresh = |model| Start::fresh(model, self.cfg);
        let Some(ck) = ctx.checkpoint.filter(|c| c.policy.enabled) else {
            return fresh(model);
        };
        let bytes = match ck.load() {
            Ok(Some(b)) => b,
            Ok(None) => return fresh(model),
            Err(e) => {
                out.notes
                    .push(format!("checkpoint not used, trained from the start: {e}"));
                return fresh(model);
            }
        };
        match self.restore(model.clone(), &bytes, out) {
            Ok(start) => {
                note_resumed(ck, &start, out);
                start
            }
            Err(e) => {
                out.notes.push(format!(
                    "checkpoint {} not used, trained from the start: {e}",
                    ck.dir.display()
                ));
                fresh(model)
            }
        }
    }

    fn restore(
        &mut self,
        model: Net<B>,
        bytes: &[u8],
        out: &mut TrialResult,
    ) -> Result<Start<B>, String> {
        let [state, weights, optim, best] = unpack(bytes)
            .and_then(|p| <[&[u8]; 4]>::try_from(p).ok())
            .ok_or("its sections are damaged")?;
        let state: State = rmp_serde::from_slice(state).map_err(|e| e.to_string())?;
        let rec = Rec::default();
        let load = |bytes: &[u8], model: Net<B>| -> Result<Net<B>, String> {
            let r = rec
                .load(bytes.to_vec(), self.device)
                .map_err(|e| e.to_string())?;
            Ok(model.load_record(r))
        };
        let restored = load(weights, model.clone())?;
        let moments = rec
            .load(optim.to_vec(), self.device)
            .map_err(|e| e.to_string())?;
        let best = match state.best_epoch {
            Some(e) => Some((e, load(best, model)?)),
            None => None,
        };
        // Nothing of `self` changes until everything read back.
        self.optim = self.optim.clone().load_record(moments);
        for (rng, word) in self.rngs.iter_mut().zip(state.rngs) {
            rng.set_word_pos(join(word));
        }
        let mut stopper = EarlyStop::new(&self.cfg.early_stopping, self.cfg.epochs);
        stopper.resume(state.stop);
        out.epochs = state.epochs;
        out.step_losses = state.step_losses;
        out.notes = state.notes;
        Ok(Start {
            model: restored,
            epoch: state.epoch,
            best,
            stopper,
            mid: state.mid,
            seen: state.seen,
        })
    }
}

/// The note a resumed trial carries, and `resumed_from_epoch`.
fn note_resumed<B: AutodiffBackend>(ck: &TrialCheckpoint, start: &Start<B>, out: &mut TrialResult) {
    out.resumed_from_epoch = Some(start.epoch);
    let place = match &start.mid {
        Some(m) => format!("epoch {} after {} steps", start.epoch + 1, m.steps),
        None => format!("the end of epoch {}", start.epoch),
    };
    out.notes.push(format!(
        "resumed from its checkpoint at {place} (attempt {})",
        ck.restarts + 1
    ));
}

#[cfg(test)]
mod tests {
    use crate::engine::{BurnEngine, Device, Engine, Progress, Status, TrialContext, TrialResult};
    use crate::spec::{CheckpointPolicy, Spec};
    use crate::store::TrialCheckpoint;
    use crate::trial::Trial;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn trial(yaml: &str) -> Trial {
        crate::plan::expand(&Spec::parse("t.yaml", yaml).unwrap())
            .unwrap()
            .trials
            .remove(0)
    }

    /// Trains `t` on one thread with `checkpoint`; `cancel` is set after epoch `stop_after`
    /// (and may also be set from outside).
    fn attempt(
        t: &Trial,
        checkpoint: Option<&TrialCheckpoint>,
        cancel: &AtomicBool,
        stop_after: Option<usize>,
    ) -> TrialResult {
        let mut progress = |p: Progress| {
            if let Progress::Epoch(row) = p
                && stop_after == Some(row.epoch)
            {
                cancel.store(true, Ordering::SeqCst);
            }
        };
        let mut ctx = TrialContext {
            device: Device::Cpu,
            threads: crate::cores::Threads::fixed(1),
            progress: &mut progress,
            cancel,
            stop_now: &crate::engine::NEVER,
            checkpoint,
        };
        BurnEngine.run(t, &mut ctx).unwrap()
    }

    /// What must not change when a trial is resumed: every epoch's numbers, every step's loss,
    /// the test metrics and confusion matrix, the status.
    fn numbers(r: &TrialResult) -> impl PartialEq + std::fmt::Debug {
        let rows: Vec<_> = r
            .epochs
            .iter()
            .map(|e| {
                (
                    e.epoch,
                    e.train_loss,
                    e.train_accuracy,
                    e.val_loss,
                    e.val_accuracy,
                    e.lr,
                )
            })
            .collect();
        (
            r.status,
            rows,
            r.step_losses.clone(),
            r.test_loss,
            r.test_accuracy,
            r.confusion_matrix.clone(),
            r.best_epoch,
        )
    }

    const MLP: &str = "name: t\ndata: {split: {official: true, val: 0.1}, train_size: 600}\nfixed:\n  model: {kind: mlp, hidden: [32], dropout: 0.3}\n  optimizer: {kind: adam, learning_rate: 0.002}\n  schedule: {kind: cosine}\n  batch_size: 32\n  epochs: 4\n  augment: {rotate: 10}\n  log_steps: true\n  restore_best: true\n  early_stopping: {patience: 3}\n  seed: 5\n";

    #[test]
    fn a_trial_stopped_at_an_epoch_end_resumes_to_the_same_numbers() {
        let t = trial(MLP);
        let never = AtomicBool::new(false);
        let whole = attempt(&t, None, &never, None);
        assert_eq!(whole.epochs.len(), 4);
        let dir = tempfile::tempdir().unwrap();
        let policy = CheckpointPolicy {
            every_epochs: Some(1),
            every_minutes: None,
            ..CheckpointPolicy::default()
        };
        let first = TrialCheckpoint::start(dir.path(), policy).unwrap();
        let cancel = AtomicBool::new(false);
        let stopped = attempt(&t, Some(&first), &cancel, Some(2));
        assert_eq!(stopped.status, Status::Interrupted);
        assert_eq!(stopped.epochs.len(), 2);
        let second = TrialCheckpoint::start(dir.path(), policy).unwrap();
        let resumed = attempt(&t, Some(&second), &AtomicBool::new(false), None);
        assert_eq!(resumed.resumed_from_epoch, Some(2), "{:?}", resumed.notes);
        assert_eq!(numbers(&resumed), numbers(&whole));
    }

    #[test]
    fn a_trial_stopped_mid_epoch_resumes_from_that_batch_to_the_same_numbers() {
        // One long epoch stopped by a timer at whatever batch it reached, twice over.
        let t = trial(&MLP.replace("epochs: 4", "epochs: 2\n  steps_per_epoch: 400"));
        let never = AtomicBool::new(false);
        let whole = attempt(&t, None, &never, None);
        let dir = tempfile::tempdir().unwrap();
        let policy = CheckpointPolicy::default();
        let mut stops = vec![];
        let resumed = loop {
            let ck = TrialCheckpoint::start(dir.path(), policy).unwrap();
            let cancel = AtomicBool::new(false);
            let r = std::thread::scope(|s| {
                if stops.len() < 2 {
                    s.spawn(|| {
                        std::thread::sleep(std::time::Duration::from_millis(150));
                        cancel.store(true, Ordering::SeqCst);
                    });
                }
                attempt(&t, Some(&ck), &cancel, None)
            });
            if r.status != Status::Interrupted {
                break r;
            }
            stops.push(r.epochs.len());
        };
        assert_eq!(stops.len(), 2, "{:?}", resumed.notes);
        assert!(
            resumed
                .notes
                .iter()
                .any(|n| n.contains("steps (attempt 3)")),
            "{:?}",
            resumed.notes
        );
        assert_eq!(numbers(&resumed), numbers(&whole));
    }
}
