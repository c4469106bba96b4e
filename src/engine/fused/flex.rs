//! The fused layers on Flex (CPU): each member's slice of the stacked tensors goes through the
//! same linear and convolution kernels an unfused trial uses ([`crate::engine::kernels`]),
//! with their backward pass under autodiff, so a fused group on CPU costs what its members
//! cost alone rather than burn's generic batched ops (measured 2–8× slower there).

use crate::engine::flex_tensors::{dims, flex, prim, register, values, wrap};
use crate::engine::kernels::{self, ConvDims};
use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, Tensor};
use rayon::prelude::*;
use std::mem::MaybeUninit;

type AdFlex = burn::backend::Autodiff<Flex>;

fn all_f32(ts: &[&FlexTensor]) -> bool {
    ts.iter().all(|t| t.dtype() == DType::F32)
}

/// Member `m`'s share of `v`, cut in `parts` equal pieces.
fn piece(v: &[f32], m: usize, parts: usize) -> &[f32] {
    let len = v.len() / parts;
    &v[m * len..(m + 1) * len]
}

/// `f` of each member, the members spread over the trial's threads (each member's kernels
/// then run on the thread that took it, as an unfused trial's do on its own core).
fn per_member<T: Send>(k: usize, f: impl Fn(usize) -> T + Sync + Send) -> Vec<T> {
    (0..k).into_par_iter().map(f).collect()
}

/// The members' slices of one new tensor of `k` equal parts, each written by `write(m, slice)`
/// on the thread that took member `m`, and what each `write` returned, in member order. No
/// per-member vectors are concatenated after: copying the members' weight gradients together
/// was a tenth of a fused MLP's time.
fn per_member_into<T: Send>(
    k: usize,
    len: usize,
    write: impl Fn(usize, &mut [MaybeUninit<f32>]) -> T + Sync + Send,
) -> (Vec<f32>, Vec<T>) {
    let mut returned = vec![];
    let out = kernels::filled(k * len, |out| {
        returned = (out.par_chunks_mut(len.max(1)).enumerate())
            .map(|(m, slice)| write(m, slice))
            .collect();
    });
    (out, returned)
}

/// `x [K, B, i] · w [K, i, o] + b [K, 1, o]`, member by member.
pub fn linear(
    x: Tensor<AdFlex, 3>,
    w: Tensor<AdFlex, 3>,
    b: Tensor<AdFlex, 3>,
) -> Tensor<AdFlex, 3> {
    let (x, w, b) = (prim(x), prim(w), prim(b));
    if !all_f32(&[&x.primitive, &w.primitive, &b.primitive]) {
        return wrap::<AdFlex, 3>(x).matmul(wrap(w)) + wrap(b);
    }
    let (k, n, i, o) = linear_dims(&x.primitive, &w.primitive);
    let (xv, wv, bv) = (
        values(&x.primitive),
        values(&w.primitive),
        values(&b.primitive),
    );
    let (out, _) = per_member_into(k, n * o, |m, out| {
        let (xm, wm, bm) = (piece(&xv, m, k), piece(&wv, m, k), piece(&bv, m, k));
        kernels::linear_forward_into(xm, wm, Some(bm), i, o, out);
    });
    let out = flex(out, [k, n, o]);
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

/// Members, batch, inputs and outputs of a fused linear layer.
fn linear_dims(x: &FlexTensor, w: &FlexTensor) -> (usize, usize, usize, usize) {
    let (xd, wd) = (dims(x), dims(w));
    (xd[0], xd[1], xd[2], wd[2])
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
        let (k, n, i, o) = linear_dims(&x, &w);
        let (xv, wv, gv) = (values(&x), values(&w), values(&g));
        let dx = node_x.is_some().then(|| {
            let (dx, _) = per_member_into(k, n * i, |m, dx| {
                let (wm, gm) = (piece(&wv, m, k), piece(&gv, m, k));
                kernels::input_gradient_into(wm, gm, i, o, dx);
            });
            dx
        });
        let (dw, db) = per_member_into(k, i * o, |m, dw| {
            let (xm, gm) = (piece(&xv, m, k), piece(&gv, m, k));
            kernels::weight_gradients_into(xm, gm, i, o, dw)
        });
        let db = db.concat();
        register(grads, node_x.and_then(|nd| Some((nd.id, dx?))), [k, n, i]);
        register(grads, node_w.map(|nd| (nd.id, dw)), [k, i, o]);
        register(grads, node_b.map(|nd| (nd.id, db)), [k, 1, o]);
    }
}

/// Each member's convolution of its `B` images in `x` `[K·B, c, h, w]` by `w` `[K, o, c·k·k]`
/// plus `b` `[K, o, 1]`.
pub fn conv2d(
    x: Tensor<AdFlex, 4>,
    w: Tensor<AdFlex, 3>,
    b: Tensor<AdFlex, 3>,
    kernel: usize,
    pad: usize,
) -> Tensor<AdFlex, 4> {
    let (x, w, b) = (prim(x), prim(w), prim(b));
    let [kb, c, h, wd] = dims(&x.primitive)[..] else {
        unreachable!("a 4-d tensor")
    };
    let fits = h + 2 * pad >= kernel && wd + 2 * pad >= kernel && kb > 0;
    if !all_f32(&[&x.primitive, &w.primitive, &b.primitive]) || !fits {
        return crate::engine::tensor_conv::fused_conv2d(wrap(x), wrap(w), wrap(b), kernel, pad);
    }
    let (k, d) = conv_dims(&x.primitive, &w.primitive, kernel, pad);
    let _ = (c, kb);
    let (xv, wv, bv) = (
        values(&x.primitive),
        values(&w.primitive),
        values(&b.primitive),
    );
    let (out, _) = per_member_into(k, d.n * d.o * d.p(), |m, out| {
        let (xm, wm, bm) = (piece(&xv, m, k), piece(&wv, m, k), piece(&bv, m, k));
        kernels::conv2d_forward_into(xm, wm, bm, &d, out);
    });
    let out = flex(out, [k * d.n, d.o, d.oh(), d.ow()]);
    let nodes = [x.node.clone(), w.node.clone(), b.node.clone()];
    let t = match ConvBackward
        .prepare::<NoCheckpointing>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((x.primitive, w.primitive, kernel, pad), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    wrap(t)
}

/// Members, and one member's convolution.
fn conv_dims(x: &FlexTensor, w: &FlexTensor, kernel: usize, pad: usize) -> (usize, ConvDims) {
    let (xd, wd) = (dims(x), dims(w));
    let k = wd[0];
    let d = ConvDims {
        n: xd[0] / k,
        c: xd[1],
        h: xd[2],
        w: xd[3],
        o: wd[1],
        k: kernel,
        pad,
    };
    (k, d)
}

#[derive(Debug)]
struct ConvBackward;

impl Backward<Flex, 3> for ConvBackward {
    /// Input, weight, kernel side and padding.
    type State = (FlexTensor, FlexTensor, usize, usize);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w, node_b] = ops.parents;
        let g = grads.consume::<Flex>(&ops.node);
        let (x, w, kernel, pad) = ops.state;
        let (k, d) = conv_dims(&x, &w, kernel, pad);
        let (xv, wv, gv) = (values(&x), values(&w), values(&g));
        // The members add their input gradients into their slices of one vector.
        let mut dx = node_x
            .is_some()
            .then(|| kernels::written_zeros(k * d.n * d.in_len()));
        let member = |m: usize, dx: Option<&mut [f32]>| {
            let (xm, wm, gm) = (piece(&xv, m, k), piece(&wv, m, k), piece(&gv, m, k));
            kernels::conv2d_backward_into(xm, wm, gm, &d, dx)
        };
        let parts: Vec<(Vec<f32>, Vec<f32>)> = match dx.as_deref_mut() {
            Some(dx) => (dx.par_chunks_mut(d.n * d.in_len()).enumerate())
                .map(|(m, slice)| member(m, Some(slice)))
                .collect(),
            None => per_member(k, |m| member(m, None)),
        };
        // The weights' and biases' gradients are small (a convolution's kernels), so copied.
        let (dw, db): (Vec<_>, Vec<_>) = parts.into_iter().unzip();
        let (dw, db) = (dw.concat(), db.concat());
        let dx = dx.unwrap_or_default();
        register(
            grads,
            node_x.map(|nd| (nd.id, dx)),
            [k * d.n, d.c, d.h, d.w],
        );
        register(
            grads,
            node_w.map(|nd| (nd.id, dw)),
            [k, d.o, d.c * d.k * d.k],
        );
        register(grads, node_b.map(|nd| (nd.id, db)), [k, d.o, 1]);
    }
}
