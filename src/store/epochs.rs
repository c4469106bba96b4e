//! epochs.csv: one row per epoch of a trial, written and read back without a CSV dependency.

use crate::trial::{EpochRow, MetricRow};
use std::collections::BTreeSet;

/// The header of epochs.csv (files written before `threads` have 9 columns and read alike).
pub const EPOCH_HEADER: &str = "epoch,train_loss,train_accuracy,val_loss,val_accuracy,test_loss,test_accuracy,lr,seconds,threads";

fn opt(v: Option<f64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

/// The text of epochs.csv (non-finite values are written `NaN`, `inf`, and read back as such).
pub fn epochs_csv(rows: &[EpochRow]) -> String {
    let mut s = format!("{EPOCH_HEADER}\n");
    for r in rows {
        s += &format!(
            "{},{},{},{},{},{},{},{},{},{}\n",
            r.epoch,
            r.train_loss,
            r.train_accuracy,
            opt(r.val_loss),
            opt(r.val_accuracy),
            opt(r.test_loss),
            opt(r.test_accuracy),
            r.lr,
            r.seconds,
            r.threads.map(|t| t.to_string()).unwrap_or_default()
        );
    }
    s
}

/// Reads epochs.csv back; an error names the line.
pub fn parse_epochs_csv(text: &str) -> Result<Vec<EpochRow>, String> {
    let mut rows = vec![];
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let line_no = i + 1;
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 9 && f.len() != 10 {
            return Err(format!(
                "line {line_no}: expected 10 fields, found {}",
                f.len()
            ));
        }
        let num = |s: &str| -> Result<f64, String> {
            s.parse::<f64>()
                .map_err(|_| format!("line {line_no}: `{s}` is not a number"))
        };
        let o = |s: &str| -> Result<Option<f64>, String> {
            if s.is_empty() {
                Ok(None)
            } else {
                num(s).map(Some)
            }
        };
        rows.push(EpochRow {
            epoch: f[0]
                .parse()
                .map_err(|_| format!("line {line_no}: bad epoch"))?,
            train_loss: num(f[1])?,
            train_accuracy: num(f[2])?,
            val_loss: o(f[3])?,
            val_accuracy: o(f[4])?,
            test_loss: o(f[5])?,
            test_accuracy: o(f[6])?,
            lr: num(f[7])?,
            seconds: num(f[8])?,
            threads: match f.get(9) {
                Some(t) if !t.is_empty() => Some(
                    t.parse()
                        .map_err(|_| format!("line {line_no}: bad threads `{t}`"))?,
                ),
                _ => None,
            },
        });
    }
    Ok(rows)
}

/// The text of a program trial's epochs.csv: `epoch` and `step` first when present, then every
/// other metric by name; a metric a row lacks is an empty cell.
pub fn rows_csv(rows: &[MetricRow]) -> String {
    let mut names: Vec<&str> = rows
        .iter()
        .flat_map(|r| r.keys().map(String::as_str))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    names.sort_by_key(|n| match *n {
        "epoch" => 0,
        "step" => 1,
        _ => 2,
    });
    let mut s = names.join(",") + "\n";
    for r in rows {
        let cells: Vec<String> = names.iter().map(|n| opt(r.get(*n).copied())).collect();
        s += &(cells.join(",") + "\n");
    }
    s
}

/// Reads a program trial's epochs.csv back.
pub fn parse_rows_csv(text: &str) -> Result<Vec<MetricRow>, String> {
    let mut lines = text.lines();
    let names: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let mut rows = vec![];
    for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let cells: Vec<&str> = line.split(',').collect();
        if cells.len() != names.len() {
            return Err(format!(
                "line {}: expected {} fields, found {}",
                i + 2,
                names.len(),
                cells.len()
            ));
        }
        let mut row = MetricRow::new();
        for (n, c) in names.iter().zip(cells).filter(|(_, c)| !c.is_empty()) {
            let v = c
                .parse::<f64>()
                .map_err(|_| format!("line {}: `{c}` is not a number", i + 2))?;
            row.insert((*n).to_string(), v);
        }
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_round_trip_non_finite_values_included() {
        let mut rows = vec![
            EpochRow {
                epoch: 1,
                train_loss: 0.5,
                train_accuracy: 0.8,
                val_loss: Some(0.4),
                val_accuracy: None,
                test_loss: None,
                test_accuracy: Some(0.9),
                lr: 0.01,
                seconds: 1.5,
                threads: Some(2),
            };
            2
        ];
        rows[1].train_loss = f64::INFINITY;
        rows[1].threads = None;
        assert_eq!(parse_epochs_csv(&epochs_csv(&rows)).unwrap(), rows);
        let nan = EpochRow {
            train_loss: f64::NAN,
            ..rows[0].clone()
        };
        assert!(
            parse_epochs_csv(&epochs_csv(&[nan])).unwrap()[0]
                .train_loss
                .is_nan()
        );
    }

    #[test]
    fn metric_rows_round_trip_with_missing_cells() {
        let rows: Vec<MetricRow> = vec![
            [("val_loss".into(), 0.5), ("epoch".into(), 1.0)].into(),
            [("epoch".into(), 2.0), ("acc".into(), f64::NAN)].into(),
        ];
        let text = rows_csv(&rows);
        assert!(text.starts_with("epoch,acc,val_loss\n"), "{text}");
        let back = parse_rows_csv(&text).unwrap();
        assert_eq!(back[0], rows[0]);
        assert!(back[1]["acc"].is_nan() && !back[1].contains_key("val_loss"));
    }
}
