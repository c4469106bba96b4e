//! Learning-rate schedules, stepped once per epoch (PyTorch's LambdaLR-style closed forms).

use crate::config::{ScheduleConfig, ScheduleKind};
use std::f64::consts::PI;

/// The learning rate used during `epoch` (0-based) of `epochs`.
pub fn lr_at(base: f64, s: &ScheduleConfig, epoch: usize, epochs: usize) -> f64 {
    let cosine = |e: usize, span: usize| {
        let span = span.max(1) as f64;
        s.min_lr + (base - s.min_lr) * (1.0 + (PI * e as f64 / span).cos()) / 2.0
    };
    match s.kind {
        ScheduleKind::None => base,
        ScheduleKind::Cosine => cosine(epoch, epochs),
        ScheduleKind::WarmupCosine => {
            let w = s.warmup_epochs.min(epochs.saturating_sub(1));
            if epoch < w {
                base * (s.start_factor + (1.0 - s.start_factor) * epoch as f64 / w as f64)
            } else {
                cosine(epoch - w, epochs - w)
            }
        }
        ScheduleKind::Exponential => base * s.gamma.powi(epoch as i32),
        ScheduleKind::Step => base * s.gamma.powi((epoch / s.step_size.max(1)) as i32),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(kind: ScheduleKind) -> ScheduleConfig {
        ScheduleConfig {
            kind,
            min_lr: 1e-5,
            warmup_epochs: 5,
            start_factor: 1.0 / 3.0,
            gamma: 0.9,
            step_size: 2,
        }
    }

    #[test]
    fn hand_computed_values() {
        let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        close(lr_at(0.1, &sched(ScheduleKind::None), 7, 10), 0.1);
        // cosine: epoch 0 is the base, epoch T/2 the midpoint, approaching min_lr.
        close(lr_at(0.1, &sched(ScheduleKind::Cosine), 0, 10), 0.1);
        close(
            lr_at(0.1, &sched(ScheduleKind::Cosine), 5, 10),
            1e-5 + (0.1 - 1e-5) / 2.0,
        );
        // warmup: 0.1/3 at epoch 0, linear to 0.1 at epoch 5, then cosine over the rest.
        let w = sched(ScheduleKind::WarmupCosine);
        close(lr_at(0.1, &w, 0, 50), 0.1 / 3.0);
        close(lr_at(0.1, &w, 1, 50), 0.1 * (1.0 / 3.0 + (2.0 / 3.0) / 5.0));
        close(lr_at(0.1, &w, 5, 50), 0.1);
        close(
            lr_at(0.1, &sched(ScheduleKind::Exponential), 2, 5),
            0.1 * 0.81,
        );
        close(lr_at(0.1, &sched(ScheduleKind::Step), 3, 10), 0.1 * 0.9);
        close(lr_at(0.1, &sched(ScheduleKind::Step), 4, 10), 0.1 * 0.81);
    }
}
