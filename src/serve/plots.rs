//! The live view's charts, drawn by the report's own line chart (`report::svg`) so the page
//! and the report look alike: a metric of the running trials beside the best finished ones, and
//! one trial's curves.

use super::json::{is_position, metric_value, status_word};
use super::sweep::{TrialView, View};
use crate::report::svg::{LineChart, Series};
use crate::spec::Goal;
use crate::trial::MetricRow;

/// Finished trials drawn beside the running ones, the best by the sweep's metric.
const BEST_FINISHED: usize = 8;
/// Running trials drawn at most.
const MAX_RUNNING: usize = 12;

/// A trial's rows as (x, value) points of one metric: x is the epoch, else the step, else the
/// row's place.
fn points(rows: &[MetricRow], metric: &str) -> Vec<(f64, f64)> {
    (rows.iter().enumerate())
        .filter_map(|(i, r)| {
            let x = r
                .get("epoch")
                .or_else(|| r.get("step"))
                .copied()
                .unwrap_or(i as f64 + 1.0);
            Some((x, *r.get(metric)?))
        })
        .collect()
}

fn x_label(rows: &[MetricRow]) -> &'static str {
    match rows.first() {
        Some(r) if r.contains_key("epoch") => "epoch",
        Some(r) if r.contains_key("step") => "step",
        _ => "row",
    }
}

fn series(label: String, points: Vec<(f64, f64)>) -> Series {
    Series {
        label,
        points,
        errors: vec![],
        band: vec![],
    }
}

/// The trials the sweep chart draws: every running one, then the best finished ones.
fn shown(v: &View) -> Vec<&TrialView> {
    let mut running: Vec<&TrialView> = v.trials.iter().filter(|t| t.running.is_some()).collect();
    running.truncate(MAX_RUNNING);
    let sign = match v.info.report.goal() {
        Goal::Maximize => 1.0,
        Goal::Minimize => -1.0,
    };
    let rank = |t: &TrialView| {
        // Finished as trained: a failed or interrupted trial is not among the best.
        v.result(t).filter(|r| r.status.is_final())?;
        metric_value(v, t)
            .filter(|x| x.is_finite())
            .map(|x| x * sign)
    };
    let mut done: Vec<(&TrialView, f64)> = (v.trials.iter())
        .filter(|t| t.running.is_none())
        .filter_map(|t| Some((t, rank(t)?)))
        .collect();
    done.sort_by(|a, b| b.1.total_cmp(&a.1));
    running.extend(done.into_iter().take(BEST_FINISHED).map(|(t, _)| t));
    running
}

/// One metric of the running trials and the best finished ones against epoch (or step).
pub fn sweep_chart(v: &View, metric: &str) -> String {
    let mut x = "epoch";
    let lines: Vec<Series> = shown(v)
        .into_iter()
        .map(|t| {
            let rows = v.rows(t);
            x = x_label(&rows);
            let label = match status_word(v, t) {
                "running" => format!("{} (running)", t.trial.name),
                _ => t.trial.name.clone(),
            };
            series(label, points(&rows, metric))
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    let title = format!(
        "{} — running trials and the best finished",
        metric.replace('_', " ")
    );
    chart(&title, x, metric, lines)
}

fn chart(title: &str, x: &str, y: &str, series: Vec<Series>) -> String {
    let few = series.iter().all(|s| s.points.len() <= 30);
    LineChart {
        title,
        x_label: x,
        y_label: &y.replace('_', " "),
        log_x: false,
        series,
        markers: few,
        scatter: false,
    }
    .render()
}

/// One trial's curves: its losses in one chart, its accuracies in another, and each other
/// metric it reports (a program's) in its own, up to four charts.
pub fn trial_charts(v: &View, t: &TrialView) -> Vec<String> {
    let rows = v.rows(t);
    let mut names: Vec<String> = rows
        .iter()
        .flat_map(|r| r.keys())
        .filter(|k| !is_position(k) && !matches!(k.as_str(), "lr" | "seconds"))
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut charts = vec![];
    for word in ["loss", "accuracy"] {
        let of: Vec<String> = names.iter().filter(|n| n.contains(word)).cloned().collect();
        if of.len() > 1 {
            names.retain(|n| !n.contains(word));
            let lines = of
                .iter()
                .map(|n| series(n.replace('_', " "), points(&rows, n)));
            charts.push(chart(&t.trial.name, x_label(&rows), word, lines.collect()));
        }
    }
    for n in names {
        let line = vec![series(n.replace('_', " "), points(&rows, &n))];
        charts.push(chart(&t.trial.name, x_label(&rows), &n, line));
    }
    charts.truncate(4);
    charts
}
