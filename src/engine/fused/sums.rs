//! The sums of a fused group's epoch, per member, kept on the device and read back once at the
//! epoch's end: each member's loss and correct answers, and its step losses when logged.

use super::net::members_index;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

/// One epoch's sums so far, `[K]` tensors in the members' current order.
pub struct Sums<B: Backend> {
    loss: Option<Tensor<B, 1>>,
    correct: Option<Tensor<B, 1, Int>>,
    /// Each step's `[K]` losses, when a member logs them.
    steps: Vec<Tensor<B, 1>>,
    count: usize,
    /// Samples each member saw this epoch.
    pub samples: usize,
}

impl<B: Backend> Default for Sums<B> {
    fn default() -> Self {
        Sums {
            loss: None,
            correct: None,
            steps: vec![],
            count: 0,
            samples: 0,
        }
    }
}

impl<B: Backend> Sums<B> {
    /// Counts one step: each member's mean loss and correct answers on a batch of `b`.
    pub fn add(&mut self, loss: Tensor<B, 1>, correct: Tensor<B, 1, Int>, b: usize, log: bool) {
        self.count += 1;
        self.samples += b;
        if log {
            self.steps.push(loss.clone());
        }
        self.loss = Some(match self.loss.take() {
            Some(s) => s + loss,
            None => loss,
        });
        self.correct = Some(match self.correct.take() {
            Some(s) => s + correct,
            None => correct,
        });
    }

    /// Keeps the members at `keep` (positions, in order).
    pub fn keep(&mut self, keep: &[usize], device: &B::Device) {
        let ids = members_index::<B>(keep, device);
        self.loss = self.loss.take().map(|t| t.select(0, ids.clone()));
        self.correct = self.correct.take().map(|t| t.select(0, ids.clone()));
        for s in &mut self.steps {
            *s = s.clone().select(0, ids.clone());
        }
    }

    /// Each of the `k` members' mean step loss, correct answers and step losses.
    pub fn read(&self, k: usize) -> (Vec<f64>, Vec<i64>, Vec<Vec<f64>>) {
        let steps = self.count.max(1) as f64;
        let loss = match &self.loss {
            Some(t) => t
                .clone()
                .into_data()
                .iter::<f32>()
                .map(|v| f64::from(v) / steps)
                .collect(),
            None => vec![f64::NAN; k],
        };
        let correct = match &self.correct {
            Some(t) => t.clone().into_data().iter::<i64>().collect(),
            None => vec![0; k],
        };
        let mut per_member = vec![vec![]; k];
        if !self.steps.is_empty() {
            let all: Vec<f64> = Tensor::cat(self.steps.clone(), 0)
                .into_data()
                .iter::<f32>()
                .map(f64::from)
                .collect();
            for row in all.chunks(k) {
                for (m, &v) in per_member.iter_mut().zip(row) {
                    m.push(v);
                }
            }
        }
        (loss, correct, per_member)
    }
}
