//! What the page is sent: a sweep's state (its counts, ETA and trial rows) whole or since a
//! version, and one trial's details. Numbers come with their text as `status` and the report
//! write them, so the page formats nothing itself.

use super::sweep::{TrialView, View, num};
use crate::format::{duration, metric_text};
use crate::trial::{Trial, value_text};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// The metric the trials table shows: the report's, which for built-in trials falls back to test
/// accuracy as the report ranks them.
pub fn metric_value(v: &View, t: &TrialView) -> Option<f64> {
    let r = v.result(t)?;
    let m = &v.info.report.metric;
    r.metric(m)
        .or_else(|| r.metrics.is_empty().then_some(r.test_accuracy).flatten())
}

/// The status word a trial shows: running while a live claim holds it, else its result's,
/// else queued.
pub fn status_word(v: &View, t: &TrialView) -> &'static str {
    if t.running.is_some() {
        "running"
    } else if t.damaged.is_some() {
        "unreadable"
    } else {
        v.result(t).map_or("queued", |r| r.status.as_str())
    }
}

/// Where a trial is: the last epoch (or step, or row count) it reported.
fn position(rows: &[crate::trial::MetricRow]) -> Option<f64> {
    let last = rows.last()?;
    last.get("epoch")
        .or_else(|| last.get("step"))
        .copied()
        .or(Some(rows.len() as f64))
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One row of the trials table.
fn trial_row(v: &View, t: &TrialView) -> Value {
    let params: Map<String, Value> = (v.info.axes.iter())
        .map(|a| {
            let text = t.trial.varied_value(a).map(value_text).unwrap_or_default();
            (a.clone(), Value::String(text))
        })
        .collect();
    let result = v.result(t);
    let metric = metric_value(v, t);
    let seconds = match (&t.running, result) {
        (Some(r), _) => Some(now_secs().saturating_sub(r.started) as f64),
        (None, Some(r)) => Some(r.total_seconds),
        _ => None,
    };
    let at = if t.running.is_some() {
        position(&t.live)
    } else {
        result.map(|r| r.epochs_run as f64)
    };
    let note = t
        .damaged
        .clone()
        .or_else(|| result.and_then(|r| r.error.clone()));
    json!({
        "id": t.trial.id,
        "name": t.trial.name,
        "params": params,
        "status": status_word(v, t),
        "epoch": num(at),
        "epochs": t.trial.epochs(),
        "device": t.running.as_ref().map(|r| r.device.clone()).or_else(|| result.map(|r| r.device.clone())),
        "metric": num(metric),
        "metric_text": metric_text(&v.info.report.metric, metric),
        "seconds": num(seconds),
        "seconds_text": seconds.map(duration).unwrap_or_default(),
        "note": note,
    })
}

/// The sweep's state for a page that has `since` (0: everything): the counts, the ETA, and the
/// rows of the trials that changed after `since` (all of them when the plan changed since).
pub fn state(name: &str, v: &View, since: u64) -> Value {
    // A version past this view's is one of another server's (a restart): everything.
    let full = since < v.reset || since > v.version;
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &v.trials {
        *counts.entry(status_word(v, t)).or_default() += 1;
    }
    let rows: Vec<Value> = (v.trials.iter())
        .filter(|t| full || t.changed > since)
        .map(|t| trial_row(v, t))
        .collect();
    let info = &v.info;
    json!({
        "sweep": name,
        "version": v.version,
        "full": full,
        "title": info.report.title.clone().unwrap_or_else(|| info.name.clone()),
        "description": info.description,
        "metric": info.report.metric,
        "axes": info.axes,
        "planned": v.trials.len(),
        "counts": counts,
        "eta": v.eta_words(),
        "plan_error": v.plan_error,
        "curve_metrics": curve_metrics(v),
        "trials": rows,
    })
}

/// The metrics the curves can draw: every numeric column the trials reported but their position.
pub fn curve_metrics(v: &View) -> Vec<String> {
    let mut names = std::collections::BTreeSet::new();
    for t in &v.trials {
        let mut add = |row: &crate::trial::MetricRow| {
            names.extend(row.keys().filter(|k| !is_position(k)).cloned());
        };
        if let Some(row) = t.live.last() {
            add(row);
        }
        match v.result(t) {
            Some(r) if r.rows.is_empty() => {
                if let Some(e) = r.epochs.last() {
                    add(&crate::store::epoch_metrics(e));
                }
            }
            Some(r) => r.rows.iter().take(1).for_each(&mut add),
            None => {}
        }
    }
    let mut names: Vec<String> = names.into_iter().collect();
    // The usual first: accuracy and loss before timings.
    names.sort_by_key(|n| (n == "lr" || n == "seconds", n.clone()));
    names
}

/// Columns that place a row rather than measure it.
pub fn is_position(name: &str) -> bool {
    matches!(name, "epoch" | "step")
}

/// One trial's details: its config, result summary and notes, and a program's output tails.
pub fn trial(v: &View, t: &TrialView, tails: &[(&str, String)]) -> Value {
    let result = v.result(t);
    let summary = result.map(|r| {
        let mut m = Map::new();
        for (k, val) in [
            ("test_accuracy", r.test_accuracy),
            ("test_loss", r.test_loss),
            ("best_val_accuracy", r.best_val_accuracy),
            ("best_val_loss", r.best_val_loss),
        ] {
            if val.is_some() {
                m.insert(k.into(), json!(metric_text(k, val)));
            }
        }
        for (k, val) in &r.metrics {
            m.insert(k.clone(), json!(metric_text(k, Some(*val))));
        }
        m
    });
    json!({
        "id": t.trial.id,
        "name": t.trial.name,
        "status": status_word(v, t),
        "config": config_of(&t.trial),
        "running": t.running.as_ref().map(|r| json!({"device": r.device, "host": r.host})),
        "summary": summary,
        "notes": result.map(|r| r.notes.clone()).unwrap_or_default(),
        "error": t.damaged.clone().or_else(|| result.and_then(|r| r.error.clone())),
        "fused": result.and_then(|r| r.fused.as_ref()).map(|f| json!({"group": f.group, "size": f.size})),
        "restarts": result.map(|r| r.restarts),
        "live_damaged": t.live_damaged,
        "rows": v.rows(t).len(),
        "tails": tails.iter().filter(|(_, s)| !s.is_empty()).map(|(k, s)| json!({"file": k, "text": s})).collect::<Vec<_>>(),
    })
}

/// A trial's full config, as config.json writes it.
fn config_of(t: &Trial) -> Value {
    serde_json::to_value(&t.config).unwrap_or(Value::Null)
}
