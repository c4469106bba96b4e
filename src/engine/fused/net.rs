//! K networks of one shape as one: every layer's weights stacked on a leading member axis, so a
//! fully connected layer is one batched matrix product (`[K, B, in] × [K, in, out]`) and a
//! convolution one gather of the input's windows and one batched product. Each member is built
//! from, and read back into, an ordinary [`Net`], so its initial weights are those it would
//! have alone and its evaluation is the unfused code's.

use crate::config::Activation;
use crate::engine::model::{Net, Shape, dropout_mask};
use crate::engine::net_ops::NetOps;
use burn::module::Param;
use burn::tensor::activation::{self, log_softmax};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use rand_chacha::ChaCha8Rng;

/// The weights of K members, as `[K, …, …]` tensors: per convolution its weight
/// `[K, out, in·k·k]` and bias `[K, out, 1]`, then per linear layer its weight `[K, in, out]`
/// and bias `[K, 1, out]`.
pub struct FusedNet<B: Backend> {
    /// The stacked parameters, in the order above.
    pub params: Vec<Tensor<B, 3>>,
    /// Convolutions' kernel sizes (`k`), in order; empty unless the shape is a CNN.
    kernels: Vec<usize>,
    /// The settings the members share (activation, padding, pooling); dropout is per member.
    shape: Shape,
}

/// Each member's dropout: its probabilities and its generator.
pub struct Dropouts<'a> {
    /// Hidden-layer dropout of each member.
    pub hidden: Vec<f64>,
    /// Input dropout of each member (linear models).
    pub input: Vec<f64>,
    /// Each member's dropout stream.
    pub rngs: Vec<&'a mut ChaCha8Rng>,
}

impl<B: Backend> FusedNet<B> {
    /// The members' networks stacked into one (they must share their shape).
    pub fn stack(nets: &[&Net<B>]) -> Self {
        let first = nets[0];
        let mut params = vec![];
        let mut kernels = vec![];
        for (l, conv) in first.convs.iter().enumerate() {
            let [o, c, k, _] = conv.weight.val().dims();
            kernels.push(k);
            let w = nets
                .iter()
                .map(|n| n.convs[l].weight.val().reshape([o, c * k * k]));
            params.push(Tensor::stack(w.collect(), 0));
            let b = nets.iter().map(|n| bias(&n.convs[l].bias).reshape([o, 1]));
            params.push(Tensor::stack(b.collect(), 0));
        }
        for (l, _) in first.linears.iter().enumerate() {
            let w = nets.iter().map(|n| n.linears[l].weight.val());
            params.push(Tensor::stack(w.collect(), 0));
            let b = nets.iter().map(|n| {
                let b = bias(&n.linears[l].bias);
                let o = b.dims()[0];
                b.reshape([1, o])
            });
            params.push(Tensor::stack(b.collect(), 0));
        }
        FusedNet {
            params,
            kernels,
            shape: first.shape.clone(),
        }
    }

    /// Member `k`'s weights as an ordinary network, in the layout of `like` (its own network).
    pub fn member(&self, k: usize, like: &Net<B>) -> Net<B> {
        let mut net = like.clone();
        let take = |i: usize| self.params[i].clone().narrow(0, k, 1);
        let convs = net.convs.len();
        for (l, conv) in net.convs.iter_mut().enumerate() {
            let dims = conv.weight.val().dims();
            conv.weight = Param::from_tensor(take(2 * l).reshape(dims));
            conv.bias = Some(Param::from_tensor(take(2 * l + 1).reshape([dims[0]])));
        }
        for (l, lin) in net.linears.iter_mut().enumerate() {
            let i = 2 * (convs + l);
            let dims = lin.weight.val().dims();
            lin.weight = Param::from_tensor(take(i).reshape(dims));
            lin.bias = Some(Param::from_tensor(take(i + 1).reshape([dims[1]])));
        }
        net
    }

    /// Keeps the members at `keep` (positions, in order).
    pub fn keep(&mut self, keep: &[usize]) {
        let Some(first) = self.params.first() else {
            return;
        };
        let ids = members_index::<B>(keep, &first.device());
        for p in &mut self.params {
            *p = p.clone().select(0, ids.clone());
        }
    }

    /// How many members.
    pub fn members(&self) -> usize {
        self.params.first().map_or(0, |p| p.dims()[0])
    }

    /// The layout of the parameters without them, for the forward pass on other tensors.
    pub fn layout(&self) -> Layout {
        Layout {
            kernels: self.kernels.clone(),
            shape: self.shape.clone(),
        }
    }
}

/// A `[len]` index tensor of member positions.
pub fn members_index<B: Backend>(keep: &[usize], device: &B::Device) -> Tensor<B, 1, Int> {
    let ids: Vec<i64> = keep.iter().map(|&i| i as i64).collect();
    Tensor::from_data(TensorData::new(ids, [keep.len()]), device)
}

fn bias<B: Backend>(b: &Option<Param<Tensor<B, 1>>>) -> Tensor<B, 1> {
    b.as_ref().expect("layers have a bias").val()
}

/// What the forward pass needs besides the parameters.
#[derive(Clone)]
pub struct Layout {
    kernels: Vec<usize>,
    shape: Shape,
}

impl Layout {
    /// Logits `[K, B, 10]` of the members' batches `x` `[K, B, 784]`, with each member's own
    /// dropout when training (`drop` is `None` in evaluation). Dropout masks are drawn from
    /// each member's stream in the order its unfused forward pass draws them.
    pub fn forward<A: NetOps>(
        &self,
        params: &[Tensor<A, 3>],
        x: Tensor<A, 3>,
        mut drop: Option<&mut Dropouts<'_>>,
    ) -> Tensor<A, 3> {
        let [k, b, _] = x.dims();
        let mut x = x;
        let convs = self.kernels.len();
        if self.shape.cnn {
            let mut img: Tensor<A, 4> = x.reshape([k * b, 1, 28, 28]);
            for l in 0..convs {
                let (w, bias) = (params[2 * l].clone(), params[2 * l + 1].clone());
                img = A::fused_conv2d(img, w, bias, self.kernels[l], self.shape.padding);
                img = if self.shape.activation == Activation::Relu {
                    A::cnn_max_pool(img, self.shape.pool, true)
                } else {
                    act(
                        self.shape.activation,
                        A::cnn_max_pool(img, self.shape.pool, false),
                    )
                };
            }
            let features = img.dims()[1..].iter().product::<usize>();
            x = img.reshape([k, b, features]);
        }
        if let Some(d) = drop.as_deref_mut() {
            x = masked(x, &d.input, &mut d.rngs);
        }
        let layers = (params.len() - 2 * convs) / 2;
        for l in 0..layers {
            let (w, bias) = (&params[2 * (convs + l)], &params[2 * (convs + l) + 1]);
            x = A::fused_linear(x, w.clone(), bias.clone());
            if l + 1 < layers {
                x = act(self.shape.activation, x);
                if let Some(d) = drop.as_deref_mut() {
                    x = masked(x, &d.hidden, &mut d.rngs);
                }
            }
        }
        x
    }
}

fn act<B: Backend, const D: usize>(a: Activation, x: Tensor<B, D>) -> Tensor<B, D> {
    match a {
        Activation::Relu => activation::relu(x),
        Activation::Sigmoid => activation::sigmoid(x),
        Activation::Tanh => activation::tanh(x),
        Activation::Gelu => activation::gelu(x),
        Activation::LeakyRelu => activation::leaky_relu(x, 0.01),
    }
}

/// `x` `[K, B, d]` times each member's inverted-dropout mask (drawn only for members whose
/// probability is above 0, as alone); unchanged when no member drops.
fn masked<B: Backend>(x: Tensor<B, 3>, p: &[f64], rngs: &mut [&mut ChaCha8Rng]) -> Tensor<B, 3> {
    if p.iter().all(|&p| p <= 0.0) {
        return x;
    }
    let [k, b, d] = x.dims();
    let mut mask = Vec::with_capacity(k * b * d);
    for (&p, rng) in p.iter().zip(rngs.iter_mut()) {
        if p <= 0.0 {
            mask.extend(std::iter::repeat_n(1.0f32, b * d));
        } else {
            let keep = 1.0 - p;
            mask.extend(dropout_mask(rng, b * d, keep, (1.0 / keep) as f32));
        }
    }
    let mask = Tensor::<B, 3>::from_data(TensorData::new(mask, [k, b, d]), &x.device());
    x * mask
}

/// The members' summed mean cross-entropy (on the graph: each member's gradient is its own),
/// and off it each member's mean loss `[K]` and correct answers `[K]`.
#[allow(clippy::type_complexity)]
pub fn losses<A: burn::tensor::backend::AutodiffBackend>(
    logits: Tensor<A, 3>,
    y: Tensor<A, 3, Int>,
) -> (
    Tensor<A, 1>,
    Tensor<A::InnerBackend, 1>,
    Tensor<A::InnerBackend, 1, Int>,
) {
    let [k, b, _] = logits.dims();
    let picked = log_softmax(logits.clone(), 2).gather(2, y.clone());
    let per_member = picked
        .clone()
        .inner()
        .sum_dim(1)
        .reshape([k])
        .div_scalar(-(b as f64));
    let loss = picked.sum().div_scalar(-(b as f64));
    let correct = logits
        .inner()
        .argmax(2)
        .equal(y.inner())
        .int()
        .sum_dim(1)
        .reshape([k]);
    (loss, per_member, correct)
}
