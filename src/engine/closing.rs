//! How a built-in trial's result is made, alone or fused: the batch size it trains with, the
//! totals of its epoch rows, and its test set at the end.

use super::eval::evaluate;
use super::loaded::Loaded;
use super::metrics;
use super::model::Net;
use super::net_ops::NetOps;
use super::{Status, TrialResult};
use crate::config::TrialConfig;
use crate::error::{Error, Result};

/// The batch size a trial trains with: the configured one, clamped (with a note) to the size
/// of the training set.
pub fn batch_size(cfg: &TrialConfig, n: usize, notes: &mut Vec<String>) -> Result<usize> {
    let bs = if cfg.batch_size > n {
        notes.push(format!(
            "batch_size {} is larger than the {n} training samples: clamped to {n}",
            cfg.batch_size
        ));
        n
    } else {
        cfg.batch_size
    };
    if cfg.drop_last && cfg.steps_per_epoch.is_none() && n < bs {
        return Err(Error::Trial("drop_last leaves no batch".into()));
    }
    Ok(bs)
}

/// Ends a trial's result: unless it was interrupted, the test set with its final (or restored
/// best) weights `model` gives the test metrics, confusion matrix and mistakes (and a
/// non-finite test loss makes an `ok` trial `diverged`); then `status` is recorded.
pub fn test_and_close<B: NetOps>(
    out: &mut TrialResult,
    mut status: Status,
    model: &Net<B>,
    loaded: &Loaded<B>,
) {
    let test = &loaded.test;
    if status != Status::Interrupted
        && let Some(ev) = evaluate(model, test)
    {
        out.test_loss = Some(ev.loss);
        out.test_accuracy = Some(ev.accuracy);
        let raw = &loaded.splits.test.raw;
        let a = metrics::analyse(&ev.predictions, &ev.confidence, &test.y, raw);
        out.confusion_matrix = a.confusion_matrix;
        out.per_class_accuracy = a.per_class_accuracy;
        out.most_confused = a.most_confused;
        out.mistakes = a.mistakes;
        let (m, s) = crate::format::mean_std(&ev.batch_ms);
        out.inference_ms_per_batch_mean = Some(m);
        out.inference_ms_per_batch_std = Some(s);
        if !ev.loss.is_finite() && status == Status::Ok {
            status = Status::Diverged;
        }
    }
    out.status = status;
}

/// Fills the result's totals from its epoch rows: epochs run, training time and throughput,
/// the last epoch's training metrics, and the best validation loss (with its epoch) and
/// accuracy.
pub fn summarise(out: &mut TrialResult, samples_seen: usize, train_seconds: f64) {
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
}
