//! Final accuracy: a bar per trial, and the test accuracy against each numeric varied axis (one
//! line per combination of the other axes, seeds averaged into error bars).

use super::super::svg::{self, LineChart, Series};
use super::super::{Block, Loaded, TrialRow};
use super::setting_label;
use crate::format::mean_std;
use serde_json::Value;

/// An x value and every y measured there (one per seed).
type Point = (f64, Vec<f64>);

/// The bar chart and one line chart per numeric axis.
pub fn section(l: &Loaded, order: &[&TrialRow]) -> Vec<Block> {
    let mut b = vec![Block::Heading(2, "Final accuracy".into())];
    let bars: Vec<(String, f64, f64)> = order
        .iter()
        .filter_map(|r| r.result.test_accuracy.map(|a| (r.name.clone(), a, 0.0)))
        .collect();
    if !bars.is_empty() {
        b.push(Block::Plot(
            "test-accuracy".into(),
            svg::bar_chart("Test accuracy per trial", &bars, Some(0)),
        ));
    }
    let finished: Vec<&TrialRow> = l
        .rows
        .iter()
        .filter(|r| r.result.test_accuracy.is_some())
        .collect();
    if finished.is_empty() {
        return b;
    }
    for axis in l.axes.iter().filter(|a| *a != "seed") {
        if numeric_axis(l, axis) {
            b.push(Block::Plot(
                format!("vs-{}", axis.replace('.', "-")),
                axis_chart(l, axis, &finished),
            ));
        }
    }
    b
}

/// Axis values as numbers when every trial has a number there.
fn numeric_axis(l: &Loaded, axis: &str) -> bool {
    l.rows
        .iter()
        .all(|r| r.varied.get(axis).is_some_and(Value::is_number))
}

/// Log scale for rates and sizes, or any positive axis spanning more than 50×.
fn log_axis(axis: &str, xs: &[f64]) -> bool {
    let lo = xs.iter().copied().fold(f64::MAX, f64::min);
    let hi = xs.iter().copied().fold(f64::MIN, f64::max);
    lo > 0.0
        && (["learning_rate", "batch_size", "train_size", "weight_decay"]
            .iter()
            .any(|k| axis.ends_with(k))
            || hi / lo > 50.0)
}

/// Test accuracy against one axis, as an SVG line chart.
fn axis_chart(l: &Loaded, axis: &str, finished: &[&TrialRow]) -> String {
    let others: Vec<&String> = l
        .axes
        .iter()
        .filter(|a| *a != axis && *a != "seed")
        .collect();
    let mut series: Vec<(String, Vec<Point>)> = vec![];
    for r in finished {
        let label = setting_label(r, &others, true);
        let x = r
            .varied
            .get(axis)
            .and_then(Value::as_f64)
            .unwrap_or(f64::NAN);
        let y = r.result.test_accuracy.unwrap_or(f64::NAN);
        let s = series.iter().position(|s| s.0 == label).unwrap_or_else(|| {
            series.push((label, vec![]));
            series.len() - 1
        });
        match series[s].1.iter_mut().find(|p| p.0 == x) {
            Some(p) => p.1.push(y),
            None => series[s].1.push((x, vec![y])),
        }
    }
    let xs: Vec<f64> = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.0))
        .collect();
    LineChart {
        title: &format!("Test accuracy vs {axis}"),
        x_label: axis,
        y_label: "test accuracy",
        log_x: log_axis(axis, &xs),
        markers: true,
        series: series.into_iter().map(to_series).collect(),
    }
    .render()
}

/// Points sorted by x, each the mean of its seeds with the std as error bar.
fn to_series((label, mut pts): (String, Vec<Point>)) -> Series {
    pts.sort_by(|a, c| a.0.total_cmp(&c.0));
    let stats: Vec<(f64, f64)> = pts.iter().map(|p| mean_std(&p.1)).collect();
    Series {
        label: if label.is_empty() {
            "test accuracy".into()
        } else {
            label
        },
        points: pts.iter().zip(&stats).map(|(p, s)| (p.0, s.0)).collect(),
        errors: stats.iter().map(|s| s.1).collect(),
    }
}
