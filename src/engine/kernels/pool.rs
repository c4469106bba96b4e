//! Max pooling (square window, stride = window) with an optional fused ReLU, and its gradient.

use rayon::prelude::*;

/// Marks an output whose gradient is zero (fused ReLU cut it to 0).
const NO_GRAD: u32 = u32::MAX;

/// The larger of two values with its index; NaN wins, the first wins ties (as PyTorch).
#[inline(always)]
fn pick(a: (f32, u32), b: (f32, u32)) -> (f32, u32) {
    if b.0 > a.0 || (b.0.is_nan() && !a.0.is_nan()) {
        b
    } else {
        a
    }
}

/// Max pooling with a square window `k` and stride `k`, no padding, floor mode, over `planes`
/// planes of `h × w`, optionally followed by ReLU (`relu`), fused so that neither pass writes a
/// tensor the other reads. Returns the output and, per output value, the offset of the chosen
/// input inside its plane (or [`NO_GRAD`] where ReLU cut the value). NaN wins, so a diverging
/// network shows NaN, as PyTorch's does.
pub fn max_pool_forward(
    x: &[f32],
    planes: usize,
    h: usize,
    w: usize,
    k: usize,
    relu: bool,
) -> (Vec<f32>, Vec<u32>) {
    let (oh, ow) = (h / k, w / k);
    assert_eq!(x.len(), planes * h * w);
    let mut out = vec![0f32; planes * oh * ow];
    let mut idx = vec![0u32; planes * oh * ow];
    let per = 64; // planes per work item
    out.par_chunks_mut(per * oh * ow)
        .zip(idx.par_chunks_mut(per * oh * ow))
        .zip(x.par_chunks(per * h * w))
        .for_each(|((out, idx), x)| {
            for ((out, idx), x) in out
                .chunks_mut(oh * ow)
                .zip(idx.chunks_mut(oh * ow))
                .zip(x.chunks(h * w))
            {
                for oy in 0..oh {
                    let out = &mut out[oy * ow..(oy + 1) * ow];
                    let idx = &mut idx[oy * ow..(oy + 1) * ow];
                    let top = oy * k * w;
                    if k == 2 && pool2_row(x, top, w, out, idx, relu) {
                        continue;
                    }
                    for (ox, (o, i)) in out.iter_mut().zip(idx.iter_mut()).enumerate() {
                        let first = top + ox * k;
                        let mut best = (x[first], first as u32);
                        for ky in 0..k {
                            let row = first + ky * w;
                            for (kx, &v) in x[row..row + k].iter().enumerate() {
                                best = pick(best, (v, (row + kx) as u32));
                            }
                        }
                        (*o, *i) = best;
                    }
                    if relu {
                        for (o, i) in out.iter_mut().zip(idx.iter_mut()) {
                            let cut = *o <= 0.0;
                            *o = if cut { 0.0 } else { *o };
                            *i = if cut { NO_GRAD } else { *i };
                        }
                    }
                }
            }
        });
    (out, idx)
}

/// One output row of a 2×2 window starting at offset `top` of a plane `w` wide, in one
/// branch-free pass that the compiler vectorises (selects, no mispredicted jumps; half the time
/// of a separate ReLU pass after an indexed loop). Returns false, leaving the row to the
/// general path, when the window rows hold a NaN (or infinities that add up to one).
fn pool2_row(
    x: &[f32],
    top: usize,
    w: usize,
    out: &mut [f32],
    idx: &mut [u32],
    relu: bool,
) -> bool {
    let ow = out.len();
    let r0 = &x[top..top + 2 * ow];
    let r1 = &x[top + w..top + w + 2 * ow];
    let (top, w) = (top as u32, w as u32);
    let mut nan = false;
    let windows = r0.chunks_exact(2).zip(r1.chunks_exact(2));
    for (ox, ((o, i), (p, q))) in out.iter_mut().zip(idx.iter_mut()).zip(windows).enumerate() {
        let (a, b, c, d) = (p[0], p[1], q[0], q[1]);
        nan |= (a + b + c + d).is_nan();
        let at = top + 2 * ox as u32;
        let (m1, i1) = if b > a { (b, at + 1) } else { (a, at) };
        let (m2, i2) = if d > c { (d, at + w + 1) } else { (c, at + w) };
        let (m, at) = if m2 > m1 { (m2, i2) } else { (m1, i1) };
        let cut = relu && m <= 0.0;
        *o = if cut { 0.0 } else { m };
        *i = if cut { NO_GRAD } else { at };
    }
    !nan
}

/// Gradient of [`max_pool_forward`]: each output gradient goes to the input it came from.
pub fn max_pool_backward(gout: &[f32], idx: &[u32], planes: usize, h: usize, w: usize) -> Vec<f32> {
    let mut dx = super::written_zeros(planes * h * w);
    if gout.is_empty() || dx.is_empty() {
        return dx;
    }
    let per_out = gout.len() / planes;
    dx.par_chunks_mut(h * w)
        .zip(gout.par_chunks(per_out))
        .zip(idx.par_chunks(per_out))
        .for_each(|((dx, g), idx)| {
            for (&g, &i) in g.iter().zip(idx) {
                if i != NO_GRAD {
                    dx[i as usize] += g;
                }
            }
        });
    dx
}

#[cfg(test)]
mod tests {
    use super::super::values;
    use super::*;

    #[test]
    fn max_pool_picks_the_maximum_and_routes_its_gradient() {
        // One 4×5 plane (last column dropped by floor mode), window 2.
        let x = [
            1.0, 5.0, 2.0, 0.0, 9.0, //
            3.0, 4.0, 8.0, 1.0, 9.0, //
            0.0, -1.0, 6.0, 6.5, 9.0, //
            -2.0, -3.0, 7.0, 2.0, 9.0,
        ];
        let (out, idx) = max_pool_forward(&x, 1, 4, 5, 2, false);
        assert_eq!(out, vec![5.0, 8.0, 0.0, 7.0]);
        assert_eq!(idx, vec![1, 7, 10, 17]);
        let dx = max_pool_backward(&[1.0, 2.0, 3.0, 4.0], &idx, 1, 4, 5);
        let mut want = vec![0f32; 20];
        want[1] = 1.0;
        want[7] = 2.0;
        want[10] = 3.0;
        want[17] = 4.0;
        assert_eq!(dx, want);
        let (out, _) = max_pool_forward(&[1.0, f32::NAN, 3.0, 2.0], 1, 2, 2, 2, false);
        assert!(out[0].is_nan());
    }

    /// Both code paths (k = 2 and general k), with and without the fused ReLU, against the
    /// definition; the gradient reaches exactly the chosen inputs of positive outputs.
    #[test]
    fn max_pool_matches_the_definition_with_and_without_relu() {
        let (planes, h, w) = (3, 7, 9);
        let x = values(planes * h * w, 11);
        for k in [2, 3] {
            for relu in [false, true] {
                let (oh, ow) = (h / k, w / k);
                let (out, idx) = max_pool_forward(&x, planes, h, w, k, relu);
                let g = values(out.len(), 12);
                let dx = max_pool_backward(&g, &idx, planes, h, w);
                let mut want_dx = vec![0f32; x.len()];
                for p in 0..planes {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let mut best = (f32::NEG_INFINITY, 0);
                            for ky in 0..k {
                                for kx in 0..k {
                                    let i = (oy * k + ky) * w + ox * k + kx;
                                    if x[p * h * w + i] > best.0 {
                                        best = (x[p * h * w + i], i);
                                    }
                                }
                            }
                            let o = (p * oh + oy) * ow + ox;
                            let want = if relu { best.0.max(0.0) } else { best.0 };
                            assert_eq!(out[o], want, "k {k} relu {relu} at {o}");
                            if !relu || best.0 > 0.0 {
                                want_dx[p * h * w + best.1] += g[o];
                            }
                        }
                    }
                }
                assert_eq!(dx, want_dx, "k {k} relu {relu}");
            }
        }
    }
}
