//! Every optimizer's update (sgd, adam, radam, rmsprop) as one pass over a parameter, its
//! gradient and its moments, in place: a fused group's members on CPU each update their slice
//! of the stacked weights with their own constants, in the order of `Optim::step`'s tensor
//! arithmetic (burn's scalar ops take their scalars as `f32`).

use super::adam::{AdamStep, adam_step};

/// One update's constants for one member, in `f32`.
#[derive(Debug, Clone, Copy)]
pub enum Step {
    /// Adam or AdamW, through [`adam_step`].
    Adam(AdamStep),
    /// SGD: `g += wd·p`; with momentum `b = b·μ + g` (the step is `g + μ·b` with Nesterov,
    /// else `b`); `p -= lr·step`.
    Sgd {
        /// Learning rate.
        lr: f32,
        /// Weight decay (L2), 0 when off.
        wd: f32,
        /// Momentum, 0 when off.
        momentum: f32,
        /// Nesterov momentum.
        nesterov: bool,
    },
    /// RAdam: `p ·= scale`; the moments; then `p -= m / (√v + eps) · rect` once rectified,
    /// `p -= m · plain` before.
    Radam {
        /// Decoupled decay's factor, 1 when off.
        scale: f32,
        /// β₁ and 1 − β₁.
        b1: (f32, f32),
        /// β₂ and 1 − β₂.
        b2: (f32, f32),
        /// Added to the denominator.
        eps: f32,
        /// The rectified step's factor, or the plain one's.
        rectified: Option<f32>,
        /// The unrectified step's factor.
        plain: Option<f32>,
    },
    /// RMSprop: `g += wd·p`; `v = v·α + g²·(1 − α)`; `s = g / (√v + eps)`; with momentum
    /// `b = b·μ + s`; `p -= lr·b` (or `lr·s`).
    Rmsprop {
        /// Learning rate.
        lr: f32,
        /// Weight decay (L2), 0 when off.
        wd: f32,
        /// α and 1 − α.
        alpha: (f32, f32),
        /// Added to the denominator.
        eps: f32,
        /// Momentum, 0 when off.
        momentum: f32,
    },
}

/// Updates `p` (and the moments `m`, `v` it uses) in place from the gradient `g`. The moments
/// start at zero, which gives the same first step as starting without them.
pub fn step(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], s: &Step) {
    assert!(g.len() == p.len() && m.len() == p.len() && v.len() == p.len());
    match *s {
        Step::Adam(a) => adam_step(p, g, m, v, &a),
        Step::Sgd {
            lr,
            wd,
            momentum,
            nesterov,
        } => {
            for ((p, &g), m) in p.iter_mut().zip(g).zip(m.iter_mut()) {
                let g = if wd > 0.0 { g + *p * wd } else { g };
                let d = if momentum > 0.0 {
                    *m = *m * momentum + g;
                    if nesterov { g + *m * momentum } else { *m }
                } else {
                    g
                };
                *p -= d * lr;
            }
        }
        Step::Radam {
            scale,
            b1,
            b2,
            eps,
            rectified,
            plain,
        } => {
            for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                if scale != 1.0 {
                    *p *= scale;
                }
                *m = *m * b1.0 + g * b1.1;
                *v = *v * b2.0 + g * g * b2.1;
                if let Some(f) = rectified {
                    *p -= *m / (v.sqrt() + eps) * f;
                }
                if let Some(f) = plain {
                    *p -= *m * f;
                }
            }
        }
        Step::Rmsprop {
            lr,
            wd,
            alpha,
            eps,
            momentum,
        } => {
            for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                let g = if wd > 0.0 { g + *p * wd } else { g };
                *v = *v * alpha.0 + g * g * alpha.1;
                let s = g / (v.sqrt() + eps);
                let d = if momentum > 0.0 {
                    *m = *m * momentum + s;
                    *m
                } else {
                    s
                };
                *p -= d * lr;
            }
        }
    }
}
