//! CPU kernels on plain `f32` slices: the CNN's convolution and max pooling (NCHW order), and
//! the fused Adam step.
//!
//! burn-flex runs a 2-D convolution as a 3-D one (im2col tiles, permutes, copies to contiguous)
//! and its max pooling through strided 3-D iteration; on the S4 network that cost 5× PyTorch's
//! time (see `benches/RESULTS.md`). These kernels do the same arithmetic directly: im2col per
//! sample into a buffer that stays in L2, one `gemm` call per sample, the batch split into
//! fixed chunks of samples across the trial's rayon pool. Chunks are fixed in size (not in
//! number), and partial weight gradients are summed in chunk order, so the result does not
//! depend on how many threads run it.

mod adam;
mod conv;
mod pool;

pub use adam::{AdamStep, adam_step};
pub use conv::{ConvDims, conv2d_backward, conv2d_forward};
pub use pool::{max_pool_backward, max_pool_forward};

/// Sum in 16 independent lanes, so the compiler can vectorise it (a plain `sum()` of `f32` is
/// one serial chain of additions).
fn lane_sum(v: &[f32]) -> f32 {
    let mut lanes = [0f32; 16];
    let mut chunks = v.chunks_exact(16);
    for c in &mut chunks {
        for (l, x) in lanes.iter_mut().zip(c) {
            *l += x;
        }
    }
    lanes.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_sum_adds_everything() {
        for n in [0, 1, 15, 16, 17, 100, 784] {
            let v = values(n, 13);
            let want: f64 = v.iter().map(|&x| f64::from(x)).sum();
            assert!((f64::from(lane_sum(&v)) - want).abs() < 1e-3, "n {n}");
        }
    }
}
