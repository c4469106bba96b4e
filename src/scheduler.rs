//! The device pool: slots (a device and a thread budget), a queue that starts the most expensive
//! trials first, failure isolation (a panic or error fails one trial), and cancellation. It
//! never prints: everything it does goes out as `SweepEvent`s.

use crate::engine::{Device, Engine, Progress, Status, TrialResult};
use crate::events::SweepEvent;
use crate::plan::Trial;
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// One place a trial can run: a device and the CPU threads the trial may use.
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    pub device: Device,
    pub threads: usize,
}

/// Two-stage stop: the first Ctrl-C stops new trials, the second interrupts running ones.
#[derive(Debug, Default)]
pub struct Cancel {
    pub stop_new: AtomicBool,
    pub stop_running: AtomicBool,
}

impl Cancel {
    /// Records one interrupt; returns true when it was the second (hard) one.
    pub fn press(&self) -> bool {
        if self.stop_new.swap(true, Ordering::SeqCst) {
            self.stop_running.store(true, Ordering::SeqCst);
            true
        } else {
            false
        }
    }
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

/// Runs `trials` over `slots`, most expensive first; calls `on_event` on the caller's thread for
/// every event, in order. Returns the results of the trials that ran.
pub fn run(
    trials: Vec<(Trial, f64)>,
    engine: Arc<dyn Engine>,
    slots: &[Slot],
    cancel: Arc<Cancel>,
    mut on_event: impl FnMut(&SweepEvent),
) -> Vec<TrialResult> {
    let started = Instant::now();
    let mut ordered = trials;
    ordered.sort_by(|a, b| b.1.total_cmp(&a.1));
    let queue: Arc<Mutex<VecDeque<Trial>>> =
        Arc::new(Mutex::new(ordered.into_iter().map(|(t, _)| t).collect()));
    let (tx, rx) = mpsc::channel::<SweepEvent>();
    let mut handles = vec![];
    for slot in slots.iter().cloned() {
        let queue = queue.clone();
        let tx = tx.clone();
        let engine = engine.clone();
        let cancel = cancel.clone();
        handles.push(std::thread::spawn(move || {
            loop {
                if cancel.stop_new.load(Ordering::SeqCst) {
                    break;
                }
                let Some(trial) = queue.lock().expect("queue").pop_front() else {
                    break;
                };
                let device = slot.device.to_string();
                let _ = tx.send(SweepEvent::TrialStarted {
                    id: trial.id.clone(),
                    name: trial.name.clone(),
                    device: device.clone(),
                    epochs: trial.config.epochs,
                });
                let t0 = Instant::now();
                let mut progress = |p: Progress| match p {
                    Progress::Epoch(row) => {
                        let _ = tx.send(SweepEvent::TrialEpoch {
                            id: trial.id.clone(),
                            name: trial.name.clone(),
                            device: device.clone(),
                            row,
                        });
                    }
                };
                let outcome = catch_unwind(AssertUnwindSafe(|| {
                    engine.run(
                        &trial,
                        slot.device,
                        slot.threads,
                        &mut progress,
                        &cancel.stop_running,
                    )
                }));
                let result = match outcome {
                    Ok(Ok(mut r)) => {
                        r.device = device.clone();
                        r
                    }
                    Ok(Err(e)) => failed(&trial, &device, e, t0),
                    Err(p) => failed(&trial, &device, format!("panic: {}", panic_text(&*p)), t0),
                };
                let _ = tx.send(SweepEvent::TrialFinished(Box::new(result)));
            }
        }));
    }
    drop(tx);
    let mut results = vec![];
    let mut announced = false;
    for ev in rx {
        if !announced && cancel.stop_new.load(Ordering::SeqCst) {
            announced = true;
            on_event(&SweepEvent::Stopping {
                hard: cancel.stop_running.load(Ordering::SeqCst),
            });
        }
        if let SweepEvent::TrialFinished(r) = &ev {
            results.push((**r).clone());
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

fn failed(trial: &Trial, device: &str, error: String, t0: Instant) -> TrialResult {
    TrialResult {
        id: trial.id.clone(),
        name: trial.name.clone(),
        status: Some(Status::Failed),
        error: Some(error),
        device: device.into(),
        total_seconds: t0.elapsed().as_secs_f64(),
        ..Default::default()
    }
}
