//! The Polars tables: summary (one row per trial, varied parameters as typed columns), epochs
//! (long format) and, when seeds repeat, mean ± std over seeds per setting.

use super::{Loaded, TrialRow};
use crate::error::Result;
use crate::store::write_atomic;
use polars::prelude::*;
use serde_json::Value;
use std::path::Path;

/// A varied parameter as a typed column: integers, floats, booleans, or text (lists, names).
fn axis_column(name: &str, values: &[Option<&Value>]) -> Column {
    let all = |f: fn(&Value) -> bool| values.iter().flatten().all(|v| f(v));
    if all(|v| v.is_i64() || v.is_u64()) {
        Column::new(
            name.into(),
            values
                .iter()
                .map(|v| v.and_then(Value::as_i64))
                .collect::<Vec<_>>(),
        )
    } else if all(Value::is_number) {
        Column::new(
            name.into(),
            values
                .iter()
                .map(|v| v.and_then(Value::as_f64))
                .collect::<Vec<_>>(),
        )
    } else if all(Value::is_boolean) {
        Column::new(
            name.into(),
            values
                .iter()
                .map(|v| v.and_then(Value::as_bool))
                .collect::<Vec<_>>(),
        )
    } else {
        Column::new(
            name.into(),
            values
                .iter()
                .map(|v| v.map(crate::trial::value_text))
                .collect::<Vec<_>>(),
        )
    }
}

fn axis_columns(l: &Loaded, rows: &[&TrialRow]) -> Vec<Column> {
    l.axes
        .iter()
        .map(|a| {
            let vals: Vec<Option<&Value>> = rows.iter().map(|r| r.varied.get(a)).collect();
            axis_column(a, &vals)
        })
        .collect()
}

/// The columns that say which trial a row of a long table belongs to: id, name and its varied
/// values.
fn trial_columns(l: &Loaded, rows: &[&TrialRow]) -> Vec<Column> {
    let mut cols = vec![
        Column::new(
            "id".into(),
            rows.iter().map(|r| r.id.to_string()).collect::<Vec<_>>(),
        ),
        Column::new(
            "name".into(),
            rows.iter().map(|r| r.name.clone()).collect::<Vec<_>>(),
        ),
    ];
    cols.extend(axis_columns(l, rows));
    cols
}

/// The first epoch whose accuracy (on `metric`) reaches the threshold.
pub fn epoch_reaching(r: &TrialRow, threshold: f64, metric: &str) -> Option<usize> {
    r.result
        .epochs
        .iter()
        .find(|e| {
            let v = match metric {
                "test_accuracy" => e.test_accuracy,
                "train_accuracy" => Some(e.train_accuracy),
                _ => e.val_accuracy.or(e.test_accuracy),
            };
            v.is_some_and(|v| v >= threshold)
        })
        .map(|e| e.epoch)
}

/// Final train accuracy minus final validation (or test) accuracy: the overfitting gap.
pub fn gap(r: &TrialRow) -> Option<f64> {
    let last = r.result.epochs.last()?;
    let other = last.val_accuracy.or(r.result.test_accuracy)?;
    Some(last.train_accuracy - other)
}

/// The summary table: one row per trial with its status, varied parameters as typed columns, final
/// metrics, timings, device and error.
pub fn summary(l: &Loaded) -> Result<DataFrame> {
    if l.program.is_some() {
        return program_summary(l);
    }
    let rows: Vec<&TrialRow> = l.rows.iter().collect();
    let res = |f: fn(&TrialRow) -> Option<f64>| -> Vec<Option<f64>> {
        rows.iter().map(|r| f(r)).collect()
    };
    let mut cols = vec![
        Column::new(
            "id".into(),
            rows.iter().map(|r| r.id.to_string()).collect::<Vec<_>>(),
        ),
        Column::new(
            "name".into(),
            rows.iter().map(|r| r.name.clone()).collect::<Vec<_>>(),
        ),
        Column::new(
            "status".into(),
            rows.iter()
                .map(|r| r.result.status.to_string())
                .collect::<Vec<_>>(),
        ),
    ];
    cols.extend(axis_columns(l, &rows));
    cols.extend([
        Column::new("test_accuracy".into(), res(|r| r.result.test_accuracy)),
        Column::new("test_loss".into(), res(|r| r.result.test_loss)),
        Column::new("train_accuracy".into(), res(|r| r.result.train_accuracy)),
        Column::new("train_loss".into(), res(|r| r.result.train_loss)),
        Column::new(
            "best_val_accuracy".into(),
            res(|r| r.result.best_val_accuracy),
        ),
        Column::new("best_val_loss".into(), res(|r| r.result.best_val_loss)),
        Column::new(
            "best_epoch".into(),
            rows.iter()
                .map(|r| r.result.best_epoch.map(|e| e as i64))
                .collect::<Vec<_>>(),
        ),
        Column::new("train_val_gap".into(), res(gap)),
        Column::new(
            "epochs_run".into(),
            rows.iter()
                .map(|r| r.result.epochs_run as i64)
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "train_seconds".into(),
            rows.iter()
                .map(|r| r.result.train_seconds)
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "total_seconds".into(),
            rows.iter()
                .map(|r| r.result.total_seconds)
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "samples_per_second".into(),
            res(|r| r.result.samples_per_second),
        ),
        Column::new(
            "inference_ms_per_batch".into(),
            res(|r| r.result.inference_ms_per_batch_mean),
        ),
        Column::new(
            "device".into(),
            rows.iter()
                .map(|r| r.result.device.clone())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "train_samples".into(),
            rows.iter()
                .map(|r| r.result.data.train as i64)
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "error".into(),
            rows.iter()
                .map(|r| r.result.error.clone())
                .collect::<Vec<_>>(),
        ),
    ]);
    if let Some(t) = l.options.threshold {
        cols.push(Column::new(
            "epoch_reaching_threshold".into(),
            rows.iter()
                .map(|r| epoch_reaching(r, t, &l.options.threshold_metric).map(|e| e as i64))
                .collect::<Vec<_>>(),
        ));
    }
    Ok(DataFrame::new(rows.len(), cols)?)
}

/// The epochs table, long format: one row per trial and epoch, with the varied parameters and that
/// epoch's metrics.
pub fn epochs(l: &Loaded) -> Result<DataFrame> {
    if l.program.is_some() {
        return program_epochs(l);
    }
    let flat: Vec<(&TrialRow, &crate::trial::EpochRow)> = l
        .rows
        .iter()
        .flat_map(|r| r.result.epochs.iter().map(move |e| (r, e)))
        .collect();
    let trial_rows: Vec<&TrialRow> = flat.iter().map(|(r, _)| *r).collect();
    let mut cols = trial_columns(l, &trial_rows);
    let f = |g: fn(&crate::trial::EpochRow) -> Option<f64>| -> Vec<Option<f64>> {
        flat.iter().map(|(_, e)| g(e)).collect()
    };
    cols.extend([
        Column::new(
            "epoch".into(),
            flat.iter().map(|(_, e)| e.epoch as i64).collect::<Vec<_>>(),
        ),
        Column::new("train_loss".into(), f(|e| Some(e.train_loss))),
        Column::new("train_accuracy".into(), f(|e| Some(e.train_accuracy))),
        Column::new("val_loss".into(), f(|e| e.val_loss)),
        Column::new("val_accuracy".into(), f(|e| e.val_accuracy)),
        Column::new("test_loss".into(), f(|e| e.test_loss)),
        Column::new("test_accuracy".into(), f(|e| e.test_accuracy)),
        Column::new("lr".into(), f(|e| Some(e.lr))),
        Column::new("seconds".into(), f(|e| Some(e.seconds))),
    ]);
    Ok(DataFrame::new(flat.len(), cols)?)
}

/// The column of a program's metric: its name, unless a varied key or one of the table's own
/// columns has it (a metric `lr` beside an axis `lr`).
fn metric_column(l: &Loaded, name: &str) -> String {
    const OWN: &[&str] = &[
        "id",
        "name",
        "status",
        "epochs_run",
        "total_seconds",
        "device",
        "exit_code",
        "error",
    ];
    if OWN.contains(&name) || l.axes.iter().any(|a| a == name) {
        format!("{name}_metric")
    } else {
        name.to_string()
    }
}

/// A program sweep's summary: id, name, status, varied values, one column per reported metric
/// (its last value), epochs, time, device, exit code and error.
fn program_summary(l: &Loaded) -> Result<DataFrame> {
    let rows: Vec<&TrialRow> = l.rows.iter().collect();
    let text = |f: fn(&TrialRow) -> String| -> Vec<String> { rows.iter().map(|r| f(r)).collect() };
    let mut cols = vec![
        Column::new("id".into(), text(|r| r.id.to_string())),
        Column::new("name".into(), text(|r| r.name.clone())),
        Column::new("status".into(), text(|r| r.result.status.to_string())),
    ];
    cols.extend(axis_columns(l, &rows));
    for m in l.metric_names() {
        let values: Vec<Option<f64>> = rows
            .iter()
            .map(|r| r.result.metrics.get(&m).copied())
            .collect();
        cols.push(Column::new(metric_column(l, &m).into(), values));
    }
    cols.extend([
        Column::new(
            "epochs_run".into(),
            rows.iter()
                .map(|r| r.result.epochs_run as i64)
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "total_seconds".into(),
            rows.iter()
                .map(|r| r.result.total_seconds)
                .collect::<Vec<_>>(),
        ),
        Column::new("device".into(), text(|r| r.result.device.clone())),
        Column::new(
            "exit_code".into(),
            rows.iter().map(|r| r.result.exit_code).collect::<Vec<_>>(),
        ),
        Column::new(
            "error".into(),
            rows.iter()
                .map(|r| r.result.error.clone())
                .collect::<Vec<_>>(),
        ),
    ]);
    Ok(DataFrame::new(rows.len(), cols)?)
}

/// A program sweep's rows in long format: one row per reported row, with the varied values
/// and a column per metric (`epoch` and `step` included when reported).
fn program_epochs(l: &Loaded) -> Result<DataFrame> {
    let flat: Vec<(&TrialRow, &crate::trial::MetricRow)> = l
        .rows
        .iter()
        .flat_map(|r| r.result.rows.iter().map(move |e| (r, e)))
        .collect();
    let trial_rows: Vec<&TrialRow> = flat.iter().map(|(r, _)| *r).collect();
    let mut names: Vec<String> = flat
        .iter()
        .flat_map(|(_, e)| e.keys().cloned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    names.sort_by_key(|n| !matches!(n.as_str(), "epoch" | "step"));
    let mut cols = trial_columns(l, &trial_rows);
    for n in names {
        let values: Vec<Option<f64>> = flat.iter().map(|(_, e)| e.get(&n).copied()).collect();
        cols.push(Column::new(metric_column(l, &n).into(), values));
    }
    Ok(DataFrame::new(flat.len(), cols)?)
}

/// Mean, std and count over seeds of each setting (the other varied parameters), failed trials
/// left out; settings in first-seen order. Computed here rather than by Polars' lazy engine,
/// whose feature alone brought 100 crates (an HTTP and TLS stack among them) into the build.
pub fn by_setting(l: &Loaded, summary: &DataFrame) -> Result<Option<DataFrame>> {
    if !l.axes.iter().any(|a| a == "seed") {
        return Ok(None);
    }
    let keys: Vec<&str> = l
        .axes
        .iter()
        .filter(|a| *a != "seed")
        .map(String::as_str)
        .collect();
    let measured: Vec<String> = if l.program.is_some() {
        l.metric_names()
            .iter()
            .map(|m| metric_column(l, m))
            .chain(["total_seconds".to_string()])
            .collect()
    } else {
        [
            "test_accuracy",
            "best_val_accuracy",
            "train_accuracy",
            "train_seconds",
        ]
        .map(String::from)
        .to_vec()
    };
    let kept = summary.filter(&summary.column("status")?.str()?.not_equal("failed"))?;
    let groups = groups_of(&kept, &keys)?;
    let firsts = IdxCa::from_vec("first".into(), groups.iter().map(|g| g[0]).collect());
    let mut cols = keys
        .iter()
        .map(|k| kept.column(k)?.take(&firsts))
        .collect::<PolarsResult<Vec<Column>>>()?;
    let counts: Vec<IdxSize> = groups.iter().map(|g| g.len() as IdxSize).collect();
    cols.push(Column::new("n".into(), counts));
    for m in &measured {
        let values = kept.column(m)?.cast(&DataType::Float64)?;
        let values = values.f64()?;
        let (means, stds): (Vec<Option<f64>>, Vec<Option<f64>>) = groups
            .iter()
            .map(|g| {
                let v: Vec<f64> = g.iter().filter_map(|&i| values.get(i as usize)).collect();
                let (mean, std) = crate::format::mean_std(&v);
                (
                    Some(mean).filter(|_| !v.is_empty()),
                    Some(std).filter(|_| v.len() > 1),
                )
            })
            .unzip();
        cols.push(Column::new(format!("{m}_mean").into(), means));
        cols.push(Column::new(format!("{m}_std").into(), stds));
    }
    Ok(Some(DataFrame::new(groups.len(), cols)?))
}

/// The rows of `df` grouped by the values of `keys`, groups in first-seen order.
fn groups_of(df: &DataFrame, keys: &[&str]) -> Result<Vec<Vec<IdxSize>>> {
    let key_cols = keys
        .iter()
        .map(|k| df.column(k))
        .collect::<PolarsResult<Vec<_>>>()?;
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut groups: Vec<Vec<IdxSize>> = vec![];
    for row in 0..df.height() {
        let mut key = String::new();
        for c in &key_cols {
            key += &format!("{}\u{1f}", c.get(row)?);
        }
        let g = *index.entry(key).or_insert_with(|| {
            groups.push(vec![]);
            groups.len() - 1
        });
        groups[g].push(row as IdxSize);
    }
    Ok(groups)
}

/// Writes a table as Parquet, atomically.
pub fn write_parquet(df: &mut DataFrame, path: &Path) -> Result<()> {
    let mut bytes = vec![];
    ParquetWriter::new(&mut bytes).finish(df)?;
    write_atomic(path, &bytes)
}

/// Writes a table as CSV, atomically.
pub fn write_csv(df: &mut DataFrame, path: &Path) -> Result<()> {
    let mut bytes = vec![];
    CsvWriter::new(&mut bytes).finish(df)?;
    write_atomic(path, &bytes)
}
