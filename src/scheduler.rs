//! The device pool: slots (a device and a thread budget), a queue that starts the most expensive
//! trials first, failure isolation (a panic or error fails one trial), and cancellation. It
//! never prints: everything it does goes out as `SweepEvent`s.

use crate::cores::Threads;
use crate::engine::{Device, Engine, Progress, TrialContext};
use crate::events::{Stop, SweepEvent};
use crate::store::TrialCheckpoint;
use crate::trial::{Status, Trial, TrialResult};
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use crate::devices::Slot;

/// Staged stop: the first Ctrl-C stops new trials, the second interrupts running ones; a
/// SIGTERM does both at once (`src/signals.rs`). One more of either while running trials are
/// stopping ends their grace period: programs' groups are killed at once.
#[derive(Debug)]
pub struct Cancel {
    /// Set by the first interrupt: no new trial starts.
    pub stop_new: AtomicBool,
    /// Set by the second interrupt (or a SIGTERM): running trials stop and are recorded as
    /// interrupted.
    pub stop_running: AtomicBool,
    /// Set by an interrupt after `stop_running`: no more waiting for trials to stop.
    pub stop_now: AtomicBool,
    /// How long running trials have to stop once asked. A trial still running after it (a GPU
    /// kernel or compilation that never returns to the loop that checks the flag) is recorded
    /// as interrupted and left behind, so that the process can exit and a rerun retrains it.
    pub grace: Duration,
}

impl Default for Cancel {
    fn default() -> Self {
        Cancel {
            stop_new: AtomicBool::new(false),
            stop_running: AtomicBool::new(false),
            stop_now: AtomicBool::new(false),
            grace: Duration::from_secs(10),
        }
    }
}

impl Cancel {
    /// Records one interrupt (Ctrl-C): the next stage of stopping.
    pub fn press(&self) {
        if self.stop_running.load(Ordering::SeqCst) {
            self.stop_now.store(true, Ordering::SeqCst);
        } else if self.stop_new.swap(true, Ordering::SeqCst) {
            self.stop_running.store(true, Ordering::SeqCst);
        }
    }

    /// Stops everything at once: no new trial starts and running ones stop (SIGTERM); when
    /// they are already stopping, they stop now.
    pub fn stop_all(&self) {
        self.stop_new.store(true, Ordering::SeqCst);
        if self.stop_running.swap(true, Ordering::SeqCst) {
            self.stop_now.store(true, Ordering::SeqCst);
        }
    }

    /// How far stopping has gone.
    pub fn stage(&self) -> Stop {
        if self.stop_now.load(Ordering::SeqCst) {
            Stop::Now
        } else if self.stop_running.load(Ordering::SeqCst) {
            Stop::Running
        } else if self.stop_new.load(Ordering::SeqCst) {
            Stop::New
        } else {
            Stop::No
        }
    }
}

/// How long the sweep still waits for trials to stop once told to stop now: a built-in trial
/// stops at its next batch, a program's group is killed at once.
const STOP_NOW_WAIT: Duration = Duration::from_secs(2);

/// How often the event loop looks at the stop flags when no event arrives, so that a Ctrl-C
/// is acknowledged on screen at once even while every trial is deep in a long epoch.
const POLL: Duration = Duration::from_millis(100);

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

/// Asked by a slot before it trains a trial, on the slot's thread: false skips the trial (another
/// process holds it, or finished it).
pub type Claim = Arc<dyn Fn(&Trial, Device) -> bool + Send + Sync>;

/// Asked on a slot's thread after each epoch (or metrics row) of a running trial: `Some(why)`
/// stops the trial there, and it ends `pruned` (the sweep's early termination).
pub type Judge = Arc<dyn Fn(&Trial, &Progress) -> Option<String> + Send + Sync>;

/// Asked by a slot when the queue is empty: the next trial to train (a TPE proposal), or
/// `None` when there is no more.
pub type Next = Arc<dyn Fn() -> Option<Trial> + Send + Sync>;

/// Asked by a slot for each trial it claimed, before it starts: the trial's checkpoint (its
/// attempt counted), or `None` when none is kept.
pub type Attempt = Arc<dyn Fn(&Trial) -> Option<TrialCheckpoint> + Send + Sync>;

/// What the scheduler asks as it goes: whether a slot may train a trial, where its checkpoint
/// is, whether a running trial goes on, and which trial comes after the queued ones.
#[derive(Clone)]
pub struct Hooks {
    /// Asked before each trial.
    pub claim: Claim,
    /// Asked for each trial claimed.
    pub attempt: Option<Attempt>,
    /// Asked after each epoch, when the sweep stops weak trials early.
    pub judge: Option<Judge>,
    /// Asked when the queue is empty, when the sweep proposes trials as it goes.
    pub next: Option<Next>,
}

impl Hooks {
    /// Only a claim: every trial is queued up front and runs to its end.
    pub fn claim(claim: Claim) -> Hooks {
        Hooks {
            claim,
            attempt: None,
            judge: None,
            next: None,
        }
    }
}

/// Runs `groups` of trials over `slots`, most expensive first (a group is one trial unless
/// trials are fused, `--fuse`), each member once `claim` grants it, each stopped early when
/// `judge` says so; calls `on_event` on the caller's thread for every event, in order. Returns
/// the results of the trials that ran.
pub fn run(
    groups: Vec<(Vec<Trial>, f64)>,
    engine: &Arc<dyn Engine>,
    slots: &[Slot],
    cancel: &Arc<Cancel>,
    hooks: &Hooks,
    mut on_event: impl FnMut(&SweepEvent),
) -> Vec<TrialResult> {
    let started = Instant::now();
    let mut ordered = groups;
    ordered.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut running = Running::default();
    let queue: Arc<Mutex<VecDeque<Vec<Trial>>>> =
        Arc::new(Mutex::new(ordered.into_iter().map(|(g, _)| g).collect()));
    let (tx, rx) = mpsc::channel::<SweepEvent>();
    let mut handles = vec![];
    for slot in slots {
        let slot = slot.clone();
        let queue = queue.clone();
        let tx = tx.clone();
        let engine = engine.clone();
        let cancel = cancel.clone();
        let hooks = hooks.clone();
        let known = running.trials.clone();
        handles.push(std::thread::spawn(move || {
            while !cancel.stop_new.load(Ordering::SeqCst) {
                let queued = queue.lock().expect("queue").pop_front();
                let next = || hooks.next.as_ref().and_then(|n| n()).map(|t| vec![t]);
                let Some(group) = queued.or_else(next) else {
                    break;
                };
                // Members are claimed together, before any of them starts, and released alone.
                let group: Vec<Trial> = group
                    .into_iter()
                    .filter(|t| (hooks.claim)(t, slot.device))
                    .collect();
                if group.is_empty() {
                    continue;
                }
                for t in &group {
                    known.lock().expect("known").insert(t.id.clone(), t.clone());
                }
                run_group(&group, &*engine, &slot, (&cancel, &hooks), &tx);
            }
        }));
    }
    drop(tx);
    let mut results = vec![];
    // Each stage of stopping is announced once, before any event it caused.
    let mut announced = Stop::No;
    let mut deadline: Option<Instant> = None;
    loop {
        let ev = match rx.recv_timeout(POLL) {
            Ok(ev) => Some(ev),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let stage = cancel.stage();
        if stage > announced {
            announced = stage;
            on_event(&SweepEvent::Stopping { stage });
        }
        if stage >= Stop::Running {
            let end = deadline.get_or_insert_with(|| Instant::now() + cancel.grace);
            if stage == Stop::Now {
                // The grace period ends now; a little time remains for the kills to be recorded.
                *end = (*end).min(Instant::now() + STOP_NOW_WAIT);
            }
        }
        if deadline.is_some_and(|end| Instant::now() > end) {
            // Trials that did not stop in time: recorded as interrupted, their threads abandoned.
            for ev in running.abandon(cancel.grace) {
                if let SweepEvent::TrialFinished { result, .. } = &ev {
                    results.push((**result).clone());
                }
                on_event(&ev);
            }
            handles.clear();
            break;
        }
        let Some(ev) = ev else { continue };
        running.see(&ev);
        if let SweepEvent::TrialFinished { result, .. } = &ev {
            results.push((**result).clone());
        }
        on_event(&ev);
    }
    for h in handles {
        let _ = h.join();
    }
    on_event(&SweepEvent::Done {
        seconds: started.elapsed().as_secs_f64(),
    });
    results
}

/// The trials started and not yet finished, as the event loop sees them; the slots record each
/// trial they take in `trials` (queued ones and proposals alike).
#[derive(Default)]
struct Running {
    trials: Arc<Mutex<std::collections::HashMap<crate::trial::TrialId, Trial>>>,
    started: Vec<(crate::trial::TrialId, String, Instant)>,
}

impl Running {
    fn see(&mut self, ev: &SweepEvent) {
        match ev {
            SweepEvent::TrialStarted { id, device, .. } => {
                self.started
                    .push((id.clone(), device.clone(), Instant::now()));
            }
            SweepEvent::TrialFinished { trial, .. } => self.started.retain(|s| s.0 != trial.id),
            _ => {}
        }
    }

    /// A `TrialFinished` with status interrupted for each trial still running.
    fn abandon(&mut self, grace: Duration) -> Vec<SweepEvent> {
        let started = std::mem::take(&mut self.started);
        started
            .into_iter()
            .filter_map(|(id, device, t0)| {
                let trial = self.trials.lock().expect("known").get(&id)?.clone();
                let mut result = TrialResult::failed(
                    &trial,
                    &device,
                    format!(
                        "did not stop within {} s of being asked to; abandoned",
                        grace.as_secs()
                    ),
                    t0.elapsed().as_secs_f64(),
                );
                result.status = crate::trial::Status::Interrupted;
                Some(SweepEvent::TrialFinished {
                    trial: Box::new(trial),
                    result: Box::new(result),
                })
            })
            .collect()
    }
}

/// One group (usually of one trial) on one slot: announces its members, forwards their
/// progress (and asks `judge` whether each goes on), and sends each member's result as it
/// ends, an error or a panic turned into a failed result.
fn run_group(
    group: &[Trial],
    engine: &dyn Engine,
    slot: &Slot,
    (stops, hooks): (&Cancel, &Hooks),
    tx: &mpsc::Sender<SweepEvent>,
) {
    let device = slot.device.to_string();
    let judge = hooks.judge.as_ref();
    let checkpoints: Vec<Option<TrialCheckpoint>> = group
        .iter()
        .map(|t| hooks.attempt.as_ref().and_then(|a| a(t)))
        .collect();
    for trial in group {
        let _ = tx.send(SweepEvent::TrialStarted {
            id: trial.id.clone(),
            name: trial.name.clone(),
            device: device.clone(),
            epochs: trial.epochs().unwrap_or(0),
        });
    }
    let t0 = Instant::now();
    // A judged trial is stopped through its own flag: the engines stop on it as on a cancel.
    let pruned: Vec<AtomicBool> = group.iter().map(|_| AtomicBool::new(false)).collect();
    let verdicts: Vec<Mutex<Option<String>>> = group.iter().map(|_| Mutex::new(None)).collect();
    let mut progress: Vec<Box<dyn FnMut(Progress) + Send + '_>> = group
        .iter()
        .enumerate()
        .map(|(i, trial)| {
            let (pruned, verdict, device) = (&pruned[i], &verdicts[i], &device);
            Box::new(move |p: Progress| {
                if let Some(j) = judge
                    && !pruned.load(Ordering::SeqCst)
                    && let Some(why) = j(trial, &p)
                {
                    *verdict.lock().expect("verdict") = Some(why);
                    pruned.store(true, Ordering::SeqCst);
                }
                let _ = tx.send(progress_event(trial, device, p));
            }) as Box<dyn FnMut(Progress) + Send + '_>
        })
        .collect();
    let cancel = &stops.stop_running;
    let mut ctxs: Vec<TrialContext<'_>> = progress
        .iter_mut()
        .enumerate()
        .map(|(i, progress)| TrialContext {
            device: slot.device,
            // A group sits on the cores' share once, as one trial.
            threads: match &slot.share {
                Some(share) if i == 0 => share.sit(),
                _ => Threads::fixed(slot.threads),
            },
            progress: &mut **progress,
            cancel: if judge.is_some() { &pruned[i] } else { cancel },
            stop_now: &stops.stop_now,
            checkpoint: checkpoints[i].as_ref(),
        })
        .collect();
    let reported: Vec<AtomicBool> = group.iter().map(|_| AtomicBool::new(false)).collect();
    let record = |i: usize, outcome: Result<TrialResult, String>| {
        reported[i].store(true, Ordering::SeqCst);
        let verdict = verdicts[i].lock().expect("verdict").take();
        let mut result = finished(&group[i], outcome, verdict, cancel, slot, t0);
        result.restarts = checkpoints[i].as_ref().map_or(0, |c| c.restarts);
        let _ = tx.send(SweepEvent::TrialFinished {
            trial: Box::new(group[i].clone()),
            result: Box::new(result),
        });
    };
    let mut done = |i: usize, outcome: crate::error::Result<TrialResult>| {
        record(i, outcome.map_err(|e| e.to_string()));
    };
    let mut train = || {
        catch_unwind(AssertUnwindSafe(|| {
            engine.run_group(group, &mut ctxs, &mut done);
        }))
    };
    let outcome = if judge.is_some() {
        let flags: Vec<&AtomicBool> = pruned.iter().collect();
        with_cancel_forwarded(cancel, &flags, train)
    } else {
        train()
    };
    // Whatever ended the group, a member without a result is recorded (and its claim
    // released), never left running.
    let why = match outcome {
        Err(p) => format!("panic: {}", panic_text(&*p)),
        Ok(()) => "internal error: the engine ended without a result for this trial".into(),
    };
    let missing: Vec<usize> = (0..group.len())
        .filter(|&i| !reported[i].load(Ordering::SeqCst))
        .collect();
    for i in missing {
        record(i, Err(why.clone()));
    }
}

/// The event of a running trial's progress.
fn progress_event(trial: &Trial, device: &str, p: Progress) -> SweepEvent {
    let (id, name, device) = (trial.id.clone(), trial.name.clone(), device.to_string());
    match p {
        Progress::Epoch(row) => SweepEvent::TrialEpoch {
            id,
            name,
            device,
            row,
        },
        Progress::Metrics(row) => SweepEvent::TrialMetrics {
            id,
            name,
            device,
            row,
        },
    }
}

/// A member's result as recorded: stamped with its id, name and device; `pruned` when its
/// judge's `verdict` stopped it (not Ctrl-C or SIGTERM); an error (its text) as a failed
/// result; with the
/// mean of its epochs' threads.
fn finished(
    trial: &Trial,
    outcome: Result<TrialResult, String>,
    verdict: Option<String>,
    cancel: &AtomicBool,
    slot: &Slot,
    t0: Instant,
) -> TrialResult {
    let device = slot.device.to_string();
    let mut result = match outcome {
        Ok(mut r) => {
            if let Some(why) = verdict
                && r.status == Status::Interrupted
                && !cancel.load(Ordering::SeqCst)
            {
                r.status = Status::Pruned;
                r.notes.push(why);
            }
            r.stamped(trial, &device)
        }
        Err(why) => TrialResult::failed(trial, &device, why, t0.elapsed().as_secs_f64()),
    };
    // With a share of the cores, the epochs' threads varied: their mean, rounded.
    let epochs: Vec<usize> = result.epochs.iter().filter_map(|e| e.threads).collect();
    result.threads = Some(if epochs.is_empty() {
        slot.threads
    } else {
        (epochs.iter().sum::<usize>() as f64 / epochs.len() as f64).round() as usize
    });
    result
}

/// Runs `f` while a watcher sets each of `to` as soon as `from` is set (checked every 20 ms), so a
/// trial that runs on its own stop flag still stops on Ctrl-C and SIGTERM.
fn with_cancel_forwarded<T>(from: &AtomicBool, to: &[&AtomicBool], f: impl FnOnce() -> T) -> T {
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                if from.load(Ordering::SeqCst) {
                    for to in to {
                        to.store(true, Ordering::SeqCst);
                    }
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let out = f();
        done.store(true, Ordering::SeqCst);
        out
    })
}
