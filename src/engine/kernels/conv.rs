//! Stride-1 convolution as im2col plus `gemm` calls per sample, and its backward pass.

use super::matmul::{gemm, plain, transpose};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Samples per parallel work item.
const CHUNK: usize = 8;

/// Shapes of one stride-1, dilation-1, single-group convolution with symmetric zero padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvDims {
    /// Samples.
    pub n: usize,
    /// Input channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub o: usize,
    /// Kernel side.
    pub k: usize,
    /// Zero padding on each side.
    pub pad: usize,
}

impl ConvDims {
    /// Output height.
    pub fn oh(&self) -> usize {
        self.h + 2 * self.pad + 1 - self.k
    }
    /// Output width.
    pub fn ow(&self) -> usize {
        self.w + 2 * self.pad + 1 - self.k
    }
    /// Rows of the im2col matrix.
    fn kk(&self) -> usize {
        self.c * self.k * self.k
    }
    /// Columns of the im2col matrix (output pixels).
    pub fn p(&self) -> usize {
        self.oh() * self.ow()
    }
    /// Values of one sample's input.
    pub fn in_len(&self) -> usize {
        self.c * self.h * self.w
    }
    /// The output columns `ox0..ox1` whose input column `ox + kx − pad` lies inside `[0, w)`.
    fn valid_cols(&self, kx: usize) -> (usize, usize) {
        let ox0 = self.pad.saturating_sub(kx);
        let ox1 = (self.w + self.pad).saturating_sub(kx).min(self.ow());
        (ox0, ox1)
    }
}

/// `col[(ci·k + ky)·k + kx][oy·ow + ox] = x[ci][oy + ky − pad][ox + kx − pad]` (0 outside).
fn im2col(x: &[f32], d: &ConvDims, col: &mut [f32]) {
    let (oh, ow, p) = (d.oh(), d.ow(), d.p());
    for ci in 0..d.c {
        let plane = &x[ci * d.h * d.w..(ci + 1) * d.h * d.w];
        for ky in 0..d.k {
            for kx in 0..d.k {
                let row = (ci * d.k + ky) * d.k + kx;
                let dst = &mut col[row * p..(row + 1) * p];
                let (ox0, ox1) = d.valid_cols(kx);
                if ow == d.w && oh == d.h {
                    // "Same" padding: the whole row is the plane shifted by one offset, so
                    // one long copy, then zeros where the shift wrapped or left the plane,
                    // written column by column (a fill per image row is a `memset` call for
                    // at most `pad` values, 5,600 calls per sample on the S4 network).
                    shifted_copy(
                        plane,
                        dst,
                        (ky * d.w + kx) as isize - (d.pad * d.w + d.pad) as isize,
                    );
                    let z0 = ox0.min(ow);
                    for ox in (0..z0).chain(ox1.max(z0)..ow) {
                        for v in dst[ox..].iter_mut().step_by(ow) {
                            *v = 0.0;
                        }
                    }
                    continue;
                }
                for oy in 0..oh {
                    let out = &mut dst[oy * ow..(oy + 1) * ow];
                    let iy = (oy + ky) as isize - d.pad as isize;
                    if iy < 0 || iy >= d.h as isize || ox0 >= ox1 {
                        out.fill(0.0);
                        continue;
                    }
                    let src = &plane[iy as usize * d.w..(iy as usize + 1) * d.w];
                    out[..ox0].fill(0.0);
                    out[ox0..ox1].copy_from_slice(&src[ox0 + kx - d.pad..ox1 + kx - d.pad]);
                    out[ox1..].fill(0.0);
                }
            }
        }
    }
}

/// `dst[i] = src[i + shift]`, 0 where `i + shift` falls outside `src` (same lengths).
fn shifted_copy(src: &[f32], dst: &mut [f32], shift: isize) {
    let n = dst.len() as isize;
    let lo = (-shift).clamp(0, n) as usize;
    let hi = (n - shift).clamp(0, n) as usize;
    dst[..lo].fill(0.0);
    if lo < hi {
        let s = (lo as isize + shift) as usize;
        dst[lo..hi].copy_from_slice(&src[s..s + hi - lo]);
    }
    dst[hi.max(lo)..].fill(0.0);
}

/// The adjoint of [`im2col`]: adds every column entry back onto the input pixel it came from.
fn col2im_add(col: &[f32], d: &ConvDims, x: &mut [f32]) {
    let (oh, ow, p) = (d.oh(), d.ow(), d.p());
    for ci in 0..d.c {
        let plane = &mut x[ci * d.h * d.w..(ci + 1) * d.h * d.w];
        for ky in 0..d.k {
            for kx in 0..d.k {
                let row = (ci * d.k + ky) * d.k + kx;
                let src = &col[row * p..(row + 1) * p];
                let (ox0, ox1) = d.valid_cols(kx);
                if ox0 >= ox1 {
                    continue;
                }
                for oy in 0..oh {
                    let iy = (oy + ky) as isize - d.pad as isize;
                    if iy < 0 || iy >= d.h as isize {
                        continue;
                    }
                    let dst = &mut plane[iy as usize * d.w..(iy as usize + 1) * d.w];
                    let dst = &mut dst[ox0 + kx - d.pad..ox1 + kx - d.pad];
                    for (a, b) in dst.iter_mut().zip(&src[oy * ow + ox0..oy * ow + ox1]) {
                        *a += b;
                    }
                }
            }
        }
    }
}

/// Whether the forward gemm writes its output transposed (`[p × o]`, then copied into place):
/// `gemm` runs the S4 network's second convolution (kk = 400, p = 196, o = 32) at 105 GFLOP/s
/// that way against 81 writing `[o × p]`, and its first (kk = 25) slower (88 against 100);
/// measured on one AVX-512 core with gemm 0.19.
fn transposed_forward(d: &ConvDims) -> bool {
    d.kk() >= 64
}

/// Forward convolution: `x [n,c,h,w]`, `weight [o,c,k,k]`, `bias [o]` → `[n,o,oh,ow]`.
pub fn conv2d_forward(x: &[f32], weight: &[f32], bias: &[f32], d: &ConvDims) -> Vec<f32> {
    super::filled(d.n * d.o * d.p(), |out| {
        conv2d_forward_into(x, weight, bias, d, out);
    })
}

/// [`conv2d_forward`] into `out` (`n · o · oh · ow` values, each written): a fused group's
/// members write their slices of one output, with no copy after.
pub fn conv2d_forward_into(
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    d: &ConvDims,
    out: &mut [MaybeUninit<f32>],
) {
    let (kk, p, inl) = (d.kk(), d.p(), d.in_len());
    assert_eq!(x.len(), d.n * inl);
    assert_eq!(weight.len(), d.o * kk);
    assert_eq!(bias.len(), d.o);
    let out_len = d.o * p;
    assert_eq!(out.len(), d.n * out_len);
    let transposed_out = transposed_forward(d);
    out.par_chunks_mut(CHUNK * out_len)
        .zip(x.par_chunks(CHUNK * inl))
        .for_each(|(out, x)| {
            let mut col = vec![0f32; kk * p];
            let mut tmp = vec![0f32; if transposed_out { p * d.o } else { 0 }];
            for (out, x) in out.chunks_mut(out_len).zip(x.chunks(inl)) {
                im2col(x, d, &mut col);
                if transposed_out {
                    // tmp [p×o] = colᵀ [p×kk] · Wᵀ [kk×o], then out[o][j] = tmp[j][o] + b[o].
                    gemm(
                        &mut tmp,
                        p,
                        d.o,
                        kk,
                        transpose(&col, p),
                        transpose(weight, kk),
                        false,
                    );
                    for (oc, (row, &b)) in out.chunks_mut(p).zip(bias).enumerate() {
                        for (v, t) in row.iter_mut().zip(tmp[oc..].iter().step_by(d.o)) {
                            v.write(t + b);
                        }
                    }
                } else {
                    let out = fill_rows(out, bias);
                    gemm(out, d.o, p, kk, plain(weight, kk), plain(&col, p), true);
                }
            }
        });
}

/// Writes `row[r]` into every value of row `r` of `out` (rows of equal length, one per entry
/// of `row`) and returns the now initialised values.
fn fill_rows<'a>(out: &'a mut [MaybeUninit<f32>], row: &[f32]) -> &'a mut [f32] {
    let len = out.len() / row.len();
    assert_eq!(len * row.len(), out.len());
    for (r, &b) in out.chunks_mut(len).zip(row) {
        r.fill(MaybeUninit::new(b));
    }
    // SAFETY: every value was written just above.
    unsafe { super::assume_written(out) }
}

/// Gradients of [`conv2d_forward`] given the output gradient `gout [n,o,oh,ow]`:
/// `(input gradient if asked, weight gradient [o,c,k,k], bias gradient [o])`.
///
/// The weight gradient is computed transposed, `dWᵀ [kk×o] += col · gᵀ` (gemm: 109 GFLOP/s
/// against 70 for `dW [o×kk] += g · colᵀ` on S4's second convolution), with a row of ones under
/// the im2col columns so that the same product's last row is the bias gradient.
pub fn conv2d_backward(
    x: &[f32],
    weight: &[f32],
    gout: &[f32],
    d: &ConvDims,
    want_dx: bool,
) -> (Option<Vec<f32>>, Vec<f32>, Vec<f32>) {
    let mut dx = want_dx.then(|| super::written_zeros(d.n * d.in_len()));
    let (dw, db) = conv2d_backward_into(x, weight, gout, d, dx.as_deref_mut());
    (dx, dw, db)
}

/// [`conv2d_backward`] adding the input gradient into `dx` (zeros, `n · c · h · w` values) when
/// given, so that a fused group's members fill their slices of one gradient; returns the weight
/// and bias gradients.
pub fn conv2d_backward_into(
    x: &[f32],
    weight: &[f32],
    gout: &[f32],
    d: &ConvDims,
    dx: Option<&mut [f32]>,
) -> (Vec<f32>, Vec<f32>) {
    let (kk, p, inl) = (d.kk(), d.p(), d.in_len());
    let out_len = d.o * p;
    assert_eq!(x.len(), d.n * inl);
    assert_eq!(weight.len(), d.o * kk);
    assert_eq!(gout.len(), d.n * out_len);
    // One chunk of samples: adds its input gradients into `dx` and returns its partial
    // `[dWᵀ; dbᵀ]`, `(kk + 1) × o`.
    let chunk = |x: &[f32], g: &[f32], mut dx: Option<&mut [f32]>| {
        let mut dwt = vec![0f32; (kk + 1) * d.o];
        let mut col = vec![0f32; (kk + 1) * p];
        col[kk * p..].fill(1.0);
        for (s, (x, g)) in x.chunks(inl).zip(g.chunks(out_len)).enumerate() {
            im2col(x, d, &mut col[..kk * p]);
            // [dWᵀ; dbᵀ] += [col; 1] [(kk+1)×p] · gᵀ [p×o]
            gemm(
                &mut dwt,
                kk + 1,
                d.o,
                p,
                plain(&col, p),
                transpose(g, p),
                true,
            );
            if let Some(dx) = dx.as_deref_mut() {
                // gcol [kk×p] = Wᵀ [kk×o] · g [o×p]
                let gcol = &mut col[..kk * p];
                gemm(gcol, kk, p, d.o, transpose(weight, kk), plain(g, p), false);
                col2im_add(gcol, d, &mut dx[s * inl..(s + 1) * inl]);
            }
        }
        dwt
    };
    let partials: Vec<Vec<f32>> = match dx {
        Some(dx) => dx
            .par_chunks_mut(CHUNK * inl)
            .zip(x.par_chunks(CHUNK * inl))
            .zip(gout.par_chunks(CHUNK * out_len))
            .map(|((dx, x), g)| chunk(x, g, Some(dx)))
            .collect(),
        None => x
            .par_chunks(CHUNK * inl)
            .zip(gout.par_chunks(CHUNK * out_len))
            .map(|(x, g)| chunk(x, g, None))
            .collect(),
    };
    let mut dwt = vec![0f32; (kk + 1) * d.o];
    for part in &partials {
        dwt.iter_mut().zip(part).for_each(|(a, b)| *a += b);
    }
    let mut dw = vec![0f32; d.o * kk];
    for (r, row) in dwt.chunks(d.o).take(kk).enumerate() {
        for (oc, &v) in row.iter().enumerate() {
            dw[oc * kk + r] = v;
        }
    }
    let db = dwt[kk * d.o..].to_vec();
    (dw, db)
}

#[cfg(test)]
mod tests {
    use super::super::values;
    use super::*;

    /// Direct 7-loop convolution, the definition the kernels must match.
    fn conv_ref(x: &[f32], wt: &[f32], b: &[f32], d: &ConvDims) -> Vec<f32> {
        let (oh, ow) = (d.oh(), d.ow());
        let mut out = vec![0f32; d.n * d.o * oh * ow];
        for n in 0..d.n {
            for o in 0..d.o {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut s = b[o] as f64;
                        for c in 0..d.c {
                            for ky in 0..d.k {
                                for kx in 0..d.k {
                                    let iy = (oy + ky) as isize - d.pad as isize;
                                    let ix = (ox + kx) as isize - d.pad as isize;
                                    if iy < 0 || ix < 0 || iy >= d.h as isize || ix >= d.w as isize
                                    {
                                        continue;
                                    }
                                    let xv =
                                        x[((n * d.c + c) * d.h + iy as usize) * d.w + ix as usize];
                                    let wv = wt[((o * d.c + c) * d.k + ky) * d.k + kx];
                                    s += (xv * wv) as f64;
                                }
                            }
                        }
                        out[((n * d.o + o) * oh + oy) * ow + ox] = s as f32;
                    }
                }
            }
        }
        out
    }

    fn close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-3 * (1.0 + y.abs()),
                "at {i}: {x} vs {y}"
            );
        }
    }

    /// The last two have kk ≥ 64, so their forward pass takes the transposed-output path.
    const SHAPES: [ConvDims; 7] = [
        ConvDims {
            n: 2,
            c: 1,
            h: 2,
            w: 2,
            o: 2,
            k: 7,
            pad: 3,
        },
        ConvDims {
            n: 3,
            c: 2,
            h: 7,
            w: 6,
            o: 4,
            k: 3,
            pad: 1,
        },
        ConvDims {
            n: 2,
            c: 2,
            h: 4,
            w: 3,
            o: 2,
            k: 5,
            pad: 2,
        },
        ConvDims {
            n: 10,
            c: 1,
            h: 9,
            w: 9,
            o: 3,
            k: 5,
            pad: 2,
        },
        ConvDims {
            n: 2,
            c: 3,
            h: 5,
            w: 8,
            o: 2,
            k: 3,
            pad: 0,
        },
        ConvDims {
            n: 9,
            c: 4,
            h: 6,
            w: 5,
            o: 5,
            k: 5,
            pad: 2,
        },
        ConvDims {
            n: 2,
            c: 3,
            h: 7,
            w: 6,
            o: 3,
            k: 5,
            pad: 1,
        },
    ];

    #[test]
    fn forward_matches_the_definition() {
        for d in SHAPES {
            let x = values(d.n * d.c * d.h * d.w, 1);
            let wt = values(d.o * d.c * d.k * d.k, 2);
            let b = values(d.o, 3);
            close(&conv2d_forward(&x, &wt, &b, &d), &conv_ref(&x, &wt, &b, &d));
        }
    }

    /// Gradients checked as the adjoint identities of a linear map: for the loss
    /// L = Σ g ⊙ conv(x, w, b), dL/dw·δw = L(w + δw) − L(w) exactly (the map is linear in w),
    /// and likewise for x and b.
    #[test]
    fn backward_matches_the_forward_map() {
        for d in SHAPES {
            let x = values(d.n * d.c * d.h * d.w, 4);
            let wt = values(d.o * d.c * d.k * d.k, 5);
            let g = values(d.n * d.o * d.oh() * d.ow(), 7);
            let dot = |a: &[f32], b: &[f32]| -> f64 {
                a.iter()
                    .zip(b)
                    .map(|(x, y)| (*x as f64) * (*y as f64))
                    .sum()
            };
            let zero_b = vec![0f32; d.o];
            let zero_w = vec![0f32; wt.len()];
            let (dx, dw, db) = conv2d_backward(&x, &wt, &g, &d, true);
            // Linear in x (bias off): <g, conv(δx, w)> = <dx, δx>.
            let dxp = values(x.len(), 8);
            let lhs = dot(&g, &conv_ref(&dxp, &wt, &zero_b, &d));
            assert!((lhs - dot(&dx.unwrap(), &dxp)).abs() < 1e-3 * (1.0 + lhs.abs()));
            // Linear in w.
            let dwp = values(wt.len(), 9);
            let lhs = dot(&g, &conv_ref(&x, &dwp, &zero_b, &d));
            assert!((lhs - dot(&dw, &dwp)).abs() < 1e-3 * (1.0 + lhs.abs()));
            // Bias.
            let dbp = values(d.o, 10);
            let lhs = dot(&g, &conv_ref(&x, &zero_w, &dbp, &d));
            assert!((lhs - dot(&db, &dbp)).abs() < 1e-3 * (1.0 + lhs.abs()));
            let (none, dw2, _) = conv2d_backward(&x, &wt, &g, &d, false);
            assert!(none.is_none());
            assert_eq!(dw, dw2);
        }
    }
}
