//! Learning curves: every trial's per-epoch values (loss, accuracy on each split), and the loss
//! of every step when trials log steps.

use super::super::svg::{LineChart, Series};
use super::super::{Block, Loaded, TrialRow};
use super::{MAX_CURVES, best_of};
use crate::trial::EpochRow;

/// A plot file stem, its label, and the epoch value it draws.
type Curve = (&'static str, &'static str, fn(&EpochRow) -> Option<f64>);

const CURVES: [Curve; 6] = [
    ("train-loss", "training loss", |e| Some(e.train_loss)),
    ("val-loss", "validation loss", |e| e.val_loss),
    ("train-accuracy", "training accuracy", |e| {
        Some(e.train_accuracy)
    }),
    ("val-accuracy", "validation accuracy", |e| e.val_accuracy),
    ("test-accuracy-epochs", "test accuracy", |e| e.test_accuracy),
    ("test-loss-epochs", "test loss", |e| e.test_loss),
];

/// Steps drawn per line at most; longer runs are thinned evenly.
const MAX_STEP_POINTS: usize = 2000;

/// The curves heading, one chart per measured epoch value, and the step-loss chart; in a large
/// sweep, of its best trials only.
pub fn section(l: &Loaded, order: &[&TrialRow]) -> Vec<Block> {
    let mut b = vec![Block::Heading(2, "Learning curves".into())];
    let (shown, note) = if l.rows.len() > MAX_CURVES {
        best_of(order, MAX_CURVES, "Curves")
    } else {
        (l.rows.iter().collect(), None)
    };
    b.extend(note);
    for (stem, label, f) in CURVES {
        let series: Vec<Series> = shown
            .iter()
            .map(|r| Series {
                label: r.name.clone(),
                points: r
                    .result
                    .epochs
                    .iter()
                    .filter_map(|e| f(e).map(|v| (e.epoch as f64, v)))
                    .collect(),
                errors: vec![],
            })
            .filter(|s| !s.points.is_empty())
            .collect();
        b.extend(curve_plot(format!("curve-{stem}"), "epoch", label, series));
    }
    b.extend(step_losses(&shown));
    b.extend(program_curves(l, &shown));
    b
}

/// One chart per metric a program reported in more than one row, against `epoch` (or `step`,
/// or the row's position when it gave neither).
fn program_curves(l: &Loaded, shown: &[&TrialRow]) -> Vec<Block> {
    let mut b = vec![];
    for metric in l.metric_names() {
        let mut x_label = "epoch";
        let series: Vec<Series> = shown
            .iter()
            .map(|r| Series {
                label: r.name.clone(),
                points: r
                    .result
                    .rows
                    .iter()
                    .enumerate()
                    .filter_map(|(i, row)| {
                        let x = row.get("epoch").or_else(|| {
                            x_label = if row.contains_key("step") {
                                "step"
                            } else {
                                "row"
                            };
                            row.get("step")
                        });
                        let y = row.get(&metric)?;
                        Some((x.copied().unwrap_or((i + 1) as f64), *y))
                    })
                    .filter(|(_, y)| y.is_finite())
                    .collect(),
                errors: vec![],
            })
            .filter(|s| s.points.len() > 1)
            .collect();
        b.extend(curve_plot(
            format!("curve-{}", stem(&metric)),
            x_label,
            &metric,
            series,
        ));
    }
    b
}

/// One learning-curve chart of `label` per `x_label`, with markers when every line is short;
/// nothing when no trial has points.
fn curve_plot(file: String, x_label: &str, label: &str, series: Vec<Series>) -> Option<Block> {
    if series.is_empty() {
        return None;
    }
    let markers = series.iter().all(|s| s.points.len() <= 3);
    let chart = LineChart {
        title: &format!("{label} per {x_label}"),
        x_label,
        y_label: label,
        log_x: false,
        markers,
        scatter: false,
        series,
    };
    Some(Block::Plot(file, chart.render()))
}

/// A metric's name as part of a file name.
fn stem(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

fn step_losses(shown: &[&TrialRow]) -> Option<Block> {
    let series: Vec<Series> = shown
        .iter()
        .filter(|r| !r.result.step_losses.is_empty())
        .map(|r| {
            let s = &r.result.step_losses;
            let every = s.len().div_ceil(MAX_STEP_POINTS).max(1);
            Series {
                label: r.name.clone(),
                points: s
                    .iter()
                    .enumerate()
                    .step_by(every)
                    .map(|(i, v)| ((i + 1) as f64, *v))
                    .collect(),
                errors: vec![],
            }
        })
        .collect();
    if series.is_empty() {
        return None;
    }
    Some(Block::Plot(
        "curve-step-loss".into(),
        LineChart {
            title: "training loss per step (iteration t)",
            x_label: "iteration t",
            y_label: "minibatch loss",
            log_x: false,
            markers: false,
            scatter: false,
            series,
        }
        .render(),
    ))
}
