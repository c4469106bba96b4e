//! The fully connected layer `y = x·W + b` (`x [n×i]`, `W [i×o]` as burn stores it) and its
//! gradients, as `gemm` calls with the layouts `gemm` runs fastest for these shapes.
//!
//! burn's generic linear backward copies `xᵀ` (25 MB per step for a batch of 8,000 images) and
//! multiplies by a strided `Wᵀ`; here `xᵀ` is read in place, `Wᵀ` is made contiguous (75 against
//! 109 GFLOP/s for the MLP's second layer), and a narrow weight gradient (o < 16, the output
//! layers) is computed as `dWᵀ = gᵀ·x` (106 against 60 GFLOP/s for 256 → 10), all measured on
//! one AVX-512 core with gemm 0.19.

use super::matmul::{gemm, plain, product, product_into, transpose};
use super::{assume_written, filled};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// The transpose of a row-major `rows × cols` matrix, in 16 × 16 tiles (a plain double loop
/// writes every value to another cache line: 5% of an MLP step).
fn transposed(s: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    filled(s.len(), |out| transposed_into(s, rows, cols, out))
}

/// [`transposed`] into `out` (rows·cols values, each written).
fn transposed_into(s: &[f32], rows: usize, cols: usize, out: &mut [MaybeUninit<f32>]) {
    const TILE: usize = 16;
    assert_eq!(s.len(), rows * cols);
    assert_eq!(out.len(), s.len());
    for r0 in (0..rows).step_by(TILE) {
        for c0 in (0..cols).step_by(TILE) {
            for r in r0..(r0 + TILE).min(rows) {
                for c in c0..(c0 + TILE).min(cols) {
                    out[c * rows + r].write(s[r * cols + c]);
                }
            }
        }
    }
}

/// The bias gradient: the column sums of `g [n×o]`, row after row.
fn bias_gradient(g: &[f32], o: usize) -> Vec<f32> {
    let mut db = vec![0f32; o];
    for row in g.chunks(o) {
        db.iter_mut().zip(row).for_each(|(d, v)| *d += v);
    }
    db
}

/// `x [n×i] · w [i×o] + bias [o]` → `[n×o]`.
pub fn linear_forward(x: &[f32], w: &[f32], bias: Option<&[f32]>, i: usize, o: usize) -> Vec<f32> {
    filled(x.len() / i * o, |y| {
        linear_forward_into(x, w, bias, i, o, y);
    })
}

/// [`linear_forward`] into `y` (`n · o` values, each written).
pub fn linear_forward_into(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    i: usize,
    o: usize,
    y: &mut [MaybeUninit<f32>],
) {
    assert_eq!(w.len(), i * o);
    let n = x.len() / i;
    let Some(b) = bias else {
        return product_into(y, n, o, i, plain(x, i), plain(w, o));
    };
    assert_eq!(b.len(), o);
    assert_eq!(y.len(), n * o);
    for row in y.chunks_mut(o) {
        row.iter_mut().zip(b).for_each(|(v, &b)| _ = v.write(b));
    }
    // SAFETY: every row was set to the bias just above.
    let y = unsafe { assume_written(y) };
    gemm(y, n, o, i, plain(x, i), plain(w, o), true);
}

/// Gradients of [`linear_forward`] given `g [n×o]`: `(dx [n×i] if asked, dW [i×o], db [o])`.
pub fn linear_backward(
    x: &[f32],
    w: &[f32],
    g: &[f32],
    i: usize,
    o: usize,
    want_dx: bool,
) -> (Option<Vec<f32>>, Vec<f32>, Vec<f32>) {
    let n = x.len() / i;
    let dx = want_dx.then(|| filled(n * i, |dx| input_gradient_into(w, g, i, o, dx)));
    let mut db = vec![];
    let dw = filled(i * o, |dw| db = weight_gradients_into(x, g, i, o, dw));
    (dx, dw, db)
}

/// The input gradient of [`linear_forward`] given `g [n×o]`, into `dx` (`n · i` values).
pub fn input_gradient_into(w: &[f32], g: &[f32], i: usize, o: usize, dx: &mut [MaybeUninit<f32>]) {
    assert_eq!(w.len(), i * o);
    let n = g.len() / o;
    product_into(dx, n, i, o, plain(g, o), plain(&transposed(w, i, o), i));
}

/// The weight gradient of [`linear_forward`] given `g [n×o]`, into `dw` (`i · o` values);
/// returns the bias gradient.
pub fn weight_gradients_into(
    x: &[f32],
    g: &[f32],
    i: usize,
    o: usize,
    dw: &mut [MaybeUninit<f32>],
) -> Vec<f32> {
    let n = x.len() / i;
    assert!(g.len() == n * o && dw.len() == i * o);
    if o < 16 {
        let dwt = product(o, i, n, transpose(g, o), plain(x, i));
        transposed_into(&dwt, o, i, dw);
    } else {
        product_into(dw, i, o, n, transpose(x, i), plain(g, o));
    }
    bias_gradient(g, o)
}

/// Sampled rows per block of [`linear_rows_forward`] and [`linear_rows_backward`]: 64 MNIST
/// rows (200 KB) stay in L2 between the copy and the product. Fixed, so the sums do not depend
/// on the thread count.
const ROWS: usize = 64;

/// Rows `idx` of `data` (rows of `i` values) copied into `buf`.
fn gather_rows(data: &[f32], idx: &[usize], i: usize, buf: &mut Vec<f32>) {
    buf.clear();
    for &r in idx {
        buf.extend_from_slice(&data[r * i..(r + 1) * i]);
    }
}

/// [`linear_forward`] of the rows `idx` of `data` (`[rows × i]`) without building the batch:
/// blocks of [`ROWS`] rows are copied and multiplied while they sit in cache, in parallel. For
/// a narrow layer (a linear classifier on a batch of 8,000 images) this reads the images once
/// instead of copying them out and reading the copy.
pub fn linear_rows_forward(
    data: &[f32],
    idx: &[usize],
    w: &[f32],
    bias: &[f32],
    i: usize,
    o: usize,
) -> Vec<f32> {
    assert!(w.len() == i * o && bias.len() == o);
    let mut y = vec![0f32; idx.len() * o];
    y.par_chunks_mut(ROWS * o)
        .zip(idx.par_chunks(ROWS))
        .for_each_init(Vec::new, |buf, (y, idx)| {
            gather_rows(data, idx, i, buf);
            y.chunks_mut(o).for_each(|row| row.copy_from_slice(bias));
            gemm(y, idx.len(), o, i, plain(buf, i), plain(w, o), true);
        });
    y
}

/// Weight and bias gradients of [`linear_rows_forward`] given `g [n×o]`, block by block, as
/// `dWᵀ` (o × i) partials summed in a fixed order.
pub fn linear_rows_backward(
    data: &[f32],
    idx: &[usize],
    g: &[f32],
    i: usize,
    o: usize,
) -> (Vec<f32>, Vec<f32>) {
    assert_eq!(g.len(), idx.len() * o);
    // Tasks of 8 blocks, each summing its blocks into one partial.
    let parts: Vec<Vec<f32>> = g
        .par_chunks(8 * ROWS * o)
        .zip(idx.par_chunks(8 * ROWS))
        .map_init(Vec::new, |buf, (g, idx)| {
            let mut dwt = vec![0f32; o * i];
            for (g, idx) in g.chunks(ROWS * o).zip(idx.chunks(ROWS)) {
                gather_rows(data, idx, i, buf);
                gemm(
                    &mut dwt,
                    o,
                    i,
                    idx.len(),
                    transpose(g, o),
                    plain(buf, i),
                    true,
                );
            }
            dwt
        })
        .collect();
    let mut dwt = vec![0f32; o * i];
    for part in &parts {
        dwt.iter_mut().zip(part).for_each(|(a, b)| *a += b);
    }
    (transposed(&dwt, o, i), bias_gradient(g, o))
}

#[cfg(test)]
mod tests {
    use super::super::values;
    use super::*;

    fn reference(x: &[f32], w: &[f32], b: &[f32], i: usize, o: usize) -> Vec<f64> {
        let n = x.len() / i;
        let mut y = vec![0f64; n * o];
        for r in 0..n {
            for c in 0..o {
                y[r * o + c] = f64::from(b[c])
                    + (0..i)
                        .map(|k| f64::from(x[r * i + k]) * f64::from(w[k * o + c]))
                        .sum::<f64>();
            }
        }
        y
    }

    fn close(a: &[f32], b: &[f64]) {
        assert_eq!(a.len(), b.len());
        for (k, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (f64::from(*x) - y).abs() <= 1e-3 * (1.0 + y.abs()),
                "at {k}: {x} vs {y}"
            );
        }
    }

    /// Gathering rows inside the kernels gives the numbers of gathering them first (rows
    /// repeated and out of order, a batch larger than one block and not a multiple of it).
    #[test]
    fn sampled_rows_match_the_gathered_batch() {
        let (rows, i, o) = (50, 30, 10);
        let data = values(rows * i, 21);
        let (w, b) = (values(i * o, 22), values(o, 23));
        let idx: Vec<usize> = (0..150).map(|k| (k * 37 + 11) % rows).collect();
        let g = values(idx.len() * o, 24);
        let mut x = vec![];
        gather_rows(&data, &idx, i, &mut x);
        let y = linear_rows_forward(&data, &idx, &w, &b, i, o);
        close(&y, &reference(&x, &w, &b, i, o));
        let (_, dw_want, db_want) = linear_backward(&x, &w, &g, i, o, false);
        let (dw, db) = linear_rows_backward(&data, &idx, &g, i, o);
        let wide = |v: &[f32]| v.iter().map(|&a| f64::from(a)).collect::<Vec<_>>();
        close(&dw, &wide(&dw_want));
        close(&db, &wide(&db_want));
    }

    #[test]
    fn transposed_swaps_rows_and_columns() {
        for (rows, cols) in [(1, 1), (3, 40), (17, 33), (512, 10)] {
            let s = values(rows * cols, 5);
            let t = transposed(&s, rows, cols);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(t[c * rows + r], s[r * cols + c]);
                }
            }
        }
    }

    /// Forward against the definition; gradients against the definition's derivatives, for a
    /// narrow layer (o < 16, the transposed weight gradient) and a wide one, small and above
    /// the threshold where `gemm` uses threads.
    #[test]
    fn forward_and_gradients_match_the_definition() {
        for (n, i, o) in [(3, 5, 4), (7, 6, 20), (300, 200, 10), (64, 300, 300)] {
            let (x, w, b, g) = (
                values(n * i, 1),
                values(i * o, 2),
                values(o, 3),
                values(n * o, 4),
            );
            close(
                &linear_forward(&x, &w, Some(&b), i, o),
                &reference(&x, &w, &b, i, o),
            );
            let (dx, dw, db) = linear_backward(&x, &w, &g, i, o, true);
            let dot = |a: &[f32], s: usize, b: &[f32], t: usize, len: usize| -> f64 {
                (0..len)
                    .map(|k| f64::from(a[k * s]) * f64::from(b[k * t]))
                    .sum()
            };
            let want_dx: Vec<f64> = (0..n * i)
                .map(|p| dot(&g[p / i * o..], 1, &w[p % i * o..], 1, o))
                .collect();
            let want_dw: Vec<f64> = (0..i * o)
                .map(|p| dot(&x[p / o..], i, &g[p % o..], o, n))
                .collect();
            let want_db: Vec<f64> = (0..o)
                .map(|c| dot(&g[c..], o, &vec![1.0; n], 1, n))
                .collect();
            close(&dx.unwrap(), &want_dx);
            close(&dw, &want_dw);
            close(&db, &want_db);
            let (none, dw2, _) = linear_backward(&x, &w, &g, i, o, false);
            assert!(none.is_none());
            assert_eq!(dw, dw2);
        }
    }
}
