//! An engine that trains nothing, for tests: it walks the epochs of a trial's config, sleeping a
//! little per epoch, reports made-up but deterministic metrics, and fails or panics on request.
//! The binary uses it instead of burn when `HYPERSWEEP_ENGINE=scripted` is set, so CLI tests
//! that are about the orchestration (resume, locks, reports, exit codes) run in milliseconds.
//!
//! Requests are made through the learning rate: 0.5 fails with "scripted failure", 0.25 panics
//! with "scripted panic"; any other trial ends `ok` with test accuracy `0.9 - lr / 10`. The
//! validation accuracy of epoch e is `0.5 · (1 − dropout)^e`: flat without dropout, and the
//! more dropout the faster it falls, so early-termination tests get curves in a known order.

use super::{Engine, EpochRow, Progress, Status, Trial, TrialContext, TrialResult};
use crate::config::TrialConfig;
use crate::data::DataSummary;
use crate::error::{Error, Result};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The learning rate at which a scripted trial returns an error.
pub const FAIL_LR: f64 = 0.5;
/// The learning rate at which a scripted trial panics.
pub const PANIC_LR: f64 = 0.25;

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
        Some(Scripted::new(ms))
    }

    /// How many trials it has started.
    pub fn started_count(&self) -> usize {
        self.started.lock().expect("started").len()
    }
}

/// Decrements the running count when a trial ends, panics included.
struct Running<'a>(&'a AtomicUsize);
impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Engine for Scripted {
    fn run(&self, trial: &Trial, ctx: &mut TrialContext<'_>) -> Result<TrialResult> {
        let config = super::builtin_config(trial)?;
        self.started.lock().expect("started").push(config.clone());
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        let _running = Running(&self.running);
        let lr = config.optimizer.lr();
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
                train_loss: 1.0 / e as f64,
                train_accuracy: 0.5 + 0.01 * e as f64,
                val_accuracy: Some(0.5 * (1.0 - config.model.dropout).powi(e as i32)),
                lr,
                seconds: 0.01,
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
