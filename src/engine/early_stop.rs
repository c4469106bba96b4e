//! Early stopping as a policy: it sees one validation score per epoch and says what to do
//! (keep these weights as the best, stop, or go on). It holds no weights, so it is tested on
//! plain numbers.

use crate::config::{EarlyStopping, StopMetric};

/// What the training loop should do after an epoch's validation.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Train the next epoch.
    Continue,
    /// This epoch's score is the best so far: keep its weights (if they will be restored).
    KeepBest,
    /// Stop training.
    Stop {
        /// Why, for the result's notes.
        note: String,
        /// This epoch is also the best so far (happens only with patience 0).
        keep_best: bool,
    },
}

/// The early-stopping state of one trial. It tracks the best score even when stopping is
/// disabled, since restoring the best weights needs it too.
#[derive(Debug, Clone)]
pub struct EarlyStop {
    rule: EarlyStopping,
    epochs: usize,
    best: Option<(f64, usize)>,
    patience_left: usize,
}

impl EarlyStop {
    /// A policy for a trial of `epochs` epochs.
    pub fn new(rule: &EarlyStopping, epochs: usize) -> Self {
        EarlyStop {
            rule: rule.clone(),
            epochs,
            best: None,
            patience_left: rule.patience,
        }
    }

    /// The score the policy minimises, from the epoch's validation loss and accuracy.
    pub fn score(&self, val_loss: f64, val_accuracy: f64) -> f64 {
        match self.rule.metric {
            StopMetric::ValLoss => val_loss,
            StopMetric::ValAccuracy => -val_accuracy,
        }
    }

    /// The best epoch so far (1-based), if any epoch was observed.
    pub fn best_epoch(&self) -> Option<usize> {
        self.best.map(|(_, e)| e)
    }

    /// The best (score, epoch) so far and the patience left, for a checkpoint.
    pub fn state(&self) -> (Option<(f64, usize)>, usize) {
        (self.best, self.patience_left)
    }

    /// Takes up the state a checkpoint saved.
    pub fn resume(&mut self, (best, patience_left): (Option<(f64, usize)>, usize)) {
        self.best = best;
        self.patience_left = patience_left;
    }

    /// Records `score` (lower is better) of `epoch` (1-based) and says what to do.
    pub fn observe(&mut self, score: f64, epoch: usize) -> Action {
        let improved = self.best.is_none_or(|(s, _)| score < s);
        // Patience runs out only on epochs clearly worse than the best (S1's rule): an epoch
        // within min_delta of it neither improves nor counts.
        let worse = self
            .best
            .is_some_and(|(s, _)| score > s + self.rule.min_delta);
        if improved {
            self.best = Some((score, epoch));
            self.patience_left = self.rule.patience;
        } else if worse {
            self.patience_left = self.patience_left.saturating_sub(1);
        }
        // Stopping after the last epoch would change nothing but the status.
        if self.rule.enabled && self.patience_left == 0 && epoch < self.epochs {
            let note = format!(
                "early stopping after epoch {epoch} (no improvement beyond min_delta {} for {} epochs)",
                self.rule.min_delta, self.rule.patience
            );
            return Action::Stop {
                note,
                keep_best: improved,
            };
        }
        if improved {
            Action::KeepBest
        } else {
            Action::Continue
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(patience: usize, min_delta: f64, epochs: usize) -> EarlyStop {
        let rule = EarlyStopping {
            enabled: true,
            patience,
            min_delta,
            metric: StopMetric::ValLoss,
        };
        EarlyStop::new(&rule, epochs)
    }

    /// The actions for a run of scores, epochs numbered from 1.
    fn run(p: &mut EarlyStop, scores: &[f64]) -> Vec<Action> {
        scores
            .iter()
            .enumerate()
            .map(|(i, &s)| p.observe(s, i + 1))
            .collect()
    }

    fn stops(a: &Action) -> bool {
        matches!(a, Action::Stop { .. })
    }

    #[test]
    fn first_epoch_and_every_improvement_keep_the_best() {
        let mut p = policy(3, 0.0, 10);
        let a = run(&mut p, &[1.0, 0.8, 0.9, 0.7]);
        assert_eq!(
            a,
            vec![
                Action::KeepBest,
                Action::KeepBest,
                Action::Continue,
                Action::KeepBest
            ]
        );
        assert_eq!(p.best_epoch(), Some(4));
    }

    #[test]
    fn stops_after_patience_worse_epochs_and_names_them_in_the_note() {
        let mut p = policy(2, 0.0, 10);
        let a = run(&mut p, &[1.0, 1.1, 1.2]);
        assert_eq!(a[1], Action::Continue);
        let Action::Stop { note, keep_best } = &a[2] else {
            panic!("{a:?}")
        };
        assert!(!keep_best);
        assert_eq!(
            note,
            "early stopping after epoch 3 (no improvement beyond min_delta 0 for 2 epochs)"
        );
        assert_eq!(p.best_epoch(), Some(1));
    }

    #[test]
    fn an_improvement_resets_the_patience() {
        let mut p = policy(2, 0.0, 10);
        let a = run(&mut p, &[1.0, 1.1, 0.9, 1.0, 1.0]);
        assert!(!a.iter().take(4).any(stops), "{a:?}");
        assert!(stops(&a[4]));
        assert_eq!(p.best_epoch(), Some(3));
    }

    #[test]
    fn epochs_within_min_delta_neither_improve_nor_count() {
        let mut p = policy(1, 0.1, 10);
        // 1.05 and 1.1 are not better than 1.0 but not worse than 1.0 + 0.1 either.
        let a = run(&mut p, &[1.0, 1.05, 1.1, 1.05]);
        assert_eq!(
            a[1..],
            [Action::Continue, Action::Continue, Action::Continue]
        );
        assert!(stops(&p.observe(1.2, 5)));
        assert_eq!(p.best_epoch(), Some(1));
    }

    #[test]
    fn never_stops_at_or_after_the_last_epoch() {
        let mut p = policy(1, 0.0, 3);
        let a = run(&mut p, &[1.0, 0.9, 1.5]);
        assert_eq!(a[2], Action::Continue);
        let mut p = policy(1, 0.0, 3);
        assert!(stops(&run(&mut p, &[1.0, 1.5])[1]));
    }

    #[test]
    fn disabled_tracks_the_best_but_never_stops() {
        let mut p = policy(1, 0.0, 10);
        p.rule.enabled = false;
        let a = run(&mut p, &[1.0, 2.0, 3.0, 0.5, 4.0]);
        assert!(!a.iter().any(stops), "{a:?}");
        assert_eq!(a[3], Action::KeepBest);
        assert_eq!(p.best_epoch(), Some(4));
    }

    #[test]
    fn patience_zero_stops_on_the_first_epoch_keeping_it() {
        let mut p = policy(0, 0.0, 5);
        let a = p.observe(1.0, 1);
        assert!(
            matches!(
                a,
                Action::Stop {
                    keep_best: true,
                    ..
                }
            ),
            "{a:?}"
        );
        assert_eq!(p.best_epoch(), Some(1));
    }

    #[test]
    fn accuracy_is_maximised_through_its_negative_score() {
        let rule = EarlyStopping {
            enabled: true,
            patience: 1,
            min_delta: 0.0,
            metric: StopMetric::ValAccuracy,
        };
        let mut p = EarlyStop::new(&rule, 10);
        assert_eq!(p.score(0.3, 0.9), -0.9);
        assert_eq!(p.observe(p.score(0.3, 0.9), 1), Action::KeepBest);
        assert_eq!(p.observe(p.score(0.2, 0.95), 2), Action::KeepBest);
        assert!(stops(&p.observe(p.score(0.1, 0.94), 3)));
        assert_eq!(p.best_epoch(), Some(2));
    }
}
