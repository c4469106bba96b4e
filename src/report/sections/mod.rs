//! The report as sections, each a small function over the loaded sweep that returns its blocks:
//! the overview, the results table, notes, seeds, the metric against each axis, which settings
//! matter (importance, heat maps), learning curves and the best trial in detail. A section with
//! nothing to say returns no blocks.

mod axes;
mod best;
mod curves;
mod landscape;
mod notes;
mod overview;
mod results;
mod sampled;
mod seeds;

use super::{Block, Loaded, TrialRow, metric_of};

/// Every section of one sweep's report, in reading order.
pub fn all(l: &Loaded) -> Vec<Block> {
    let order = ranked(l);
    let mut b = overview::section(l);
    b.extend(results::section(l, &order));
    b.extend(notes::section(l));
    b.extend(seeds::section(l));
    b.extend(axes::section(l, &order));
    b.extend(sampled::section(l));
    b.extend(landscape::section(l));
    b.extend(curves::section(l, &order));
    if l.program.is_some() {
        b.extend(best::program(l, &order));
    }
    b.extend(best::section(&order));
    b
}

/// Trials listed in a table at most, drawn as bars and as learning curves; a larger sweep shows
/// its best ones and says where the rest are.
const MAX_LISTED: usize = 50;
const MAX_BARS: usize = 30;
const MAX_CURVES: usize = 10;

/// A program's metrics shown in the report at most (table columns, learning curves): a program
/// that logs thousands of names would otherwise give a table nobody can read.
const MAX_METRICS: usize = 12;

/// The metrics of a program sweep the report shows: the report's metric first, then the others
/// by name, at most `MAX_METRICS`; and the sentence saying how many were left out.
fn shown_metrics(l: &Loaded) -> (Vec<String>, Option<Block>) {
    let mut metrics = l.metric_names();
    if let Some(i) = metrics.iter().position(|m| *m == l.options.metric) {
        let m = metrics.remove(i);
        metrics.insert(0, m);
    }
    let total = metrics.len();
    metrics.truncate(MAX_METRICS);
    let note = (total > MAX_METRICS).then(|| {
        Block::Para(format!(
            "Metrics: the table and the curves show {MAX_METRICS} of the {total} metrics the trials reported (the report's metric first, then by name); {} more are in summary.csv.",
            total - MAX_METRICS
        ))
    });
    (metrics, note)
}

/// The best `max` of `order`, and the sentence saying so when that is not all of them.
fn best_of<'a>(
    order: &[&'a TrialRow],
    max: usize,
    what: &str,
) -> (Vec<&'a TrialRow>, Option<Block>) {
    let note = (order.len() > max).then(|| {
        Block::Para(format!(
            "{what}: the best {max} of {} trials; every trial is in summary.csv.",
            order.len()
        ))
    });
    (order.iter().take(max).copied().collect(), note)
}

/// The finished trials, best first by the report's metric (trials without it last).
fn ranked(l: &Loaded) -> Vec<&TrialRow> {
    let mut order: Vec<&TrialRow> = l.rows.iter().collect();
    let key = |r: &TrialRow| metric_of(r, &l.options).unwrap_or(f64::NEG_INFINITY);
    order.sort_by(|a, c| key(c).total_cmp(&key(a)));
    order
}

/// `key=value` of the given axes for one trial, the keys shortened to their last part when
/// `short` (curve labels) or kept whole (table cells).
fn setting_label(r: &TrialRow, axes: &[&String], short: bool) -> String {
    axes.iter()
        .map(|a| {
            let k = if short {
                a.rsplit('.').next().unwrap_or(a)
            } else {
                a.as_str()
            };
            format!("{k}={}", r.varied_text(a))
        })
        .collect::<Vec<_>>()
        .join(if short { "," } else { ", " })
}

/// The trials grouped by setting (every varied value but the seed), in first-seen order, each
/// group with its key: the other axes' `key=value`, or "all" when the seed is the only axis.
fn by_setting(l: &Loaded) -> Vec<(String, Vec<&TrialRow>)> {
    let others: Vec<&String> = l.axes.iter().filter(|a| *a != "seed").collect();
    let mut groups: Vec<(String, Vec<&TrialRow>)> = vec![];
    for r in &l.rows {
        let mut key = setting_label(r, &others, false);
        if key.is_empty() {
            key = "all".into();
        }
        match groups.iter_mut().find(|g| g.0 == key) {
            Some(g) => g.1.push(r),
            None => groups.push((key, vec![r])),
        }
    }
    groups
}
