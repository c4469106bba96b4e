//! Early termination as a policy over metric curves: after each epoch of a trial, `decide`
//! looks at the curves of every trial of the sweep (one value of the metric per epoch) and says
//! whether this one stops. `hyperband` stops a trial at a rung (min_epochs·eta^k) when its value
//! is outside the top 1/eta of the trials that reached that rung (asynchronous successive
//! halving: the first trials at a rung go on unless beaten); `median` stops it when its best
//! value so far is worse than the median of the others' values at that epoch. `Pruner` keeps the
//! curves: those recorded in the results directory (every process's finished trials) and those
//! of the trials running in this process.

use crate::engine::Progress;
use crate::spec::{EarlyTerminate, Goal, PruneKind};
use crate::store::{Store, SweepInfo};
use crate::trial::{EpochRow, MetricRow, Trial, TrialId, TrialResult};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One value of the metric per epoch, in epoch order: (1-based epoch, value).
pub type Curve = Vec<(usize, f64)>;

/// The curves of a sweep's trials.
pub type Curves = BTreeMap<TrialId, Curve>;

/// True when `a` is strictly better than `b`; a value that is not a number is worst.
fn better(goal: Goal, a: f64, b: f64) -> bool {
    match (a.is_nan(), b.is_nan()) {
        (true, _) => false,
        (false, true) => true,
        _ => match goal {
            Goal::Maximize => a > b,
            Goal::Minimize => a < b,
        },
    }
}

fn at(curve: &Curve, epoch: usize) -> Option<f64> {
    curve.iter().find(|(e, _)| *e == epoch).map(|(_, v)| *v)
}

/// Whether trial `id` stops after `epoch`, given every trial's curve (its own included): the
/// reason, for the trial's notes, when it does.
pub fn decide(
    rule: &EarlyTerminate,
    curves: &Curves,
    id: &TrialId,
    epoch: usize,
) -> Option<String> {
    let own = curves.get(id)?;
    let value = at(own, epoch)?;
    match rule.kind {
        PruneKind::Hyperband => hyperband(rule, curves, value, epoch),
        PruneKind::Median => median(rule, curves, id, own, epoch),
    }
}

/// True when `epoch` is a rung: min_epochs · eta^k.
fn is_rung(rule: &EarlyTerminate, epoch: usize) -> bool {
    let mut rung = rule.min_epochs;
    while rung < epoch {
        rung = rung.saturating_mul(rule.eta);
    }
    rung == epoch
}

fn hyperband(rule: &EarlyTerminate, curves: &Curves, value: f64, epoch: usize) -> Option<String> {
    if !is_rung(rule, epoch) {
        return None;
    }
    let goal = rule.goal();
    let mut rung: Vec<f64> = curves.values().filter_map(|c| at(c, epoch)).collect();
    rung.sort_by(|a, b| {
        if better(goal, *a, *b) {
            std::cmp::Ordering::Less
        } else if better(goal, *b, *a) {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }
    });
    // The top 1/eta go on; while fewer than eta trials reached the rung, only the best does.
    let keep = (rung.len() / rule.eta).max(1);
    let cutoff = rung[keep - 1];
    if !better(goal, cutoff, value) {
        return None;
    }
    Some(format!(
        "pruned at epoch {epoch} by hyperband: {} {value} is outside the top 1/{} of the {} trials at this rung (cut-off {cutoff})",
        rule.metric(),
        rule.eta,
        rung.len()
    ))
}

fn median(
    rule: &EarlyTerminate,
    curves: &Curves,
    id: &TrialId,
    own: &Curve,
    epoch: usize,
) -> Option<String> {
    if epoch < rule.min_epochs {
        return None;
    }
    let goal = rule.goal();
    let mut others: Vec<f64> = curves
        .iter()
        .filter(|(k, _)| *k != id)
        .filter_map(|(_, c)| at(c, epoch))
        .filter(|v| !v.is_nan())
        .collect();
    if others.len() < rule.min_trials {
        return None;
    }
    others.sort_by(f64::total_cmp);
    let n = others.len();
    let mid = if n % 2 == 1 {
        others[n / 2]
    } else {
        f64::midpoint(others[n / 2 - 1], others[n / 2])
    };
    let best = own
        .iter()
        .filter(|(e, _)| *e <= epoch)
        .map(|(_, v)| *v)
        .reduce(|a, b| if better(goal, b, a) { b } else { a })?;
    if !better(goal, mid, best) {
        return None;
    }
    Some(format!(
        "pruned at epoch {epoch} by the median rule: best {} {best} is worse than the median {mid} of {n} other trials at this epoch",
        rule.metric()
    ))
}

/// A built-in epoch's value of a metric, by its epochs.csv column name.
fn epoch_value(row: &EpochRow, metric: &str) -> Option<f64> {
    match metric {
        "train_loss" => Some(row.train_loss),
        "train_accuracy" => Some(row.train_accuracy),
        "val_loss" => row.val_loss,
        "val_accuracy" => row.val_accuracy,
        "test_loss" => row.test_loss,
        "test_accuracy" => row.test_accuracy,
        _ => None,
    }
}

/// A program's row: its `epoch` when it reports one, else its position (1-based) among the
/// rows that carry the metric.
fn row_point(row: &MetricRow, metric: &str, position: usize) -> Option<(usize, f64)> {
    let v = *row.get(metric)?;
    let epoch = row.get("epoch").map_or(position, |e| e.max(0.0) as usize);
    Some((epoch, v))
}

/// The curve of a stored result: its epoch rows, or a program's metric rows.
pub fn curve_of(result: &TrialResult, metric: &str) -> Curve {
    if result.rows.is_empty() {
        return result
            .epochs
            .iter()
            .filter_map(|r| epoch_value(r, metric).map(|v| (r.epoch, v)))
            .collect();
    }
    let mut curve = vec![];
    for r in &result.rows {
        if let Some(p) = row_point(r, metric, curve.len() + 1) {
            curve.push(p);
        }
    }
    curve
}

/// Rows without the rule's metric, from trials that never reported it, after which the run
/// warns that nothing is pruned: a program logs its metrics from its first epoch on, or never.
const UNREPORTED_ROWS: usize = 3;

/// The warning that the rule can never prune: `rows` rows of program trials arrived, none with
/// the rule's metric (a typo, or a metric only logged at the end), naming those they have.
fn unreported(metric: &str, rows: usize, names: &std::collections::BTreeSet<String>) -> String {
    let names: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|k| !matches!(*k, "epoch" | "step"))
        .collect();
    format!(
        "early_terminate.metric `{metric}`: none of the first {rows} rows the trials reported has it, so no trial is pruned; they report: {}",
        names.join(", ")
    )
}

/// Program rows without the rule's metric: how many, their names, the trials they came from,
/// and whether the warning was given (once a process).
#[derive(Default)]
struct Unreported {
    rows: usize,
    names: std::collections::BTreeSet<String>,
    trials: std::collections::HashSet<TrialId>,
    warned: bool,
}

/// How often the curves other processes recorded are read again.
const REFRESH: Duration = Duration::from_secs(2);

/// The early-termination policy of one process: the rule, the sweep's recorded curves (read
/// again at most every two seconds) and the curves of the trials running here.
pub struct Pruner {
    rule: EarlyTerminate,
    store: Store,
    info: SweepInfo,
    stored: Mutex<(Curves, Option<Instant>)>,
    own: Mutex<Curves>,
    /// Program rows seen without the metric while no trial reported it.
    unreported: Mutex<Unreported>,
}

impl Pruner {
    /// The policy of a recorded sweep.
    pub fn new(rule: EarlyTerminate, store: Store, info: SweepInfo) -> Pruner {
        Pruner {
            rule,
            store,
            info,
            stored: Mutex::new((Curves::new(), None)),
            own: Mutex::new(Curves::new()),
            unreported: Mutex::default(),
        }
    }

    /// The recorded curves, read again when older than `REFRESH`.
    fn stored(&self) -> Curves {
        let mut s = self.stored.lock().expect("stored curves");
        if s.1.is_none_or(|t| t.elapsed() >= REFRESH) {
            let metric = self.rule.metric();
            let (finished, _) = self.store.load_finished(&self.info);
            s.0 = finished
                .iter()
                .map(|f| (f.trial.id.clone(), curve_of(&f.result, metric)))
                .collect();
            s.1 = Some(Instant::now());
        }
        s.0.clone()
    }

    /// Counts a program row without the metric; warns once `UNREPORTED_ROWS` arrived while no
    /// trial reported the metric. A trial's first such row also counts the finished trials'
    /// rows: a short trial's rows may all arrive after it ended.
    fn without_metric(&self, trial: &TrialId, row: &MetricRow, reported_here: bool) {
        let mut u = self.unreported.lock().expect("unreported");
        if u.warned || reported_here {
            return;
        }
        u.rows += 1;
        u.names.extend(row.keys().cloned());
        if u.trials.insert(trial.clone()) {
            let (finished, _) = self.store.load_finished(&self.info);
            let metric = self.rule.metric();
            if finished
                .iter()
                .any(|f| !curve_of(&f.result, metric).is_empty())
            {
                u.warned = true;
                return;
            }
            let rows: Vec<&MetricRow> = finished.iter().flat_map(|f| &f.result.rows).collect();
            u.names.extend(rows.iter().flat_map(|r| r.keys().cloned()));
            u.rows = u.rows.max(rows.len());
        }
        if u.rows >= UNREPORTED_ROWS {
            u.warned = true;
            tracing::warn!("{}", unreported(self.rule.metric(), u.rows, &u.names));
        }
    }

    /// Records a running trial's progress and says whether it stops here (the reason). A
    /// trial's last epoch is never judged: it ends anyway.
    pub fn observe(&self, trial: &Trial, progress: &Progress) -> Option<String> {
        let metric = self.rule.metric();
        let (epoch, mine) = {
            let mut own = self.own.lock().expect("own curves");
            let curve = own.entry(trial.id.clone()).or_default();
            let point = match progress {
                Progress::Epoch(row) => epoch_value(row, metric).map(|v| (row.epoch, v)),
                Progress::Metrics(row) => row_point(row, metric, curve.len() + 1),
            };
            let Some(point) = point else {
                let reported_here = own.values().any(|c| !c.is_empty());
                drop(own);
                if let Progress::Metrics(row) = progress {
                    self.without_metric(&trial.id, row, reported_here);
                }
                return None;
            };
            // A trial trained again starts its curve again.
            curve.retain(|(e, _)| *e < point.0);
            curve.push(point);
            (point.0, own.clone())
        };
        if trial.epochs().is_some_and(|n| epoch >= n) {
            return None;
        }
        let mut curves = self.stored();
        curves.extend(mine);
        decide(&self.rule, &curves, &trial.id, epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(kind: PruneKind, min_epochs: usize, eta: usize, metric: &str) -> EarlyTerminate {
        EarlyTerminate {
            kind,
            metric: Some(metric.into()),
            min_epochs,
            eta,
            min_trials: 3,
            goal: None,
        }
    }

    /// Runs scripted curves one trial after the other (as one slot would), each epoch judged
    /// against every curve recorded so far; returns the epoch each trial stopped at.
    fn stops(rule: &EarlyTerminate, rows: &[&[f64]]) -> Vec<Option<usize>> {
        let mut curves = Curves::new();
        let mut out = vec![];
        for (i, row) in rows.iter().enumerate() {
            let id = TrialId(format!("t{i}"));
            let mut stopped = None;
            for (e, v) in row.iter().enumerate() {
                curves.entry(id.clone()).or_default().push((e + 1, *v));
                if e + 1 < row.len() && decide(rule, &curves, &id, e + 1).is_some() {
                    stopped = Some(e + 1);
                    break;
                }
            }
            out.push(stopped);
        }
        out
    }

    #[test]
    fn rungs_are_min_epochs_times_powers_of_eta() {
        let r = rule(PruneKind::Hyperband, 2, 3, "val_accuracy");
        let rungs: Vec<usize> = (1..=20).filter(|e| is_rung(&r, *e)).collect();
        assert_eq!(rungs, [2, 6, 18]);
    }

    #[test]
    fn hyperband_keeps_the_top_third_at_each_rung() {
        let r = rule(PruneKind::Hyperband, 1, 3, "val_accuracy");
        // Rungs at epochs 1, 3 and 9 of 10.
        let rows: &[&[f64]] = &[
            &[0.50, 0.60, 0.70, 0.72, 0.74, 0.76, 0.78, 0.80, 0.82, 0.84],
            &[0.40, 0.45, 0.50, 0.55, 0.60, 0.65, 0.70, 0.72, 0.74, 0.76],
            &[0.60, 0.70, 0.80, 0.81, 0.82, 0.83, 0.84, 0.85, 0.86, 0.87],
            &[0.55, 0.58, 0.61, 0.64, 0.67, 0.70, 0.73, 0.76, 0.79, 0.80],
            &[0.30, 0.35, 0.40, 0.45, 0.50, 0.55, 0.60, 0.65, 0.70, 0.75],
            &[0.65, 0.75, 0.85, 0.86, 0.87, 0.88, 0.89, 0.90, 0.91, 0.95],
        ];
        // t0 is alone at every rung; t1 is beaten by t0 at rung 1; t2 leads; t3 is second of
        // four at rung 1 (only the top 1 of 4 goes on); t4 is last; t5 is second of six at
        // rung 1 (the top 2 go on) and leads from rung 3.
        assert_eq!(
            stops(&r, rows),
            [None, Some(1), None, Some(1), Some(1), None]
        );
    }

    #[test]
    fn hyperband_on_a_loss_keeps_the_lowest() {
        let r = rule(PruneKind::Hyperband, 2, 2, "val_loss");
        let rows: &[&[f64]] = &[
            &[1.0, 0.8, 0.7, 0.6, 0.5],
            &[0.9, 0.6, 0.5, 0.4, 0.3],
            &[1.2, 1.1, 1.0, 0.9, 0.8],
            &[0.9, f64::NAN, 0.5, 0.4, 0.3],
        ];
        // Rungs at 2 and 4. t2 is the worst of three at 2; a NaN is worst of all.
        assert_eq!(stops(&r, rows), [None, None, Some(2), Some(2)]);
    }

    #[test]
    fn median_rule_waits_for_min_trials_and_compares_the_best_so_far() {
        let mut r = rule(PruneKind::Median, 2, 3, "val_accuracy");
        r.min_trials = 2;
        let rows: &[&[f64]] = &[
            &[0.5, 0.6, 0.7, 0.8],
            &[0.1, 0.2, 0.3, 0.4],
            &[0.6, 0.7, 0.8, 0.9],
            // Its best so far (0.65, epoch 1) beats the median 0.6 at epoch 2 although it fell
            // to 0.3 there; at epoch 3 the median 0.7 beats it.
            &[0.65, 0.3, 0.2, 0.1],
            &[0.2, 0.3, 0.4, 0.5],
        ];
        // t0 and t1 never meet two others; t2 beats the median (0.4) of t0 and t1; t4's best
        // 0.3 is below the median 0.45 of four others at epoch 2.
        assert_eq!(stops(&r, rows), [None, None, None, Some(3), Some(2)]);
    }

    #[test]
    fn a_metric_no_trial_reports_is_named_with_those_they_do() {
        let names = ["epoch", "loss", "acc"].map(String::from).into();
        assert_eq!(
            unreported("val_loss", 3, &names),
            "early_terminate.metric `val_loss`: none of the first 3 rows the trials reported has it, so no trial is pruned; they report: acc, loss"
        );
    }

    #[test]
    fn program_rows_use_their_epoch_or_their_position() {
        let mut r = TrialResult::default();
        let row = |pairs: &[(&str, f64)]| -> MetricRow {
            pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
        };
        r.rows = vec![
            row(&[("loss", 0.9)]),
            row(&[("loss", 0.8), ("epoch", 5.0)]),
            row(&[("acc", 0.1)]),
        ];
        assert_eq!(curve_of(&r, "loss"), [(1, 0.9), (5, 0.8)]);
    }
}
