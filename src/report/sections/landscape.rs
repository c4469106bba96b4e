//! How the settings matter: the share of the metric's variance each varied parameter explains on
//! its own (a main-effects decomposition), and heat maps of the metric over pairs of axes (all
//! pairs of up to three axes, else the two that matter most). Seeds are not a setting: they are
//! averaged into each value.

use super::super::heatmap::HeatMap;
use super::super::parallel::{self, Column};
use super::super::{Block, Loaded, TrialRow};
use super::axes::Plotted;
use crate::format::metric_text;
use serde_json::Value;

/// Values an axis may have before numeric ones are grouped into `BINS` ranges (sampled sweeps).
const MAX_LEVELS: usize = 12;
const BINS: usize = 4;

/// One varied parameter as groups of trials: a label per group, the group of each trial.
struct Axis {
    key: String,
    levels: Vec<String>,
    of: Vec<usize>,
    /// The levels are ranges of a parameter with many values.
    binned: bool,
}

/// The importance bars and the heat maps, when two or more parameters vary.
pub fn section(l: &Loaded) -> Vec<Block> {
    let m = Plotted::of(l);
    let trials: Vec<(&TrialRow, f64)> = l
        .rows
        .iter()
        .filter_map(|r| m.value(r).map(|v| (r, v)))
        .collect();
    let ys: Vec<f64> = trials.iter().map(|t| t.1).collect();
    let axes: Vec<Axis> = l
        .axes
        .iter()
        .filter(|a| *a != "seed")
        .filter_map(|a| axis(a, &trials))
        .collect();
    if axes.len() < 2 || ys.len() < 4 {
        return vec![];
    }
    let Some(mut shares) = axes
        .iter()
        .enumerate()
        .map(|(i, a)| explained(a, &ys).map(|s| (i, s)))
        .collect::<Option<Vec<_>>>()
    else {
        return vec![];
    };
    shares.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut b = vec![
        Block::Heading(2, "Which settings matter".into()),
        Block::Plot(
            "importance".into(),
            super::super::bars::bar_chart(
                &format!("Share of the variance of {} explained", m.label_text()),
                &shares
                    .iter()
                    .map(|(i, s)| (axes[*i].key.clone(), *s, 0.0))
                    .collect::<Vec<_>>(),
                None,
            ),
        ),
        Block::Para(format!(
            "Each bar is the variance of the mean {} per value of that parameter (over every other \
             setting and seed) divided by the variance over all {} trials: what the parameter \
             explains on its own. The rest is interactions and noise.{}",
            m.label_text(),
            ys.len(),
            if axes.iter().any(|a| a.binned) {
                " Parameters with many values are grouped into four ranges of equal counts."
            } else {
                ""
            }
        )),
    ];
    let pairs: Vec<(usize, usize)> = if axes.len() <= 3 {
        (0..axes.len())
            .flat_map(|i| (i + 1..axes.len()).map(move |j| (i, j)))
            .collect()
    } else {
        vec![(shares[0].0, shares[1].0)]
    };
    let maximize = m.maximize(l);
    for (i, j) in pairs {
        b.push(heat_map(&m, (&axes[i], &axes[j]), &ys, maximize));
    }
    if axes.len() >= 3 || axes.iter().any(|a| a.binned) {
        b.push(parallel_plot(&m, &axes, &trials, maximize));
    }
    b
}

/// Every trial as a line across the parameters to the metric.
fn parallel_plot(m: &Plotted, axes: &[Axis], trials: &[(&TrialRow, f64)], maximize: bool) -> Block {
    let mut columns: Vec<Column> = axes
        .iter()
        .map(|a| Column {
            name: a.key.rsplit('.').next().unwrap_or(&a.key).to_string(),
            values: trials
                .iter()
                .map(|t| t.0.varied.get(&a.key).cloned())
                .collect(),
        })
        .collect();
    columns.push(Column {
        name: m.label_text().to_string(),
        values: trials
            .iter()
            .map(|t| serde_json::Number::from_f64(t.1).map(Value::Number))
            .collect(),
    });
    Block::Plot(
        "parallel".into(),
        parallel::render(
            &format!("Every trial across its parameters to {}", m.label_text()),
            &columns,
            maximize,
        ),
    )
}

/// The metric's mean over each pair of values of two axes.
fn heat_map(m: &Plotted, (x, y): (&Axis, &Axis), ys: &[f64], maximize: bool) -> Block {
    let mut sums = vec![vec![(0.0, 0usize); x.levels.len()]; y.levels.len()];
    for (k, v) in ys.iter().enumerate() {
        let c = &mut sums[y.of[k]][x.of[k]];
        c.0 += v;
        c.1 += 1;
    }
    let cells: Vec<Vec<Option<f64>>> = sums
        .iter()
        .map(|r| {
            r.iter()
                .map(|(s, n)| (*n > 0).then(|| s / *n as f64))
                .collect()
        })
        .collect();
    let title = format!("Mean {} by {} and {}", m.label_text(), x.key, y.key);
    let text = |v: f64| metric_text(&m.key, Some(v));
    Block::Plot(
        format!(
            "heat-{}-{}",
            x.key.replace('.', "-"),
            y.key.replace('.', "-")
        ),
        HeatMap {
            title: &title,
            x: (&x.key, &x.levels),
            y: (&y.key, &y.levels),
            cells: &cells,
            maximize,
            text: &text,
        }
        .render(),
    )
}

/// The share of the variance of `ys` that the group means of `a` explain; `None` when the
/// metric does not vary.
fn explained(a: &Axis, ys: &[f64]) -> Option<f64> {
    let n = ys.len() as f64;
    let mean = ys.iter().sum::<f64>() / n;
    let total: f64 = ys.iter().map(|y| (y - mean).powi(2)).sum();
    if total <= 0.0 {
        return None;
    }
    let mut groups = vec![(0.0, 0.0); a.levels.len()];
    for (k, y) in ys.iter().enumerate() {
        groups[a.of[k]].0 += y;
        groups[a.of[k]].1 += 1.0;
    }
    let between: f64 = groups
        .iter()
        .filter(|g| g.1 > 0.0)
        .map(|(s, c)| c * (s / c - mean).powi(2))
        .sum();
    Some(between / total)
}

/// The groups of one parameter: its values in order, or four ranges of a numeric parameter
/// with many values; `None` when it has one value or too many non-numeric ones.
fn axis(key: &str, trials: &[(&TrialRow, f64)]) -> Option<Axis> {
    let values: Vec<Option<&Value>> = trials.iter().map(|t| t.0.varied.get(key)).collect();
    let numbers: Option<Vec<f64>> = values.iter().map(|v| v.and_then(Value::as_f64)).collect();
    let mut distinct: Vec<String> = values.iter().map(|v| text(*v)).collect();
    match &numbers {
        Some(n) => {
            let mut pairs: Vec<(f64, String)> = n.iter().copied().zip(distinct.clone()).collect();
            pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
            pairs.dedup_by(|a, b| a.1 == b.1);
            distinct = pairs.into_iter().map(|p| p.1).collect();
        }
        None => {
            distinct.sort();
            distinct.dedup();
        }
    }
    if distinct.len() < 2 {
        return None;
    }
    if distinct.len() <= MAX_LEVELS {
        let of = values
            .iter()
            .map(|v| distinct.iter().position(|d| *d == text(*v)).unwrap_or(0))
            .collect();
        return Some(Axis {
            key: key.into(),
            levels: distinct,
            of,
            binned: false,
        });
    }
    numbers.map(|n| binned(key, &n))
}

/// Four ranges holding about a quarter of the trials each.
fn binned(key: &str, n: &[f64]) -> Axis {
    let mut sorted = n.to_vec();
    sorted.sort_by(f64::total_cmp);
    let edge = |q: usize| sorted[(q * (sorted.len() - 1)) / BINS];
    let edges: Vec<f64> = (0..=BINS).map(edge).collect();
    let of = n
        .iter()
        .map(|v| edges[1..BINS].iter().filter(|e| v > *e).count())
        .collect();
    let short = |v: f64| metric_text("", Some(v));
    Axis {
        key: key.into(),
        levels: (0..BINS)
            .map(|b| format!("{}–{}", short(edges[b]), short(edges[b + 1])))
            .collect(),
        of,
        binned: true,
    }
}

fn text(v: Option<&Value>) -> String {
    v.map_or_else(|| "–".into(), crate::trial::value_text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn axis_of(levels: &[&str], of: &[usize]) -> Axis {
        Axis {
            key: "k".into(),
            levels: levels.iter().map(|s| (*s).into()).collect(),
            of: of.to_vec(),
            binned: false,
        }
    }

    #[test]
    fn a_parameter_that_decides_everything_explains_all_and_one_that_does_not_nothing() {
        // y = 10·a + 0·b over a 2×2 grid.
        let ys = [0.0, 0.0, 10.0, 10.0];
        let a = axis_of(&["lo", "hi"], &[0, 0, 1, 1]);
        let b = axis_of(&["x", "y"], &[0, 1, 0, 1]);
        assert!((explained(&a, &ys).unwrap() - 1.0).abs() < 1e-12);
        assert!(explained(&b, &ys).unwrap().abs() < 1e-12);
        assert_eq!(explained(&a, &[1.0; 4]), None);
        // Additive effects split the variance by their squares: 3² : 1².
        let ys = [0.0, 1.0, 3.0, 4.0];
        let (sa, sb) = (explained(&a, &ys).unwrap(), explained(&b, &ys).unwrap());
        assert!((sa / sb - 9.0).abs() < 1e-9, "{sa} {sb}");
        assert!((sa + sb - 1.0).abs() < 1e-12);
    }

    #[test]
    fn many_numeric_values_fall_into_four_ranges_of_equal_counts() {
        let n: Vec<f64> = (1..=20).map(f64::from).collect();
        let a = binned("lr", &n);
        assert_eq!(a.levels.len(), BINS);
        for b in 0..BINS {
            assert_eq!(a.of.iter().filter(|g| **g == b).count(), 5, "{:?}", a.of);
        }
    }
}
