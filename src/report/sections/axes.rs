//! The final metric (test accuracy for built-in trials, the sweep's metric for a program): a
//! bar per trial when it is an accuracy, and the metric against each numeric varied axis (one
//! line per combination of the other axes, seeds averaged into error bars).

use super::super::svg::{self, LineChart, Series};
use super::super::{Block, Loaded, TrialRow};
use super::{MAX_BARS, best_of, setting_label};
use crate::format::mean_std;
use serde_json::Value;

/// An x value and every y measured there (one per seed).
type Point = (f64, Vec<f64>);

/// The metric the section draws: its key in results, and its name in titles.
pub(super) struct Plotted {
    pub key: String,
    pub label: String,
}

impl Plotted {
    /// Test accuracy for built-in sweeps; the report's metric for a program.
    pub fn of(l: &Loaded) -> Plotted {
        match &l.program {
            Some(_) => Plotted {
                key: l.options.metric.clone(),
                label: l.options.metric.clone(),
            },
            None => Plotted {
                key: "test_accuracy".into(),
                label: "test accuracy".into(),
            },
        }
    }

    /// The value of one trial, when it has a finite one.
    pub fn value(&self, r: &TrialRow) -> Option<f64> {
        r.result.metric(&self.key).filter(|v| v.is_finite())
    }

    /// Its name in running text.
    pub fn label_text(&self) -> &str {
        &self.label
    }

    /// Whether larger is better: accuracies for built-in trials, the sweep's goal for a program.
    pub fn maximize(&self, l: &Loaded) -> bool {
        l.program.is_none() || l.options.goal() == crate::spec::Goal::Maximize
    }

    fn title(&self) -> String {
        let mut t = self.label.clone();
        if let Some(c) = t.get(..1) {
            t.replace_range(..1, &c.to_uppercase());
        }
        t
    }
}

/// The bar chart and one line chart per numeric axis.
pub fn section(l: &Loaded, order: &[&TrialRow]) -> Vec<Block> {
    let m = Plotted::of(l);
    let heading = if l.program.is_some() {
        format!("Final {}", m.label)
    } else {
        "Final accuracy".into()
    };
    let mut b = vec![Block::Heading(2, heading)];
    let (drawn, note) = best_of(order, MAX_BARS, "Bars");
    let bars: Vec<(String, f64, f64)> = drawn
        .iter()
        .filter_map(|r| m.value(r).map(|a| (r.name.clone(), a, 0.0)))
        .collect();
    // The bar chart draws fractions as percentages: accuracies only.
    if !bars.is_empty() && m.key.contains("acc") && bars.iter().all(|b| (0.0..=1.0).contains(&b.1))
    {
        b.push(Block::Plot(
            m.key.replace('_', "-"),
            super::super::bars::bar_chart(&format!("{} per trial", m.title()), &bars, Some(0)),
        ));
        b.extend(note);
    }
    let finished: Vec<&TrialRow> = l.rows.iter().filter(|r| m.value(r).is_some()).collect();
    if finished.is_empty() {
        return b;
    }
    // A sampled sweep's keys are drawn as scatter plots in its search section.
    let sampled = |a: &String| l.space.iter().any(|p| p.key == *a);
    for axis in l.axes.iter().filter(|a| *a != "seed" && !sampled(a)) {
        if numeric_axis(l, axis) {
            let (chart, note) = axis_chart(l, &m, axis, &finished);
            b.push(Block::Plot(format!("vs-{}", axis.replace('.', "-")), chart));
            b.extend(note);
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

/// Lines of one chart at most: one colour each, and a legend that fits beside the plot.
const MAX_LINES: usize = svg::PALETTE.len();

/// The best `MAX_LINES` lines by their best point (the metric's goal), in that order, and the
/// sentence saying which are shown when there were more.
fn best_lines(
    mut series: Vec<(String, Vec<Point>)>,
    m: &Plotted,
    maximize: bool,
    axis: &str,
) -> (Vec<(String, Vec<Point>)>, Option<Block>) {
    let total = series.len();
    if total <= MAX_LINES {
        return (series, None);
    }
    let sign = if maximize { 1.0 } else { -1.0 };
    let best = |s: &(String, Vec<Point>)| {
        s.1.iter()
            .map(|p| sign * mean_std(&p.1).0)
            .filter(|v| v.is_finite())
            .fold(f64::NEG_INFINITY, f64::max)
    };
    series.sort_by(|a, c| best(c).total_cmp(&best(a)));
    series.truncate(MAX_LINES);
    let note = Block::Para(format!(
        "{} vs {axis}: the best {MAX_LINES} of {total} lines (settings of the other axes) by their best {}; every trial is in summary.csv.",
        m.title(),
        m.label_text()
    ));
    (series, Some(note))
}

/// The metric against one axis, as an SVG line chart, and a note when it draws only the best
/// lines.
fn axis_chart(
    l: &Loaded,
    m: &Plotted,
    axis: &str,
    finished: &[&TrialRow],
) -> (String, Option<Block>) {
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
        let y = m.value(r).unwrap_or(f64::NAN);
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
    let (series, note) = best_lines(series, m, m.maximize(l), axis);
    let chart = LineChart {
        title: &format!("{} vs {axis}", m.title()),
        x_label: axis,
        y_label: &m.label,
        log_x: log_axis(axis, &xs),
        markers: true,
        scatter: false,
        series: series.into_iter().map(|s| to_series(s, &m.label)).collect(),
    };
    (chart.render(), note)
}

/// Points sorted by x, each the mean of its seeds with the std as error bar.
fn to_series((label, mut pts): (String, Vec<Point>), metric: &str) -> Series {
    pts.sort_by(|a, c| a.0.total_cmp(&c.0));
    let stats: Vec<(f64, f64)> = pts.iter().map(|p| mean_std(&p.1)).collect();
    Series {
        label: if label.is_empty() {
            metric.into()
        } else {
            label
        },
        points: pts.iter().zip(&stats).map(|(p, s)| (p.0, s.0)).collect(),
        errors: stats.iter().map(|s| s.1).collect(),
        band: vec![],
    }
}
