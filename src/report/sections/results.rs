//! The comparison table: every finished trial, best first, with its varied values and metrics.

use super::super::{Block, Loaded, TrialRow, metric_of, tables};
use super::{MAX_LISTED, best_of, shown_metrics};
use crate::format::{metric_text, pct};

/// The results heading, table and (with a threshold) the sentence saying what it measures.
pub fn section(l: &Loaded, order: &[&TrialRow]) -> Vec<Block> {
    if l.program.is_some() {
        return program_section(l, order);
    }
    let o = &l.options;
    let mut headers: Vec<String> = vec!["trial".into(), "status".into()];
    headers.extend(l.axes.iter().cloned());
    headers.extend(
        [
            "test acc",
            "best val acc (epoch)",
            "train acc",
            "train−val gap",
            "epochs",
            "seconds",
            "samples/s",
        ]
        .map(String::from),
    );
    if let Some(t) = o.threshold {
        headers.push(format!("epoch reaching {:.0}%", t * 100.0));
    }
    let (listed, note) = best_of(order, MAX_LISTED, "Listed");
    let rows = listed.iter().map(|r| row(l, r)).collect();
    let best = order
        .first()
        .filter(|r| metric_of(r, o).is_some())
        .map(|_| 0);
    let mut b = vec![
        Block::Heading(2, format!("Results (sorted by {})", o.metric)),
        Block::Table(headers, rows, best),
    ];
    b.extend(note);
    if let Some(t) = o.threshold {
        let metric = if o.threshold_metric == "test_accuracy" {
            "test accuracy"
        } else {
            "validation accuracy (test accuracy when there is no validation split)"
        };
        b.push(Block::Para(format!(
            "Threshold: the first epoch at which {metric} reaches {:.1}%.",
            t * 100.0
        )));
    }
    b
}

fn row(l: &Loaded, r: &TrialRow) -> Vec<String> {
    let x = &r.result;
    let mut row = vec![r.name.clone(), x.status.to_string()];
    row.extend(l.axes.iter().map(|a| r.varied_text(a)));
    row.extend([
        pct(x.test_accuracy),
        match (x.best_val_accuracy, x.best_epoch) {
            (Some(a), Some(e)) => format!("{} ({e})", pct(Some(a))),
            _ => "–".into(),
        },
        pct(x.train_accuracy),
        tables::gap(r).map_or_else(|| "–".into(), |g| format!("{:+.2} pt", g * 100.0)),
        x.epochs_run.to_string(),
        format!("{:.1}", x.total_seconds),
        x.samples_per_second
            .map_or_else(|| "–".into(), |s| format!("{s:.0}")),
    ]);
    if let Some(t) = l.options.threshold {
        row.push(
            tables::epoch_reaching(r, t, &l.options.threshold_metric)
                .map_or_else(|| "never".into(), |e| e.to_string()),
        );
    }
    row
}

/// A program sweep's table: its reported metrics (the report's metric first), epochs, time and
/// exit code.
fn program_section(l: &Loaded, order: &[&TrialRow]) -> Vec<Block> {
    let o = &l.options;
    let (metrics, left_out) = shown_metrics(l);
    let mut headers: Vec<String> = vec!["trial".into(), "status".into()];
    headers.extend(l.axes.iter().cloned());
    headers.extend(metrics.iter().cloned());
    headers.extend(["epochs", "seconds", "exit code"].map(String::from));
    let (listed, note) = best_of(order, MAX_LISTED, "Listed");
    let rows = listed
        .iter()
        .map(|r| {
            let x = &r.result;
            let mut row = vec![r.name.clone(), x.status.to_string()];
            row.extend(l.axes.iter().map(|a| r.varied_text(a)));
            row.extend(
                metrics
                    .iter()
                    .map(|m| metric_text(m, x.metrics.get(m).copied())),
            );
            row.extend([
                x.epochs_run.to_string(),
                format!("{:.1}", x.total_seconds),
                x.exit_code.map_or_else(|| "–".into(), |c| c.to_string()),
            ]);
            row
        })
        .collect();
    let best = order
        .first()
        .filter(|r| metric_of(r, o).is_some())
        .map(|_| 0);
    let goal = match o.goal() {
        crate::spec::Goal::Maximize => "largest",
        crate::spec::Goal::Minimize => "smallest",
    };
    let mut b = vec![
        Block::Heading(2, format!("Results (sorted by {}, {goal} first)", o.metric)),
        Block::Table(headers, rows, best),
    ];
    b.extend(note);
    b.extend(left_out);
    b
}
