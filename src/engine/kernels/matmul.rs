//! Matrix products through the `gemm` crate, one wrapper for every kernel: operands as
//! row-major slices or their transposes, threads as burn-flex's matmul uses them (`gemm`'s own
//! split above 192³ multiply-adds), which keeps each value's sum in the same order whatever the
//! thread count.

use std::mem::MaybeUninit;

/// Multiply-adds above which `gemm` splits one product over the pool's threads (burn-flex's
/// threshold).
const PARALLEL_WORK: usize = 192 * 192 * 192;

/// A row-major `rows × cols` matrix in a slice, or its transpose.
#[derive(Clone, Copy)]
pub struct View<'a> {
    data: &'a [f32],
    rs: isize,
    cs: isize,
}

/// The row-major `rows × cols` matrix in `data`.
pub fn plain(data: &[f32], cols: usize) -> View<'_> {
    View {
        data,
        rs: cols as isize,
        cs: 1,
    }
}

/// The transpose of the row-major `rows × cols` matrix in `data` (read in place).
pub fn transpose(data: &[f32], cols: usize) -> View<'_> {
    View {
        data,
        rs: 1,
        cs: cols as isize,
    }
}

/// `dst [m×n] (row-major) = (accumulate ? dst : 0) + a [m×k] · b [k×n]`.
pub fn gemm(dst: &mut [f32], m: usize, n: usize, k: usize, a: View, b: View, accumulate: bool) {
    assert_eq!(dst.len(), m * n);
    // SAFETY: `dst` holds m·n initialised values.
    unsafe { gemm_into(dst.as_mut_ptr(), m, n, k, a, b, accumulate) }
}

/// `a [m×k] · b [k×n]` in a new row-major vector, written once by `gemm` (no zero-fill first:
/// the MLP's first weight gradient is 1.6 MB a step, zeroed on one thread).
pub fn product(m: usize, n: usize, k: usize, a: View, b: View) -> Vec<f32> {
    super::filled(m * n, |dst| product_into(dst, m, n, k, a, b))
}

/// [`product`] into `dst` (m·n values, each written): a fused group's members write their
/// slices of one tensor.
pub fn product_into(dst: &mut [MaybeUninit<f32>], m: usize, n: usize, k: usize, a: View, b: View) {
    assert_eq!(dst.len(), m * n);
    // SAFETY: with `accumulate` false, `gemm` writes each of the m·n values without reading
    // it; `dst` holds m·n values.
    unsafe { gemm_into(dst.as_mut_ptr().cast(), m, n, k, a, b, false) }
}

/// # Safety
/// `dst` must point to m·n values, initialised when `accumulate`.
unsafe fn gemm_into(
    dst: *mut f32,
    m: usize,
    n: usize,
    k: usize,
    a: View,
    b: View,
    accumulate: bool,
) {
    assert!(a.data.len() >= m * k && b.data.len() >= k * n);
    let par = if m * n * k >= PARALLEL_WORK {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the caller vouches for `dst`; the views' lengths are checked above and their
    // strides stay inside their slices.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs,
            a.rs,
            b.data.as_ptr(),
            b.cs,
            b.rs,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}
