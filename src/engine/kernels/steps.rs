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

impl Step {
    /// Whether the update reads and writes its first moment `m` and its second `v` (unused
    /// ones may be empty slices).
    pub fn moments(&self) -> (bool, bool) {
        match *self {
            Step::Adam(_) | Step::Radam { .. } => (true, true),
            Step::Sgd { momentum, .. } => (momentum > 0.0, false),
            Step::Rmsprop { momentum, .. } => (momentum > 0.0, true),
        }
    }
}

fn sgd_plain(p: &mut [f32], g: &[f32], lr: f32) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the feature was just detected.
        return unsafe { sgd_plain_512(p, g, lr) };
    }
    sgd_plain_body(p, g, lr);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn sgd_plain_512(p: &mut [f32], g: &[f32], lr: f32) {
    sgd_plain_body(p, g, lr);
}

#[inline(always)]
fn sgd_plain_body(p: &mut [f32], g: &[f32], lr: f32) {
    for (p, &g) in p.iter_mut().zip(g) {
        *p -= g * lr;
    }
}

/// Updates `p` (and the moments `m`, `v` it uses, see [`Step::moments`]) in place from the
/// gradient `g`. The moments start at zero, which gives the same first step as starting
/// without them.
pub fn step(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], s: &Step) {
    let (uses_m, uses_v) = s.moments();
    assert!(g.len() == p.len());
    assert!((!uses_m || m.len() == p.len()) && (!uses_v || v.len() == p.len()));
    match *s {
        Step::Adam(a) => adam_step(p, g, m, v, &a),
        Step::Sgd {
            lr,
            wd,
            momentum,
            nesterov,
        } if momentum > 0.0 => {
            for ((p, &g), m) in p.iter_mut().zip(g).zip(m.iter_mut()) {
                let g = if wd > 0.0 { g + *p * wd } else { g };
                *m = *m * momentum + g;
                let d = if nesterov { g + *m * momentum } else { *m };
                *p -= d * lr;
            }
        }
        // Without momentum, loops with no branch inside (they vectorise).
        Step::Sgd { lr, wd, .. } if wd > 0.0 => {
            for (p, &g) in p.iter_mut().zip(g) {
                *p -= (g + *p * wd) * lr;
            }
        }
        Step::Sgd { lr, .. } => sgd_plain(p, g, lr),
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
