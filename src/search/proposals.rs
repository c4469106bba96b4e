//! TPE's proposals, recorded in order in `proposals.jsonl` of the results directory (one trial
//! per line, rewritten under the directory's lock by the store). The plan holds the first trials (random
//! draws, `plan::TPE_STARTUP`); each later trial is proposed when a slot frees up, from the
//! trials finished by then. A resumed run or a joining worker first takes a recorded proposal
//! that nobody finished or holds, and only then proposes the next, so every process continues
//! the same sequence and none proposes a trial already recorded.
//!
//! A slot asks for a proposal the moment its trial ends, while the caller's thread is still
//! writing that trial's result: the proposer first waits for it (`settle`), so that on one slot
//! proposal k always sees the k trials before it, as a resumed run does. With several slots or
//! processes, which trials have finished when a slot frees up depends on timing, so the
//! sequence does too (resumed or not); it never repeats or loses a trial.

use super::tpe::{Observation, propose};
use crate::error::{Error, Result};
use crate::plan::from_template;
use crate::spec::Goal;
use crate::store::{Claims, Lock, Store, SweepInfo};
use crate::trial::{Status, Trial, TrialId};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Proposes the trials of a TPE sweep after the planned ones, for the scheduler.
pub struct Proposer {
    store: Store,
    info: SweepInfo,
    claims: Arc<Claims>,
    rerun_failed: bool,
    /// Trials this process queued or proposed already.
    handed: Mutex<HashSet<TrialId>>,
    /// How many slots this process trains on: all but the asking one may be busy.
    slots: usize,
}

/// How long a proposal waits for the result of the trial its slot just finished.
const SETTLE: Duration = Duration::from_secs(10);

impl Proposer {
    /// A proposer for a recorded sweep whose queue already holds `queued`, trained on `slots`
    /// slots.
    pub fn new(
        store: Store,
        info: SweepInfo,
        claims: Arc<Claims>,
        rerun_failed: bool,
        (queued, slots): (impl IntoIterator<Item = TrialId>, usize),
    ) -> Proposer {
        Proposer {
            store,
            info,
            claims,
            rerun_failed,
            handed: Mutex::new(queued.into_iter().collect()),
            slots: slots.max(1),
        }
    }

    /// Waits (at most `SETTLE`) until this process holds fewer claims than it has slots: the
    /// asking slot's trial has ended, and its claim goes once its result is written. Without
    /// this, proposal k would be made from the trials before it or from all but the last one,
    /// as the race went, and a resumed run (which sees them all) would propose otherwise.
    fn settle(&self) {
        let t0 = Instant::now();
        while t0.elapsed() < SETTLE {
            if self.claims.held_here() < self.slots {
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// The next trial to train, or `None` once `count` trials are proposed and handed out.
    pub fn next(&self) -> Option<Trial> {
        self.try_next().unwrap_or_else(|e| {
            tracing::error!("cannot propose a trial: {e}");
            None
        })
    }

    fn done(&self, t: &Trial) -> bool {
        match self.store.load(&t.id) {
            Ok(Some(r)) => {
                r.status.is_final() || (r.status == Status::Failed && !self.rerun_failed)
            }
            _ => false,
        }
    }

    fn try_next(&self) -> Result<Option<Trial>> {
        self.settle();
        let dir = self.store.dir();
        let _lock = Lock::wait(dir)?;
        let recorded = self.store.read_proposals();
        let mut handed = self.handed.lock().expect("handed");
        for t in &recorded {
            let held = || self.claims.current(&t.id).is_some_and(|f| f.live);
            if !handed.contains(&t.id) && !self.done(t) && !held() {
                handed.insert(t.id.clone());
                return Ok(Some(t.clone()));
            }
        }
        let ids: HashSet<&TrialId> = recorded.iter().map(|t| &t.id).collect();
        let planned: Vec<&Trial> = self
            .info
            .trials
            .iter()
            .filter(|t| !ids.contains(&t.id))
            .collect();
        let index = planned.len() + recorded.len();
        if index >= self.info.count.unwrap_or(0) || planned.is_empty() {
            return Ok(None);
        }
        let known: Vec<&Trial> = planned.iter().copied().chain(&recorded).collect();
        let trial = self.fresh(index, &known)?;
        self.store
            .write_proposals(recorded.iter().chain([&trial]))?;
        handed.insert(trial.id.clone());
        Ok(Some(trial))
    }

    /// The finished trials as TPE sees them: each one's sampled values and its loss (the
    /// report's metric, negated when maximized; +inf for pruned and diverged trials).
    fn history(&self, known: &[&Trial]) -> Vec<Observation> {
        let metric = &self.info.report.metric;
        let sign = if self.info.report.goal() == Goal::Maximize {
            -1.0
        } else {
            1.0
        };
        known
            .iter()
            .filter_map(|t| {
                let r = self.store.load(&t.id).ok()??;
                let loss = match (r.status, r.metric(metric)) {
                    (Status::Ok | Status::StoppedEarly, Some(v)) if v.is_finite() => sign * v,
                    (Status::Pruned | Status::Diverged, _) => f64::INFINITY,
                    _ => return None,
                };
                let values = self
                    .info
                    .space
                    .iter()
                    .filter_map(|p| t.varied_value(&p.key).map(|v| (p.key.clone(), v.clone())))
                    .collect();
                Some((values, loss))
            })
            .collect()
    }

    /// Proposal `index`: TPE's choice, or (when it repeats a known trial) TPE on another
    /// stream, then a random draw.
    fn fresh(&self, index: usize, known: &[&Trial]) -> Result<Trial> {
        let history = self.history(known);
        let seed = self.info.search_seed;
        let ids: HashSet<&TrialId> = known.iter().map(|t| &t.id).collect();
        for attempt in 0..64u64 {
            let stream = index as u64 + (attempt << 20);
            let draw = if attempt < 32 {
                propose(&self.info.space, &history, seed, stream)
            } else {
                crate::spec::draw(&self.info.space, seed, stream)
            };
            let trial = from_template(known[0], &draw)
                .map_err(|e| Error::Input(format!("a proposed trial is invalid: {e}")))?;
            if !ids.contains(&trial.id) {
                return Ok(trial);
            }
        }
        Err(Error::Input(format!(
            "TPE found no trial unlike the {} before it: the space looks exhausted; lower `count`",
            known.len()
        )))
    }
}
