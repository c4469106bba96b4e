//! The networks' heavy ops (fully connected layer, convolution, pooling) as a backend
//! extension: by default (Cuda, Wgpu) burn's own ops, except the convolution, which is
//! [`super::tensor_conv`]'s gather and matrix product; on Flex the kernels of
//! [`super::kernels`], with their own backward pass under autodiff.

use super::flex_tensors::{dims, flex, prim, register, values, wrap};
use super::kernels::{self, ConvDims};
use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::tensor::backend::Backend;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Tensor, TensorData, activation, module};
use std::sync::Arc;

type AdFlex = burn::backend::Autodiff<Flex>;

/// The fully connected layer, stride-1 convolution with bias and max pooling with stride =
/// window, as the networks use them.
pub trait NetOps: Backend {
    /// `x [n, i] · weight [i, o] + bias [o]`, burn's `Linear` layer.
    fn net_linear(
        x: Tensor<Self, 2>,
        weight: Tensor<Self, 2>,
        bias: Option<Tensor<Self, 1>>,
    ) -> Tensor<Self, 2> {
        module::linear(x, weight, bias)
    }

    /// [`NetOps::net_linear`] of the rows `idx` of `data` (`[rows, i]`, off the graph): by
    /// default the batch is gathered first.
    fn net_linear_rows(
        data: Tensor<Self, 2>,
        idx: &[usize],
        weight: Tensor<Self, 2>,
        bias: Option<Tensor<Self, 1>>,
    ) -> Tensor<Self, 2> {
        Self::net_linear(gather(data, idx), weight, bias)
    }

    /// Stride-1 convolution of `x` `[n, c_in, h, w]` with `weight` `[c_out, c_in, k, k]` plus
    /// `bias` `[c_out]`, with `pad` zeros on each side.
    fn cnn_conv2d(
        x: Tensor<Self, 4>,
        weight: Tensor<Self, 4>,
        bias: Tensor<Self, 1>,
        pad: usize,
    ) -> Tensor<Self, 4> {
        super::tensor_conv::conv2d(x, &weight, &bias, pad)
    }

    /// Max pooling, then ReLU when `relu` (fused on Flex).
    fn cnn_max_pool(x: Tensor<Self, 4>, k: usize, relu: bool) -> Tensor<Self, 4> {
        burn_pool(x, k, relu)
    }

    /// Each of K members' fully connected layer: `x [K, B, i] · w [K, i, o] + b [K, 1, o]`,
    /// one batched matrix product (on Flex, each member through the linear kernels).
    fn fused_linear(x: Tensor<Self, 3>, w: Tensor<Self, 3>, b: Tensor<Self, 3>) -> Tensor<Self, 3> {
        x.matmul(w) + b
    }

    /// Each of K members' stride-1 convolution of its images (`x` `[K·B, c, h, w]`, member
    /// after member) by its weight `w` `[K, o, c·k·k]` plus bias `b` `[K, o, 1]`, with `pad`
    /// zeros on each side: by default one gather of the windows and one batched product.
    fn fused_conv2d(
        x: Tensor<Self, 4>,
        w: Tensor<Self, 3>,
        b: Tensor<Self, 3>,
        kernel: usize,
        pad: usize,
    ) -> Tensor<Self, 4> {
        super::tensor_conv::fused_conv2d(x, w, b, kernel, pad)
    }

    /// A fused group's batch `[K, B, d]`: member `k`'s rows `sets[k].1` of its data
    /// `sets[k].0` (`[rows, d]`, each member's own training set).
    fn stacked_rows(sets: &[(Tensor<Self, 2>, &[usize])]) -> Tensor<Self, 3> {
        let xs = sets.iter().map(|(data, idx)| gather(data.clone(), idx));
        Tensor::stack(xs.collect(), 0)
    }
}

/// The rows `idx` of `data`.
pub fn gather<B: Backend>(data: Tensor<B, 2>, idx: &[usize]) -> Tensor<B, 2> {
    let ids: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
    let device = data.device();
    data.select(
        0,
        Tensor::from_data(TensorData::new(ids, [idx.len()]), &device),
    )
}

fn burn_conv<B: Backend>(
    x: Tensor<B, 4>,
    w: Tensor<B, 4>,
    b: Tensor<B, 1>,
    pad: usize,
) -> Tensor<B, 4> {
    module::conv2d(
        x,
        w,
        Some(b),
        ConvOptions::new([1, 1], [pad, pad], [1, 1], 1),
    )
}

fn burn_pool<B: Backend>(x: Tensor<B, 4>, k: usize, relu: bool) -> Tensor<B, 4> {
    let y = module::max_pool2d(x, [k, k], [k, k], [0, 0], [1, 1], false);
    if relu { activation::relu(y) } else { y }
}

#[cfg(feature = "cuda")]
impl NetOps for burn::backend::Cuda {}
#[cfg(feature = "cuda")]
impl NetOps for burn::backend::Autodiff<burn::backend::Cuda> {}
#[cfg(feature = "wgpu")]
impl NetOps for burn::backend::Wgpu {}
#[cfg(feature = "wgpu")]
impl NetOps for burn::backend::Autodiff<burn::backend::Wgpu> {}

fn conv_dims(x: &FlexTensor, w: &FlexTensor, pad: usize) -> ConvDims {
    let (xd, wd) = (dims(x), dims(w));
    ConvDims {
        n: xd[0],
        c: xd[1],
        h: xd[2],
        w: xd[3],
        o: wd[0],
        k: wd[2],
        pad,
    }
}

/// Whether the kernels handle these tensors (f32, non-empty, square kernel, matching channels).
fn conv_supported(x: &FlexTensor, w: &FlexTensor, pad: usize) -> bool {
    let (xd, wd) = (dims(x), dims(w));
    x.dtype() == DType::F32
        && w.dtype() == DType::F32
        && xd.len() == 4
        && wd.len() == 4
        && xd.iter().chain(&wd).all(|&v| v > 0)
        && wd[1] == xd[1]
        && wd[2] == wd[3]
        && xd[2] + 2 * pad >= wd[2]
        && xd[3] + 2 * pad >= wd[2]
}

fn conv_forward(x: &FlexTensor, w: &FlexTensor, b: &FlexTensor, pad: usize) -> FlexTensor {
    let d = conv_dims(x, w, pad);
    let out = kernels::conv2d_forward(&values(x), &values(w), &values(b), &d);
    flex(out, [d.n, d.o, d.oh(), d.ow()])
}

/// Pooled output, argmax offsets and the input's shape.
fn pool_forward(x: &FlexTensor, k: usize, relu: bool) -> (FlexTensor, Vec<u32>, [usize; 4]) {
    let d = dims(x);
    let (out, idx) = kernels::max_pool_forward(&values(x), d[0] * d[1], d[2], d[3], k, relu);
    (
        flex(out, [d[0], d[1], d[2] / k, d[3] / k]),
        idx,
        [d[0], d[1], d[2], d[3]],
    )
}

fn pool_supported(x: &FlexTensor, k: usize) -> bool {
    let d = dims(x);
    x.dtype() == DType::F32
        && d.len() == 4
        && d.iter().all(|&v| v > 0)
        && k >= 1
        && d[2] >= k
        && d[3] >= k
}

/// Whether the linear kernels handle these tensors (f32 matrices whose inner sizes match, and a
/// bias).
fn linear_supported(x: &FlexTensor, w: &FlexTensor, b: Option<&FlexTensor>) -> bool {
    let (xd, wd) = (dims(x), dims(w));
    [x, w].iter().chain(&b).all(|t| t.dtype() == DType::F32)
        && xd.len() == 2
        && wd.len() == 2
        && xd[1] == wd[0]
        && wd.iter().all(|&v| v > 0)
        && b.is_some_and(|b| dims(b) == [wd[1]])
}

fn linear_forward(x: &FlexTensor, w: &FlexTensor, b: &FlexTensor) -> FlexTensor {
    let (n, [i, o]) = (dims(x)[0], [dims(w)[0], dims(w)[1]]);
    let y = kernels::linear_forward(&values(x), &values(w), Some(&values(b)), i, o);
    flex(y, [n, o])
}

/// Whether the row-gathering kernels pay here: a narrow layer (o < 16, a linear classifier) on
/// contiguous f32 rows, and a batch of at least 4 MB. For a wide layer every block's partial
/// weight gradient (i × o) costs more than the copy of the batch it saves; a smaller batch
/// stays in cache once copied, and one product beats many small ones (batch 100: 590k
/// samples/s against 700k; batch 8,000: the S2 trial 1.7 s against 2.2 s).
fn rows_supported(data: &FlexTensor, rows: usize, w: &FlexTensor, b: Option<&FlexTensor>) -> bool {
    const MIN_BATCH_VALUES: usize = 1 << 20;
    linear_supported(data, w, b)
        && dims(w)[1] < 16
        && rows * dims(w)[0] >= MIN_BATCH_VALUES
        && data.as_slice::<f32>().is_some()
}

fn linear_rows_forward(
    data: &FlexTensor,
    idx: &[usize],
    w: &FlexTensor,
    b: &FlexTensor,
) -> FlexTensor {
    let [i, o] = [dims(w)[0], dims(w)[1]];
    let y = kernels::linear_rows_forward(&values(data), idx, &values(w), &values(b), i, o);
    flex(y, [idx.len(), o])
}

impl NetOps for Flex {
    /// Written straight into the group's batch, the members side by side: gathering each
    /// member's rows and then stacking them copied the batch twice on one thread (4% of a
    /// fused MLP's time).
    fn stacked_rows(sets: &[(Tensor<Self, 2>, &[usize])]) -> Tensor<Self, 3> {
        use rayon::prelude::*;
        let data: Vec<FlexTensor> = sets.iter().map(|(d, _)| prim(d.clone())).collect();
        let (k, b) = (sets.len(), sets.first().map_or(0, |s| s.1.len()));
        let d = data.first().map_or(0, |t| dims(t)[1]);
        let same = |t: &FlexTensor| {
            t.dtype() == DType::F32 && dims(t)[1] == d && t.as_slice::<f32>().is_some()
        };
        if !data.iter().all(same) || sets.iter().any(|s| s.1.len() != b) || b * d == 0 {
            let xs = sets.iter().map(|(data, idx)| gather(data.clone(), idx));
            return Tensor::stack(xs.collect(), 0);
        }
        let rows: Vec<_> = data.iter().map(|t| values(t)).collect();
        let x = kernels::filled(k * b * d, |out| {
            (out.par_chunks_mut(b * d).zip(&rows).zip(sets)).for_each(|((out, rows), (_, idx))| {
                for (o, &r) in out.chunks_mut(d).zip(idx.iter()) {
                    for (o, &v) in o.iter_mut().zip(&rows[r * d..(r + 1) * d]) {
                        o.write(v);
                    }
                }
            });
        });
        wrap(flex(x, [k, b, d]))
    }

    fn net_linear_rows(
        data: Tensor<Self, 2>,
        idx: &[usize],
        w: Tensor<Self, 2>,
        b: Option<Tensor<Self, 1>>,
    ) -> Tensor<Self, 2> {
        let (data, w, b) = (prim(data), prim(w), b.map(prim));
        match b {
            Some(b) if rows_supported(&data, idx.len(), &w, Some(&b)) => {
                wrap(linear_rows_forward(&data, idx, &w, &b))
            }
            b => Self::net_linear(gather(wrap(data), idx), wrap(w), b.map(wrap)),
        }
    }

    fn net_linear(
        x: Tensor<Self, 2>,
        w: Tensor<Self, 2>,
        b: Option<Tensor<Self, 1>>,
    ) -> Tensor<Self, 2> {
        let (x, w, b) = (prim(x), prim(w), b.map(prim));
        match b {
            Some(b) if linear_supported(&x, &w, Some(&b)) => wrap(linear_forward(&x, &w, &b)),
            b => module::linear(wrap(x), wrap(w), b.map(wrap)),
        }
    }

    fn cnn_conv2d(
        x: Tensor<Self, 4>,
        w: Tensor<Self, 4>,
        b: Tensor<Self, 1>,
        pad: usize,
    ) -> Tensor<Self, 4> {
        let (x, w, b) = (prim(x), prim(w), prim(b));
        if !conv_supported(&x, &w, pad) {
            return burn_conv(wrap(x), wrap(w), wrap(b), pad);
        }
        wrap(conv_forward(&x, &w, &b, pad))
    }

    fn cnn_max_pool(x: Tensor<Self, 4>, k: usize, relu: bool) -> Tensor<Self, 4> {
        let x = prim(x);
        if !pool_supported(&x, k) {
            return burn_pool(wrap(x), k, relu);
        }
        wrap(pool_forward(&x, k, relu).0)
    }
}

#[derive(Debug)]
struct LinearBackward;

impl Backward<Flex, 3> for LinearBackward {
    /// Input and weight.
    type State = (FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w, node_b] = ops.parents;
        let g = grads.consume::<Flex>(&ops.node);
        let (x, w) = ops.state;
        let (n, [i, o]) = (dims(&x)[0], [dims(&w)[0], dims(&w)[1]]);
        let (dx, dw, db) = kernels::linear_backward(
            &values(&x),
            &values(&w),
            &values(&g),
            i,
            o,
            node_x.is_some(),
        );
        register(grads, node_x.map(|n| n.id).zip(dx), [n, i]);
        register(grads, node_w.map(|n| (n.id, dw)), [i, o]);
        register(grads, node_b.map(|n| (n.id, db)), [o]);
    }
}

#[derive(Debug)]
struct LinearRowsBackward;

impl Backward<Flex, 2> for LinearRowsBackward {
    /// The data and the rows taken from it.
    type State = (FlexTensor, Arc<Vec<usize>>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_w, node_b] = ops.parents;
        let g = grads.consume::<Flex>(&ops.node);
        let (data, idx) = ops.state;
        let (i, o) = (dims(&data)[1], dims(&g)[1]);
        let (dw, db) = kernels::linear_rows_backward(&values(&data), &idx, &values(&g), i, o);
        register(grads, node_w.map(|n| (n.id, dw)), [i, o]);
        register(grads, node_b.map(|n| (n.id, db)), [o]);
    }
}

#[derive(Debug)]
struct ConvBackward;

impl Backward<Flex, 3> for ConvBackward {
    /// Input, weight, padding.
    type State = (FlexTensor, FlexTensor, usize);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w, node_b] = ops.parents;
        let g = grads.consume::<Flex>(&ops.node);
        let (x, w, pad) = ops.state;
        let d = conv_dims(&x, &w, pad);
        let (dx, dw, db) =
            kernels::conv2d_backward(&values(&x), &values(&w), &values(&g), &d, node_x.is_some());
        register(grads, node_x.map(|n| n.id).zip(dx), [d.n, d.c, d.h, d.w]);
        register(grads, node_w.map(|n| (n.id, dw)), [d.o, d.c, d.k, d.k]);
        register(grads, node_b.map(|n| (n.id, db)), [d.o]);
    }
}

#[derive(Debug)]
struct PoolBackward;

impl Backward<Flex, 1> for PoolBackward {
    /// Argmax offsets and the input's shape.
    type State = (Arc<Vec<u32>>, [usize; 4]);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x] = ops.parents;
        let g = grads.consume::<Flex>(&ops.node);
        let (idx, [n, c, h, w]) = ops.state;
        if let Some(node) = node_x {
            let dx = kernels::max_pool_backward(&values(&g), &idx, n * c, h, w);
            register(grads, Some((node.id, dx)), [n, c, h, w]);
        }
    }
}

impl NetOps for AdFlex {
    fn fused_linear(x: Tensor<Self, 3>, w: Tensor<Self, 3>, b: Tensor<Self, 3>) -> Tensor<Self, 3> {
        super::fused::flex::linear(x, w, b)
    }

    fn fused_conv2d(
        x: Tensor<Self, 4>,
        w: Tensor<Self, 3>,
        b: Tensor<Self, 3>,
        kernel: usize,
        pad: usize,
    ) -> Tensor<Self, 4> {
        super::fused::flex::conv2d(x, w, b, kernel, pad)
    }

    fn net_linear_rows(
        data: Tensor<Self, 2>,
        idx: &[usize],
        w: Tensor<Self, 2>,
        b: Option<Tensor<Self, 1>>,
    ) -> Tensor<Self, 2> {
        let (data, w, b) = (prim(data), prim(w), b.map(prim));
        let b = match b {
            Some(b)
                if rows_supported(&data.primitive, idx.len(), &w.primitive, Some(&b.primitive)) =>
            {
                b
            }
            b => return Self::net_linear(gather(wrap(data), idx), wrap(w), b.map(wrap)),
        };
        let out = linear_rows_forward(&data.primitive, idx, &w.primitive, &b.primitive);
        let t = match LinearRowsBackward
            .prepare::<NoCheckpointing>([w.node.clone(), b.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((data.primitive, Arc::new(idx.to_vec())), out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        };
        wrap(t)
    }

    fn net_linear(
        x: Tensor<Self, 2>,
        w: Tensor<Self, 2>,
        b: Option<Tensor<Self, 1>>,
    ) -> Tensor<Self, 2> {
        let (x, w, b) = (prim(x), prim(w), b.map(prim));
        let b = match b {
            Some(b) if linear_supported(&x.primitive, &w.primitive, Some(&b.primitive)) => b,
            b => return module::linear(wrap(x), wrap(w), b.map(wrap)),
        };
        let out = linear_forward(&x.primitive, &w.primitive, &b.primitive);
        let nodes = [x.node.clone(), w.node.clone(), b.node.clone()];
        let t = match LinearBackward
            .prepare::<NoCheckpointing>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((x.primitive, w.primitive), out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        };
        wrap(t)
    }

    fn cnn_conv2d(
        x: Tensor<Self, 4>,
        w: Tensor<Self, 4>,
        b: Tensor<Self, 1>,
        pad: usize,
    ) -> Tensor<Self, 4> {
        let (x, w, b) = (prim(x), prim(w), prim(b));
        if !conv_supported(&x.primitive, &w.primitive, pad) {
            return burn_conv(wrap(x), wrap(w), wrap(b), pad);
        }
        let out = conv_forward(&x.primitive, &w.primitive, &b.primitive, pad);
        let nodes = [x.node.clone(), w.node.clone(), b.node.clone()];
        let t = match ConvBackward
            .prepare::<NoCheckpointing>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((x.primitive, w.primitive, pad), out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        };
        wrap(t)
    }

    fn cnn_max_pool(x: Tensor<Self, 4>, k: usize, relu: bool) -> Tensor<Self, 4> {
        let x = prim(x);
        if !pool_supported(&x.primitive, k) {
            return burn_pool(wrap(x), k, relu);
        }
        let (out, idx, shape) = pool_forward(&x.primitive, k, relu);
        let t = match PoolBackward
            .prepare::<NoCheckpointing>([x.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((Arc::new(idx), shape), out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        };
        wrap(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::flex::FlexDevice;

    fn rand<const D: usize>(shape: [usize; D], seed: u64) -> Tensor<AdFlex, D> {
        let n: usize = shape.iter().product();
        let mut s = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(7);
        let v: Vec<f32> = (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
            })
            .collect();
        Tensor::from_data(TensorData::new(v, shape), &FlexDevice)
    }

    fn assert_close<const D: usize>(a: Tensor<Flex, D>, b: Tensor<Flex, D>) {
        assert_eq!(a.dims(), b.dims());
        let (a, b) = (a.into_data(), b.into_data());
        for (x, y) in a.iter::<f32>().zip(b.iter::<f32>()) {
            assert!((x - y).abs() <= 1e-4 * (1.0 + y.abs()), "{x} vs {y}");
        }
    }

    /// The fully connected layer through our op and through burn's: same values, same
    /// gradients for the input, the weight and the bias (a narrow and a wide layer).
    #[test]
    fn linear_matches_burns_forward_and_backward() {
        for (n, i, o) in [(6, 20, 10), (9, 30, 40)] {
            let (x0, w0, b0, g0) = (
                rand::<2>([n, i], 11),
                rand::<2>([i, o], 12),
                rand::<1>([o], 13),
                rand::<2>([n, o], 14),
            );
            let run = |ours: bool| {
                let (x, w, b) = (
                    x0.clone().require_grad(),
                    w0.clone().require_grad(),
                    b0.clone().require_grad(),
                );
                let y = if ours {
                    AdFlex::net_linear(x.clone(), w.clone(), Some(b.clone()))
                } else {
                    module::linear(x.clone(), w.clone(), Some(b.clone()))
                };
                let grads = (y.clone() * g0.clone()).sum().backward();
                (
                    y.inner(),
                    x.grad(&grads).unwrap(),
                    w.grad(&grads).unwrap(),
                    b.grad(&grads).unwrap(),
                )
            };
            let (ya, xa, wa, ba) = run(true);
            let (yb, xb, wb, bb) = run(false);
            assert_close(ya, yb.clone());
            assert_close(xa, xb);
            assert_close(wa, wb);
            assert_close(ba, bb);
            let inner = Flex::net_linear(
                x0.clone().inner(),
                w0.clone().inner(),
                Some(b0.clone().inner()),
            );
            assert_close(inner, yb);
        }
    }

    /// Rows taken straight into the first layer give the values and gradients of gathering
    /// them first, for a batch above the size where the row kernels take over and one below.
    #[test]
    fn linear_rows_match_gathering_the_batch_first() {
        let (rows, i, o) = (500, 400, 10);
        let data = rand::<2>([rows, i], 31);
        let w0 = rand::<2>([i, o], 32);
        let b0 = rand::<1>([o], 33);
        for n in [100, 3000] {
            let idx: Vec<usize> = (0..n).map(|k| (k * 131 + 7) % rows).collect();
            assert_eq!(
                n * i >= 1 << 20,
                n == 3000,
                "one batch on each side of the threshold"
            );
            let g0 = rand::<2>([n, o], 34);
            let run = |ours: bool| {
                let (w, b) = (w0.clone().require_grad(), b0.clone().require_grad());
                let y = if ours {
                    AdFlex::net_linear_rows(data.clone(), &idx, w.clone(), Some(b.clone()))
                } else {
                    module::linear(gather(data.clone(), &idx), w.clone(), Some(b.clone()))
                };
                let grads = (y.clone() * g0.clone()).sum().backward();
                (y.inner(), w.grad(&grads).unwrap(), b.grad(&grads).unwrap())
            };
            let (ya, wa, ba) = run(true);
            let (yb, wb, bb) = run(false);
            assert_close(ya, yb.clone());
            assert_close(wa, wb);
            assert_close(ba, bb);
            let inner = Flex::net_linear_rows(
                data.clone().inner(),
                &idx,
                w0.clone().inner(),
                Some(b0.clone().inner()),
            );
            assert_close(inner, yb);
        }
    }

    /// conv → pool → loss through our ops and through burn's: same values, same gradients for
    /// the input, the weights and the bias.
    #[test]
    fn matches_burns_ops_forward_and_backward() {
        let x0 = rand::<4>([5, 3, 10, 10], 1);
        let w0 = rand::<4>([4, 3, 5, 5], 2);
        let b0 = rand::<1>([4], 3);
        let g0 = rand::<4>([5, 4, 5, 5], 4);
        for relu in [false, true] {
            let run = |ours: bool| {
                let (x, w, b) = (
                    x0.clone().require_grad(),
                    w0.clone().require_grad(),
                    b0.clone().require_grad(),
                );
                let y = if ours {
                    AdFlex::cnn_max_pool(
                        AdFlex::cnn_conv2d(x.clone(), w.clone(), b.clone(), 2),
                        2,
                        relu,
                    )
                } else {
                    let conv = module::conv2d(
                        x.clone(),
                        w.clone(),
                        Some(b.clone()),
                        ConvOptions::new([1, 1], [2, 2], [1, 1], 1),
                    );
                    burn_pool(conv, 2, relu)
                };
                let loss = (y.clone() * g0.clone()).sum();
                let grads = loss.backward();
                (
                    y.inner(),
                    x.grad(&grads).unwrap(),
                    w.grad(&grads).unwrap(),
                    b.grad(&grads).unwrap(),
                )
            };
            let (ya, xa, wa, ba) = run(true);
            let (yb, xb, wb, bb) = run(false);
            let (yc, ..) = run(false);
            assert_close(ya, yb);
            assert_close(xa, xb);
            assert_close(wa, wb);
            assert_close(ba, bb);
            // The inner backend's forward agrees too.
            let inner = Flex::cnn_max_pool(
                Flex::cnn_conv2d(
                    x0.clone().inner(),
                    w0.clone().inner(),
                    b0.clone().inner(),
                    2,
                ),
                2,
                relu,
            );
            assert_close(inner, yc);
        }
    }
}
