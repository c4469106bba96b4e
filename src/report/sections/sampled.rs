//! For sampled sweeps (random, tpe): how many trials finished and were pruned, the metric
//! against each sampled key as a scatter plot (log axis for log distributions, pruned trials in
//! their own colour), and the best value so far over the order the trials were planned or
//! proposed in.

use super::super::svg::{LineChart, Series};
use super::super::{Block, Loaded, TrialRow, metric_of};
use super::axes::Plotted;
use crate::search::prune::curve_of;
use crate::spec::{Goal, Method};
use crate::trial::Status;
use serde_json::Value;

/// The search section; nothing for a grid.
pub fn section(l: &Loaded) -> Vec<Block> {
    if l.method == Method::Grid || l.rows.is_empty() {
        return vec![];
    }
    let pruned = l
        .rows
        .iter()
        .filter(|r| r.result.status == Status::Pruned)
        .count();
    let method = if l.method == Method::Tpe {
        "TPE"
    } else {
        "Random"
    };
    let mut b = vec![
        Block::Heading(2, "Search".into()),
        Block::Para(format!(
            "{method} search: {} of {} planned or proposed trials have a result; {pruned} were pruned by early termination (the notes give the epoch each stopped at).",
            l.rows.len(),
            l.planned
        )),
    ];
    let (label, value) = judged(l);
    for p in &l.space {
        let x = |r: &TrialRow| r.varied.get(&p.key).and_then(Value::as_f64);
        if !l.rows.iter().all(|r| x(r).is_some()) {
            continue;
        }
        let points = |want: bool| -> Vec<(f64, f64)> {
            l.rows
                .iter()
                .filter(|r| (r.result.status == Status::Pruned) == want)
                .filter_map(|r| Some((x(r)?, value(r)?)))
                .collect()
        };
        let mut series = vec![Series {
            label: "finished".into(),
            points: points(false),
            errors: vec![],
            band: vec![],
        }];
        if pruned > 0 {
            series.push(Series {
                label: "pruned".into(),
                points: points(true),
                errors: vec![],
                band: vec![],
            });
        }
        let chart = LineChart {
            title: &format!("{label} vs {}", p.key),
            x_label: &p.key,
            y_label: &label,
            log_x: p.dist.is_log(),
            markers: true,
            scatter: true,
            series,
        };
        b.push(Block::Plot(
            format!("search-{}", p.key.replace('.', "-")),
            chart.render(),
        ));
    }
    b.extend(best_so_far(l));
    b
}

/// A trial's value on a chart, when it has one.
type ValueOf<'a> = Box<dyn Fn(&TrialRow) -> Option<f64> + 'a>;

/// What the scatter plots show: the pruning metric's best value when trials were pruned (so
/// pruned trials have a value too), else the final metric.
fn judged(l: &Loaded) -> (String, ValueOf<'_>) {
    match &l.early_terminate {
        Some(rule) => {
            let metric = rule.metric().to_string();
            let goal = rule.goal();
            let best = move |r: &TrialRow| {
                curve_of(&r.result, &metric)
                    .into_iter()
                    .map(|(_, v)| v)
                    .filter(|v| v.is_finite())
                    .reduce(|a, b| match goal {
                        Goal::Maximize => a.max(b),
                        Goal::Minimize => a.min(b),
                    })
            };
            (format!("best {}", rule.metric()), Box::new(best))
        }
        None => {
            let m = Plotted::of(l);
            (m.label.clone(), Box::new(move |r: &TrialRow| m.value(r)))
        }
    }
}

/// The report's metric, best so far, over the trials in plan (and proposal) order.
fn best_so_far(l: &Loaded) -> Option<Block> {
    let sign = match l.options.goal() {
        Goal::Maximize => 1.0,
        Goal::Minimize => -1.0,
    };
    let mut best: Option<f64> = None;
    let mut points = vec![];
    for (i, r) in l.rows.iter().enumerate() {
        if let Some(v) = metric_of(r, &l.options) {
            best = Some(best.map_or(v, |b| b.max(v)));
        }
        if let Some(b) = best {
            points.push(((i + 1) as f64, sign * b));
        }
    }
    if points.is_empty() {
        return None;
    }
    let metric = &l.options.metric;
    let chart = LineChart {
        title: &format!("best {metric} so far"),
        x_label: "trial (in the order planned or proposed)",
        y_label: metric,
        log_x: false,
        markers: false,
        scatter: false,
        series: vec![Series {
            label: "best so far".into(),
            points,
            errors: vec![],
            band: vec![],
        }],
    };
    Some(Block::Plot("search-best-so-far".into(), chart.render()))
}
