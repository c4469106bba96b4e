//! The Adam/AdamW update as one pass over a parameter, its gradient and both moments, in place
//! and in parallel: burn's tensor ops take about twelve passes and as many new buffers, each on
//! one thread. The arithmetic and its order are those of `Optim::step`'s tensor version.

use rayon::prelude::*;

/// Values per parallel task: fixed, so the work split does not depend on the thread count
/// (each value's update is independent anyway).
const CHUNK: usize = 16 * 1024;

/// The constants of one Adam-family step, already in `f32` as burn's scalar ops convert them.
#[derive(Debug, Clone, Copy)]
pub struct AdamStep {
    /// Learning rate divided by the first moment's bias correction.
    pub lr_over_bc1: f32,
    /// Decay of the first moment.
    pub beta1: f32,
    /// Decay of the second moment.
    pub beta2: f32,
    /// `1 − β₁`, rounded from f64 as the tensor version's scalar is.
    pub c1: f32,
    /// `1 − β₂`, likewise.
    pub c2: f32,
    /// The second moment's bias correction, `1 − β₂ᵗ`.
    pub bc2: f32,
    /// Added to the denominator.
    pub eps: f32,
    /// Coupled weight decay (Adam): added to the gradient as `decay × p`; 0 when off.
    pub coupled_decay: f32,
    /// Decoupled weight decay (AdamW): the weights are first scaled by this; 1 when off.
    pub decoupled_scale: f32,
}

/// Updates `p`, `m` and `v` in place from the gradient `g` (all the same length).
pub fn adam_step(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], s: &AdamStep) {
    assert!(g.len() == p.len() && m.len() == p.len() && v.len() == p.len());
    if p.len() <= CHUNK {
        return adam_chunk(p, g, m, v, s);
    }
    p.par_chunks_mut(CHUNK)
        .zip(g.par_chunks(CHUNK))
        .zip(m.par_chunks_mut(CHUNK))
        .zip(v.par_chunks_mut(CHUNK))
        .for_each(|(((p, g), m), v)| adam_chunk(p, g, m, v, s));
}

fn adam_chunk(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], s: &AdamStep) {
    let (b1, b2, c1, c2) = (s.beta1, s.beta2, s.c1, s.c2);
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let g = if s.coupled_decay != 0.0 {
            g + *p * s.coupled_decay
        } else {
            g
        };
        let w = if s.decoupled_scale != 1.0 {
            *p * s.decoupled_scale
        } else {
            *p
        };
        *m = *m * b1 + g * c1;
        *v = *v * b2 + g * g * c2;
        let denom = (*v / s.bc2).sqrt() + s.eps;
        *p = w - *m / denom * s.lr_over_bc1;
    }
}

#[cfg(test)]
mod tests {
    use super::super::values;
    use super::*;

    fn step(decay: (f32, f32)) -> AdamStep {
        AdamStep {
            lr_over_bc1: 0.01 / 0.1,
            beta1: 0.9,
            beta2: 0.999,
            c1: 0.1,
            c2: 0.001,
            bc2: 0.001,
            eps: 1e-8,
            coupled_decay: decay.0,
            decoupled_scale: decay.1,
        }
    }

    /// The textbook update, one value at a time in f64.
    fn reference(p: f64, g: f64, m: f64, v: f64, s: &AdamStep) -> (f64, f64, f64) {
        let g = g + p * f64::from(s.coupled_decay);
        let p = p * f64::from(s.decoupled_scale);
        let m = m * f64::from(s.beta1) + g * f64::from(s.c1);
        let v = v * f64::from(s.beta2) + g * g * f64::from(s.c2);
        let d = (v / f64::from(s.bc2)).sqrt() + f64::from(s.eps);
        (p - m / d * f64::from(s.lr_over_bc1), m, v)
    }

    #[test]
    fn matches_the_textbook_update_in_serial_and_parallel_sizes() {
        for n in [1, 100, CHUNK + 7, 3 * CHUNK] {
            for decay in [(0.0, 1.0), (0.01, 1.0), (0.0, 0.999)] {
                let s = step(decay);
                let (mut p, g) = (values(n, 1), values(n, 2));
                let mut m = values(n, 3);
                let mut v: Vec<f32> = values(n, 4).iter().map(|x| x * x).collect();
                let want: Vec<_> = (0..n)
                    .map(|i| {
                        let f = |x: &[f32]| f64::from(x[i]);
                        reference(f(&p), f(&g), f(&m), f(&v), &s)
                    })
                    .collect();
                adam_step(&mut p, &g, &mut m, &mut v, &s);
                for (i, (wp, wm, wv)) in want.iter().enumerate() {
                    let close = |a: f32, b: f64| (f64::from(a) - b).abs() <= 1e-5 * (1.0 + b.abs());
                    assert!(
                        close(p[i], *wp) && close(m[i], *wm) && close(v[i], *wv),
                        "n {n} i {i}"
                    );
                }
            }
        }
    }
}
