//! Learning curves: the per-epoch values (loss, accuracy on each split), the loss of every step
//! when trials log steps, and a program's metrics per epoch or step. One line per trial; with
//! `seeds`, one line per setting: the mean over its seeds, in a band from their lowest to their
//! highest value.

use super::super::svg::{LineChart, Series};
use super::super::{Block, Loaded, TrialRow, metric_of};
use super::{MAX_CURVES, best_of, by_setting, shown_metrics};
use crate::format::mean_std;
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

/// The trials drawn as one line: a trial alone, or the seeds of one setting.
struct Setting<'a> {
    label: String,
    trials: Vec<&'a TrialRow>,
}

/// The curves heading, one chart per measured epoch value, and the step-loss chart; in a large
/// sweep, of its best trials (or settings) only.
pub fn section(l: &Loaded, order: &[&TrialRow]) -> Vec<Block> {
    let mut b = vec![Block::Heading(2, "Learning curves".into())];
    let (shown, note) = settings(l, order);
    b.extend(note);
    b.extend(band_note(&shown));
    for (stem, label, f) in CURVES {
        let series = series_of(&shown, |r| {
            r.result
                .epochs
                .iter()
                .filter_map(|e| f(e).map(|v| (e.epoch as f64, v)))
                .collect()
        });
        b.extend(curve_plot(format!("curve-{stem}"), "epoch", label, series));
    }
    b.extend(step_losses(&shown));
    b.extend(program_curves(l, &shown));
    b
}

/// What the charts draw: every trial, or with a `seed` axis every setting (its seeds together),
/// in plan order; the best `MAX_CURVES` of them (settings by their mean) and the sentence saying
/// so when there are more.
fn settings<'a>(l: &'a Loaded, order: &[&'a TrialRow]) -> (Vec<Setting<'a>>, Option<Block>) {
    if !l.axes.iter().any(|a| a == "seed") {
        let (shown, note) = if l.rows.len() > MAX_CURVES {
            best_of(order, MAX_CURVES, "Curves")
        } else {
            (l.rows.iter().collect(), None)
        };
        let alone = |r: &'a TrialRow| Setting {
            label: r.name.clone(),
            trials: vec![r],
        };
        return (shown.into_iter().map(alone).collect(), note);
    }
    let mut groups: Vec<Setting> = by_setting(l)
        .into_iter()
        .map(|(_, trials)| Setting {
            label: without_seed(trials[0]),
            trials,
        })
        .collect();
    let total = groups.len();
    let note = (total > MAX_CURVES).then(|| {
        let mean = |s: &Setting| {
            let v: Vec<f64> = s.trials.iter().filter_map(|r| metric_of(r, &l.options)).collect();
            if v.is_empty() { f64::NEG_INFINITY } else { mean_std(&v).0 }
        };
        groups.sort_by(|a, c| mean(c).total_cmp(&mean(a)));
        groups.truncate(MAX_CURVES);
        Block::Para(format!(
            "Curves: the best {MAX_CURVES} of {total} settings by their mean over seeds; every trial is in summary.csv."
        ))
    });
    (groups, note)
}

/// A trial's name without its `seed=…` part: the name of its setting.
fn without_seed(r: &TrialRow) -> String {
    let seed = format!("seed={}", r.varied_text("seed"));
    let label = r
        .name
        .split(',')
        .filter(|p| *p != seed)
        .collect::<Vec<_>>()
        .join(",");
    if label.is_empty() {
        "all".into()
    } else {
        label
    }
}

/// The sentence saying what a line and its band are, when some line is the mean of seeds.
fn band_note(shown: &[Setting]) -> Option<Block> {
    let ns: Vec<usize> = shown
        .iter()
        .map(|s| s.trials.len())
        .filter(|n| *n > 1)
        .collect();
    let (lo, hi) = (*ns.iter().min()?, *ns.iter().max()?);
    let n = if lo == hi {
        format!("{hi}")
    } else {
        format!("{lo}–{hi}")
    };
    let mut text = format!(
        "With seeds, each line is the mean over a setting's {n} seeds and the shaded band spans their min–max."
    );
    if ns.len() < shown.len() {
        text += " A setting with one seed is a plain line.";
    }
    let ragged = shown.iter().any(|s| {
        let x = |r: &TrialRow| {
            let t = &r.result;
            (t.epochs.len(), t.rows.len(), t.step_losses.len())
        };
        s.trials.iter().any(|r| x(r) != x(s.trials[0]))
    });
    if ragged {
        text += " Where only some seeds reached an epoch, the mean and band are of those that did.";
    }
    Some(Block::Para(text))
}

/// One series per setting from each trial's points (a setting with nothing to draw has none).
fn series_of(shown: &[Setting], points: impl Fn(&TrialRow) -> Vec<(f64, f64)>) -> Vec<Series> {
    shown
        .iter()
        .map(|s| {
            mean_band(
                s.label.clone(),
                s.trials.iter().map(|r| points(r)).collect(),
            )
        })
        .filter(|s| !s.points.is_empty())
        .collect()
}

/// One trial's points as they are; several trials' points as their mean at each x (over the
/// trials with a finite value there), with a band from the lowest value to the highest.
fn mean_band(label: String, mut lines: Vec<Vec<(f64, f64)>>) -> Series {
    if lines.len() == 1 {
        return Series {
            label,
            points: lines.pop().unwrap_or_default(),
            errors: vec![],
            band: vec![],
        };
    }
    let mut all: Vec<(f64, f64)> = lines
        .into_iter()
        .flatten()
        .filter(|p| p.0.is_finite() && p.1.is_finite())
        .collect();
    all.sort_by(|a, c| a.0.total_cmp(&c.0));
    let (mut points, mut band) = (vec![], vec![]);
    for at in all.chunk_by(|a, c| a.0 == c.0) {
        let ys: Vec<f64> = at.iter().map(|p| p.1).collect();
        points.push((at[0].0, mean_std(&ys).0));
        let lo = ys.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = ys.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        band.push((lo, hi));
    }
    Series {
        label,
        points,
        errors: vec![],
        band,
    }
}

/// One chart per metric a program reported in more than one row, against `epoch` (or `step`,
/// or the row's position when it gave neither).
fn program_curves(l: &Loaded, shown: &[Setting]) -> Vec<Block> {
    // Rows without an epoch count steps (or nothing): the last such row names the x axis.
    let x_label = shown
        .iter()
        .flat_map(|s| &s.trials)
        .flat_map(|r| &r.result.rows)
        .rev()
        .find(|row| !row.contains_key("epoch"))
        .map_or("epoch", |row| {
            if row.contains_key("step") {
                "step"
            } else {
                "row"
            }
        });
    let mut b = vec![];
    for metric in shown_metrics(l).0 {
        let series: Vec<Series> = series_of(shown, |r| {
            r.result
                .rows
                .iter()
                .enumerate()
                .filter_map(|(i, row)| {
                    let x = row.get("epoch").or_else(|| row.get("step"));
                    let y = row.get(&metric)?;
                    Some((x.copied().unwrap_or((i + 1) as f64), *y))
                })
                .filter(|(_, y)| y.is_finite())
                .collect()
        })
        .into_iter()
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

/// The minibatch loss of every step (thinned evenly in long runs), per trial or setting.
fn step_losses(shown: &[Setting]) -> Option<Block> {
    let series = series_of(shown, |r| {
        let s = &r.result.step_losses;
        let every = s.len().div_ceil(MAX_STEP_POINTS).max(1);
        s.iter()
            .enumerate()
            .step_by(every)
            .map(|(i, v)| ((i + 1) as f64, *v))
            .collect()
    });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_average_into_a_line_with_a_min_max_band() {
        // Three seeds; the third stopped after two epochs, so epoch 3 is of two seeds.
        let s = mean_band(
            "lr=0.1".into(),
            vec![
                vec![(1.0, 1.0), (2.0, 0.5), (3.0, 0.2)],
                vec![(1.0, 2.0), (2.0, 1.0), (3.0, 0.4)],
                vec![(1.0, 3.0), (2.0, f64::NAN)],
            ],
        );
        assert_eq!(s.label, "lr=0.1");
        let xs: Vec<f64> = s.points.iter().map(|p| p.0).collect();
        assert_eq!(xs, [1.0, 2.0, 3.0]);
        let means: Vec<f64> = s.points.iter().map(|p| p.1).collect();
        for (m, want) in means.iter().zip([2.0, 0.75, 0.3]) {
            assert!((m - want).abs() < 1e-12, "{means:?}");
        }
        assert_eq!(s.band, [(1.0, 3.0), (0.5, 1.0), (0.2, 0.4)]);
    }

    #[test]
    fn one_seed_is_a_plain_line() {
        let s = mean_band("a".into(), vec![vec![(1.0, 1.0), (2.0, 0.5)]]);
        assert_eq!(s.points, [(1.0, 1.0), (2.0, 0.5)]);
        assert!(s.band.is_empty());
    }
}
