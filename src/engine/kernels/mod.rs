//! CPU kernels on plain `f32` slices: the fully connected layer, the CNN's convolution and max
//! pooling (NCHW order), and the fused Adam step.
//!
//! burn-flex runs a 2-D convolution as a 3-D one (im2col tiles, permutes, copies to contiguous)
//! and its max pooling through strided 3-D iteration; on the S4 network that cost 5× PyTorch's
//! time (see `benches/RESULTS.md`). These kernels do the same arithmetic directly: im2col per
//! sample into a buffer that stays in L2, `gemm` calls per sample laid out the way `gemm` runs
//! fastest for the S4 network's shapes, the batch split into fixed chunks of samples across the
//! trial's rayon pool. Chunks are fixed in size (not in
//! number), and partial weight gradients are summed in chunk order, so the result does not
//! depend on how many threads run it.

mod adam;
mod conv;
mod linear;
mod matmul;
mod pool;
mod steps;

use std::mem::MaybeUninit;

pub use adam::{AdamStep, adam_step};
pub use conv::{
    ConvDims, conv2d_backward, conv2d_backward_into, conv2d_forward, conv2d_forward_into,
};
pub use linear::{
    input_gradient_into, linear_backward, linear_forward, linear_forward_into,
    linear_rows_backward, linear_rows_forward, weight_gradients_into,
};
pub use pool::{max_pool_backward, max_pool_forward};
pub use steps::{Step, step};

/// `n` zeros, written rather than allocated zeroed, for a buffer that is read before it is
/// written (added into). Fresh zeroed pages from the system are first mapped to its shared zero
/// page on the read, then copied on the write with a TLB shootdown on every core: in a fused
/// CNN that was a fifth of its time (`perf`: `do_wp_page` → `flush_tlb_mm_range`).
pub fn written_zeros(n: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(n);
    v.resize(n, 0.0);
    v
}

/// A vector of `len` values that `write` writes, each of them (no zero-fill first).
pub fn filled(len: usize, write: impl FnOnce(&mut [MaybeUninit<f32>])) -> Vec<f32> {
    let mut v = Vec::with_capacity(len);
    write(&mut v.spare_capacity_mut()[..len]);
    // SAFETY: `write`'s contract is to write every one of the `len` values.
    unsafe { v.set_len(len) };
    v
}

/// `values` as the `f32`s they now hold.
///
/// # Safety
/// Every value must have been written.
pub unsafe fn assume_written(values: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    // SAFETY: `MaybeUninit<f32>` has `f32`'s layout; the caller vouches that all are written.
    unsafe { &mut *(values as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

/// Deterministic test values in [-1, 1) from a seed (xorshift), shared by the kernels' tests.
#[cfg(test)]
fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s % 2000) as f32 / 1000.0 - 1.0
        })
        .collect()
}
