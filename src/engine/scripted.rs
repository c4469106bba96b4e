//! An engine that trains nothing, for tests: it walks the epochs of a trial's config, sleeping a
//! little per epoch, reports made-up but deterministic metrics, and fails or panics on request.
//! The binary uses it instead of burn when `HYPERSWEEP_ENGINE=scripted` is set, so CLI tests
//! that are about the orchestration (resume, locks, reports, exit codes) run in milliseconds.
//!
//! Requests are made through the learning rate: 0.5 fails with "scripted failure", 0.25 panics
//! with "scripted panic", 0.125 hangs (`STUCK_LR`); any other trial ends `ok` with test accuracy
//! `0.9 - lr / 10`. The training loss of epoch e is `(1 + (seed mod 3) / 10) / e`, so the seeds
//! of one setting spread a little, as real ones do. The validation accuracy of epoch e is
//! `0.5 · (1 − dropout)^e`: flat without dropout, and the more dropout the faster it falls, so
//! early-termination tests get curves in a known order. A device can be made broken
//! (`with_broken_device`, or `HYPERSWEEP_SCRIPTED_BROKEN_DEVICE=cuda:1`): every trial on it
//! fails, as on a GPU whose driver errors.

use super::{Device, Engine, EpochRow, Progress, Status, Trial, TrialContext, TrialResult};
use crate::config::TrialConfig;
use crate::data::DataSummary;
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The learning rate at which a scripted trial returns an error.
pub const FAIL_LR: f64 = 0.5;
/// The learning rate at which a scripted trial panics.
pub const PANIC_LR: f64 = 0.25;
/// The learning rate at which a scripted trial hangs for a minute without looking at the stop
/// flag, as a trial inside a GPU call that does not return.
pub const STUCK_LR: f64 = 0.125;

/// A scripted engine; it remembers the configs it was given and how many ran at once.
#[derive(Debug, Default)]
pub struct Scripted {
    /// Sleep per epoch, so tests can interrupt a trial or watch concurrency.
    pub epoch_ms: u64,
    /// Every config it started, in order.
    pub started: Mutex<Vec<TrialConfig>>,
    running: AtomicUsize,
    /// The most trials that ran at the same time.
    pub max_running: AtomicUsize,
    /// Trials running on each device now, and the most there were at once.
    on_device: Mutex<HashMap<Device, (usize, usize)>>,
    /// Every trial on this device fails.
    broken: Option<Device>,
}

impl Scripted {
    /// A scripted engine sleeping `epoch_ms` per epoch.
    pub fn new(epoch_ms: u64) -> Scripted {
        Scripted {
            epoch_ms,
            ..Default::default()
        }
    }

    /// From the environment: `HYPERSWEEP_ENGINE=scripted` (and `HYPERSWEEP_SCRIPTED_EPOCH_MS`).
    pub fn from_env() -> Option<Scripted> {
        if std::env::var("HYPERSWEEP_ENGINE").ok()? != "scripted" {
            return None;
        }
        let ms = std::env::var("HYPERSWEEP_SCRIPTED_EPOCH_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let broken = std::env::var("HYPERSWEEP_SCRIPTED_BROKEN_DEVICE").ok();
        let broken = broken.and_then(|d| {
            let i = d.strip_prefix("cuda:")?.parse().ok()?;
            Some(Device::Cuda(i))
        });
        Some(Scripted {
            broken,
            ..Scripted::new(ms)
        })
    }

    /// The same engine, with every trial on `device` failing.
    #[must_use]
    pub fn with_broken_device(self, device: Device) -> Scripted {
        Scripted {
            broken: Some(device),
            ..self
        }
    }

    /// The most trials that ran on `device` at the same time.
    pub fn max_running_on(&self, device: Device) -> usize {
        let on = self.on_device.lock().expect("on_device");
        on.get(&device).map_or(0, |c| c.1)
    }

    fn enter(&self, device: Device) {
        let mut on = self.on_device.lock().expect("on_device");
        let c = on.entry(device).or_default();
        c.0 += 1;
        c.1 = c.1.max(c.0);
    }

    /// How many trials it has started.
    pub fn started_count(&self) -> usize {
        self.started.lock().expect("started").len()
    }
}

/// Decrements the running counts when a trial ends, panics included.
struct Running<'a>(&'a Scripted, Device);
impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
        let mut on = self.0.on_device.lock().expect("on_device");
        on.entry(self.1).or_default().0 -= 1;
    }
}

impl Engine for Scripted {
    fn run(&self, trial: &Trial, ctx: &mut TrialContext<'_>) -> Result<TrialResult> {
        let config = super::builtin_config(trial)?;
        self.started.lock().expect("started").push(config.clone());
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        self.enter(ctx.device);
        let _running = Running(self, ctx.device);
        if self.broken == Some(ctx.device) {
            std::thread::sleep(Duration::from_millis(self.epoch_ms));
            return Err(Error::Trial(format!(
                "scripted device failure on {}",
                ctx.device
            )));
        }
        let lr = config.optimizer.lr();
        if lr == STUCK_LR {
            std::thread::sleep(Duration::from_secs(60));
        }
        let mut status = Status::Ok;
        let mut epochs = vec![];
        for e in 1..=config.epochs {
            if ctx.cancelled() {
                status = Status::Interrupted;
                break;
            }
            std::thread::sleep(Duration::from_millis(self.epoch_ms));
            let row = EpochRow {
                epoch: e,
                train_loss: (1.0 + (config.seed % 3) as f64 / 10.0) / e as f64,
                train_accuracy: 0.5 + 0.01 * e as f64,
                val_accuracy: Some(0.5 * (1.0 - config.model.dropout).powi(e as i32)),
                lr,
                seconds: 0.01,
                threads: Some(ctx.threads.now()),
                ..Default::default()
            };
            (ctx.progress)(Progress::Epoch(row.clone()));
            epochs.push(row);
        }
        if lr == FAIL_LR {
            return Err(Error::Trial("scripted failure".into()));
        }
        if lr == PANIC_LR {
            panic!("scripted panic");
        }
        Ok(TrialResult {
            status,
            epochs_run: epochs.len(),
            test_accuracy: Some(0.9 - lr / 10.0),
            test_loss: Some(0.3),
            train_accuracy: Some(0.95),
            train_seconds: 0.01 * epochs.len() as f64,
            total_seconds: 0.01 * epochs.len() as f64,
            data: DataSummary {
                source: "scripted".into(),
                train: config.data.train_size.unwrap_or(8000),
                val: 0,
                test: 2000,
            },
            confusion_matrix: vec![vec![1; 10]; 10],
            per_class_accuracy: vec![0.1; 10],
            epochs,
            ..Default::default()
        })
    }
}
