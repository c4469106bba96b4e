//! The convolution of the GPU backends (CUDA, wgpu): one gather of the input's windows (im2col)
//! and one batched matrix product, in burn's tensor ops, so that autodiff's backward pass is a
//! scatter-add and two matrix products.
//!
//! Why not burn's own `conv2d` there: built without burn's `autotune` feature (which stalled our
//! trials, see benches/RESULTS.md), burn-cubecl 0.21 computes a convolution's weight gradient
//! as a direct convolution of the input by the output gradient (`conv_weight_backward_fallback`):
//! one GPU thread per weight, each summing `batch × height × width` products in a row. The S4
//! CNN's first layer has 400 weights, so 400 threads each sum 470,000 products: the GPU idles,
//! and a step took ~80 ms at batch 600 on an H100, growing with the batch.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

/// The most values one gathered block of windows holds: 16 Mi `f32`, 64 MiB. wgpu refuses a
/// storage buffer over 128 MiB (lavapipe refused the 188 MB of S4's second layer at batch 600),
/// and it bounds the GPU memory a large batch takes. A larger batch is convolved in parts.
const BLOCK_VALUES: usize = 1 << 24;

/// Stride-1 convolution of `x` `[n, c, h, w]` by `weight` `[o, c, k, k]` plus `bias` `[o]`,
/// with `pad` zeros on each side.
pub fn conv2d<B: Backend>(
    x: Tensor<B, 4>,
    weight: &Tensor<B, 4>,
    bias: &Tensor<B, 1>,
    pad: usize,
) -> Tensor<B, 4> {
    in_parts(x, weight, bias, pad, BLOCK_VALUES)
}

/// [`conv2d`] over parts of the batch whose windows hold at most `block` values each.
fn in_parts<B: Backend>(
    x: Tensor<B, 4>,
    weight: &Tensor<B, 4>,
    bias: &Tensor<B, 1>,
    pad: usize,
    block: usize,
) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    let [o, _, k, _] = weight.dims();
    let positions = (h + 2 * pad + 1 - k) * (w + 2 * pad + 1 - k);
    // A sample's windows, and its share of the weight gradient's batched product.
    let per_sample = c * k * k * positions.max(o);
    let part = (block / per_sample).max(1);
    let index = window_index(h, w, k, pad);
    let len = index.len();
    let index = Tensor::from_data(TensorData::new(index, [len]), &x.device());
    let conv = |x: Tensor<B, 4>| gathered(x, weight.clone(), bias.clone(), index.clone(), pad);
    if n <= part {
        return conv(x);
    }
    let parts = (0..n).step_by(part);
    Tensor::cat(
        parts
            .map(|s| conv(x.clone().narrow(0, s, part.min(n - s))))
            .collect(),
        0,
    )
}

/// [`conv2d`] of one part of the batch, `index` from [`window_index`].
fn gathered<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Tensor<B, 1>,
    index: Tensor<B, 1, Int>,
    pad: usize,
) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    let [o, _, k, _] = weight.dims();
    let (ho, wo) = (h + 2 * pad + 1 - k, w + 2 * pad + 1 - k);
    let columns = windows(x, index, k, pad);
    let y = weight.reshape([1, o, c * k * k]).matmul(columns);
    (y + bias.reshape([1, o, 1])).reshape([n, o, ho, wo])
}

/// The windows of `x` `[n, c, h, w]` a `k × k` kernel with `pad` reads, as `[n, c·k·k, ho·wo]`:
/// row (channel, window offset), column (output position); `index` from [`window_index`].
pub fn windows<B: Backend>(
    x: Tensor<B, 4>,
    index: Tensor<B, 1, Int>,
    k: usize,
    pad: usize,
) -> Tensor<B, 3> {
    let [n, c, h, w] = x.dims();
    let (ho, wo) = (h + 2 * pad + 1 - k, w + 2 * pad + 1 - k);
    // Each image plane as a row, with one zero after it for the windows' padded positions.
    let zero = Tensor::zeros([n * c, 1], &x.device());
    let planes = Tensor::cat(vec![x.reshape([n * c, h * w]), zero], 1);
    planes.select(1, index).reshape([n, c * k * k, ho * wo])
}

/// Each of K members' convolution of its images (`x` `[K·B, c, h, w]`, member after member)
/// by its weight `w` `[K, o, c·k·k]` plus bias `b` `[K, o, 1]`: the windows gathered once and
/// one batched product per part of the batch, in parts whose windows hold at most
/// [`BLOCK_VALUES`] values.
pub fn fused_conv2d<B: Backend>(
    x: Tensor<B, 4>,
    w: Tensor<B, 3>,
    b: Tensor<B, 3>,
    kernel: usize,
    pad: usize,
) -> Tensor<B, 4> {
    let [kb, c, h, wd] = x.dims();
    let [k, o, ckk] = w.dims();
    let n = kb / k;
    let (ho, wo) = (h + 2 * pad + 1 - kernel, wd + 2 * pad + 1 - kernel);
    let per_sample = k * ckk * (ho * wo).max(o);
    let part = (BLOCK_VALUES / per_sample.max(1)).max(1);
    let index = window_index(h, wd, kernel, pad);
    let len = index.len();
    let index = Tensor::<B, 1, Int>::from_data(TensorData::new(index, [len]), &x.device());
    let x: Tensor<B, 5> = x.reshape([k, n, c, h, wd]);
    let weight = w.reshape([k, 1, o, ckk]);
    let bias = b.reshape([k, 1, o, 1]);
    let one = |x: Tensor<B, 5>| {
        let np = x.dims()[1];
        let cols = windows(x.reshape([k * np, c, h, wd]), index.clone(), kernel, pad);
        let cols: Tensor<B, 4> = cols.reshape([k, np, ckk, ho * wo]);
        (weight.clone().matmul(cols) + bias.clone()).reshape([k, np, o * ho * wo])
    };
    let y = if n <= part {
        one(x)
    } else {
        let parts = (0..n).step_by(part);
        let ys = parts.map(|s| one(x.clone().narrow(1, s, part.min(n - s))));
        Tensor::cat(ys.collect(), 1)
    };
    y.reshape([k * n, o, ho, wo])
}

/// For each window offset `(i, j)` and output position `(y, x)`, in that order, the position
/// in an `h × w` plane the window reads, or `h·w` (the zero after the plane) in the padding.
pub fn window_index(h: usize, w: usize, k: usize, pad: usize) -> Vec<i64> {
    let (ho, wo) = (h + 2 * pad + 1 - k, w + 2 * pad + 1 - k);
    let mut index = Vec::with_capacity(k * k * ho * wo);
    for i in 0..k {
        for j in 0..k {
            for y in 0..ho {
                for x in 0..wo {
                    let (r, s) = ((y + i).wrapping_sub(pad), (x + j).wrapping_sub(pad));
                    let inside = r < h && s < w;
                    index.push(if inside { r * w + s } else { h * w } as i64);
                }
            }
        }
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Autodiff;
    use burn::backend::Flex;
    use burn::backend::flex::FlexDevice;
    use burn::tensor::module;
    use burn::tensor::ops::ConvOptions;

    type AdFlex = Autodiff<Flex>;

    fn rand<const D: usize>(shape: [usize; D], seed: u64) -> Tensor<AdFlex, D> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
        Tensor::from_data(TensorData::new(v, shape), &FlexDevice)
    }

    fn assert_close<const D: usize>(what: &str, a: Tensor<Flex, D>, b: Tensor<Flex, D>) {
        assert_eq!(a.dims(), b.dims(), "{what}");
        let (a, b) = (a.into_data(), b.into_data());
        for (x, y) in a.iter::<f32>().zip(b.iter::<f32>()) {
            assert!(
                (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
                "{what}: {x} vs {y}"
            );
        }
    }

    /// The gathered convolution and burn's: same output, same gradients for the input, the
    /// weight and the bias, with and without padding, one channel and several, square and not,
    /// the batch in one part and in parts of 2, 2 and 1.
    #[test]
    fn matches_burns_conv2d_forward_and_backward() {
        for (n, c, h, w, o, k, pad, block) in [
            (3, 1, 8, 8, 4, 5, 2, BLOCK_VALUES),
            (2, 3, 7, 9, 5, 3, 0, BLOCK_VALUES),
            (4, 2, 6, 5, 3, 3, 1, BLOCK_VALUES),
            (5, 2, 6, 5, 3, 3, 1, 2 * 2 * 9 * 30),
        ] {
            let (x0, w0, b0) = (
                rand::<4>([n, c, h, w], 1),
                rand::<4>([o, c, k, k], 2),
                rand::<1>([o], 3),
            );
            let (ho, wo) = (h + 2 * pad + 1 - k, w + 2 * pad + 1 - k);
            let g0 = rand::<4>([n, o, ho, wo], 4);
            let run = |ours: bool| {
                let (x, wt, b) = (
                    x0.clone().require_grad(),
                    w0.clone().require_grad(),
                    b0.clone().require_grad(),
                );
                let y = if ours {
                    in_parts(x.clone(), &wt, &b, pad, block)
                } else {
                    let options = ConvOptions::new([1, 1], [pad, pad], [1, 1], 1);
                    module::conv2d(x.clone(), wt.clone(), Some(b.clone()), options)
                };
                let grads = (y.clone() * g0.clone()).sum().backward();
                let grad = |t: &Tensor<AdFlex, 4>| t.grad(&grads).unwrap();
                (y.inner(), grad(&x), grad(&wt), b.grad(&grads).unwrap())
            };
            let (ya, xa, wa, ba) = run(true);
            let (yb, xb, wb, bb) = run(false);
            let case = format!("n{n} c{c} {h}x{w} o{o} k{k} pad{pad} block{block}");
            assert_close(&format!("{case} output"), ya, yb);
            assert_close(&format!("{case} input gradient"), xa, xb);
            assert_close(&format!("{case} weight gradient"), wa, wb);
            assert_close(&format!("{case} bias gradient"), ba, bb);
        }
    }
}
