//! A program trial across attempts (the checkpoint contract): the rows an earlier, interrupted
//! attempt reported are kept, and a restarted attempt's rows take over from the first epoch (or
//! step) it reports, so that each epoch appears once.

use super::metrics;
use crate::store::Store;
use crate::trial::{MetricRow, Status, TrialId, TrialResult};
use std::path::Path;

/// The rows the earlier attempts of a restarted trial reported: those of its stored result
/// when it was interrupted (a stop), else those its metrics file holds (a kill: nothing was
/// recorded).
pub fn earlier_rows(store: &Store, id: &TrialId, metrics_file: &Path) -> Vec<MetricRow> {
    match store.load(id) {
        Ok(Some(r)) if r.status == Status::Interrupted => r.rows,
        _ => std::fs::read_to_string(metrics_file)
            .map(|text| metrics::file_rows(&text).0)
            .unwrap_or_default(),
    }
}

/// The key that orders rows: `epoch`, else `step`, when the attempt's first row has it.
fn order_key(rows: &[MetricRow]) -> Option<&'static str> {
    let first = rows.first()?;
    ["epoch", "step"]
        .into_iter()
        .find(|k| first.contains_key(*k))
}

/// `result`'s rows after the earlier attempts' `earlier` rows: an earlier row stays when it
/// comes before the attempt's first epoch (or step), or is of that epoch and has none of the
/// metrics the attempt reports for it; without either key they are appended.
/// The final metrics are each one's last value over all rows kept.
pub fn take_up(earlier: Vec<MetricRow>, result: &mut TrialResult) {
    if earlier.is_empty() {
        return;
    }
    let kept: Vec<MetricRow> = match order_key(&result.rows) {
        Some(key) => {
            let from = result.rows[0][key];
            // The attempt's metrics at its first epoch: an earlier row of that epoch with
            // other metrics (the training row, when the attempt reports only the test row
            // after its last epoch) stays.
            let redone: Vec<&String> = result
                .rows
                .iter()
                .filter(|r| r.get(key) == Some(&from))
                .flat_map(|r| r.keys())
                .filter(|k| k.as_str() != key)
                .collect();
            earlier
                .into_iter()
                .filter(|r| match r.get(key) {
                    Some(v) if *v < from => true,
                    Some(v) if *v == from => !r.keys().any(|k| redone.contains(&k)),
                    _ => false,
                })
                .collect()
        }
        None => earlier,
    };
    let mut last = MetricRow::new();
    for row in &kept {
        last.extend(row.iter().map(|(k, v)| (k.clone(), *v)));
    }
    last.extend(std::mem::take(&mut result.metrics));
    result.metrics = last;
    let mut rows = kept;
    rows.append(&mut result.rows);
    result.rows = rows;
    result.epochs_run = result
        .metrics
        .get("epoch")
        .map_or(result.epochs_run, |e| e.max(0.0) as usize);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pairs: &[(&str, f64)]) -> MetricRow {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn a_resumed_attempt_takes_over_from_its_first_epoch() {
        let earlier = (1..=3)
            .map(|e| row(&[("epoch", e as f64), ("loss", 1.0 / e as f64), ("lr", 0.1)]))
            .collect();
        let mut r = TrialResult {
            rows: vec![
                row(&[("epoch", 3.0), ("loss", 0.3)]),
                row(&[("epoch", 4.0), ("loss", 0.2)]),
            ],
            metrics: row(&[("epoch", 4.0), ("loss", 0.2)]),
            ..Default::default()
        };
        take_up(earlier, &mut r);
        let epochs: Vec<f64> = r.rows.iter().map(|r| r["epoch"]).collect();
        assert_eq!(epochs, [1.0, 2.0, 3.0, 4.0]);
        assert_eq!(r.rows[2]["loss"], 0.3, "the new attempt's epoch 3 wins");
        assert_eq!(r.metrics["loss"], 0.2);
        assert_eq!(
            r.metrics["lr"], 0.1,
            "a metric only the first attempt reported stays"
        );
        assert_eq!(r.epochs_run, 4);
        // A script that ignores the checkpoint starts over: its rows replace them all.
        let mut again = TrialResult {
            rows: vec![row(&[("epoch", 1.0), ("loss", 0.9)])],
            ..Default::default()
        };
        let earlier = vec![
            row(&[("epoch", 1.0), ("loss", 0.8)]),
            row(&[("epoch", 2.0), ("loss", 0.7)]),
        ];
        take_up(earlier, &mut again);
        assert_eq!(again.rows.len(), 1);
        // Rows without epoch or step are appended.
        let mut plain = TrialResult {
            rows: vec![row(&[("loss", 0.5)])],
            ..Default::default()
        };
        take_up(vec![row(&[("loss", 0.7)])], &mut plain);
        assert_eq!(plain.rows.len(), 2);
        // Restarted after its last epoch, it reports only the test row of that epoch: the
        // training row of that epoch stays.
        let mut test_only = TrialResult {
            rows: vec![row(&[("epoch", 2.0), ("test_loss", 0.4)])],
            ..Default::default()
        };
        let train = |e: f64| row(&[("epoch", e), ("train_loss", 1.0 / e)]);
        take_up(vec![train(1.0), train(2.0)], &mut test_only);
        assert_eq!(test_only.rows.len(), 3);
        assert_eq!(test_only.metrics["train_loss"], 0.5);
    }
}
