//! The networks (linear, mlp, cnn) as one burn module, and their initialisation from the
//! trial's own generator (never the backend's process-wide one, so parallel trials reproduce).

use super::net_ops::NetOps;
use crate::config::{Activation, BiasInit, Init, ModelConfig, ModelKind};
use crate::data::{CLASSES, PIXELS};
use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, PaddingConfig2d};
use burn::tensor::activation;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// The non-learned settings of a network.
#[derive(Debug, Clone)]
pub struct Shape {
    /// The non-linearity after each hidden layer (and after each convolution's pooling).
    pub activation: Activation,
    /// Probability of zeroing each hidden activation while training, in [0, 1).
    pub dropout: f64,
    /// Probability of zeroing each input pixel while training, in [0, 1); linear models only.
    pub input_dropout: f64,
    /// Whether convolutions come before the linear layers (the cnn kind).
    pub cnn: bool,
    /// Convolution padding and pooling window (CNN only).
    pub padding: usize,
    /// Max-pool window and stride, in pixels, after each convolution; 1 means no pooling.
    pub pool: usize,
}

/// A classifier from flattened 28 × 28 digits to 10 logits (linear, mlp or cnn), one burn module.
#[derive(Module, Debug)]
pub struct Net<B: Backend> {
    /// Convolution layers, in order; empty unless the model is a CNN.
    pub convs: Vec<Conv2d<B>>,
    /// Hidden layers then the output layer.
    pub linears: Vec<Linear<B>>,
    /// One per hidden layer when batch norm is on.
    pub norms: Vec<BatchNorm<B>>,
    /// The non-learned settings; not a parameter, skipped by burn's module machinery.
    #[module(skip)]
    pub shape: Shape,
}

fn normal(rng: &mut ChaCha8Rng) -> f32 {
    // Box–Muller; u1 in (0, 1] so the log is finite.
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// Weights and bias values of one layer with the given fans.
fn init_values(
    init: Init,
    bias_init: BiasInit,
    n_weights: usize,
    n_bias: usize,
    fan_in: usize,
    fan_out: usize,
    rng: &mut ChaCha8Rng,
) -> (Vec<f32>, Vec<f32>) {
    let uniform = |bound: f32, n: usize, rng: &mut ChaCha8Rng| -> Vec<f32> {
        (0..n).map(|_| rng.random_range(-bound..=bound)).collect()
    };
    let draw = |n: usize, rng: &mut ChaCha8Rng| -> Vec<f32> {
        match init {
            Init::Zeros => vec![0.0; n],
            // PyTorch: kaiming_uniform(a=√5) → U(±1/√fan_in).
            Init::Default => uniform(1.0 / (fan_in as f32).sqrt(), n, rng),
            Init::XavierUniform => uniform((6.0 / (fan_in + fan_out) as f32).sqrt(), n, rng),
            Init::KaimingNormal => {
                let std = (2.0 / fan_in as f32).sqrt();
                (0..n).map(|_| normal(rng) * std).collect()
            }
        }
    };
    let w = draw(n_weights, rng);
    let b = match (bias_init, init) {
        (BiasInit::Same, _) | (BiasInit::Default, Init::Default) => draw(n_bias, rng),
        _ => vec![0.0; n_bias],
    };
    (w, b)
}

fn linear<B: Backend>(
    d_in: usize,
    d_out: usize,
    cfg: &ModelConfig,
    rng: &mut ChaCha8Rng,
    device: &B::Device,
) -> Linear<B> {
    let (w, b) = init_values(
        cfg.init,
        cfg.bias_init,
        d_in * d_out,
        d_out,
        d_in,
        d_out,
        rng,
    );
    Linear {
        weight: Param::from_tensor(Tensor::from_data(TensorData::new(w, [d_in, d_out]), device)),
        bias: Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(b, [d_out]),
            device,
        ))),
    }
}

/// `n` values, each `scale` with probability `keep` and 0 otherwise, from one `f64` draw per
/// value in order. Generated in parallel chunks, each from a copy of `rng` moved to the chunk's
/// place in the stream, so the values (and `rng` afterwards) are exactly those of drawing them
/// one after another.
pub fn dropout_mask(rng: &mut ChaCha8Rng, n: usize, keep: f64, scale: f32) -> Vec<f32> {
    const CHUNK: usize = 16 * 1024;
    // Words in bulk, each turned into an f64 in [0, 1) exactly as `Rng::random::<f64>` does
    // (the top 53 bits, scaled): the same values as one `random()` call per value, without a
    // call and a buffer check per value (which took 2.6× the generator's own time).
    let draw = |r: &mut ChaCha8Rng, out: &mut [f32]| {
        let mut words = [0u64; 256];
        for out in out.chunks_mut(words.len()) {
            let words = &mut words[..out.len()];
            r.fill(words);
            for (m, &u) in out.iter_mut().zip(words.iter()) {
                let unit = (u >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
                *m = if unit < keep { scale } else { 0.0 };
            }
        }
    };
    let mut mask = vec![0f32; n];
    let base = rng.get_word_pos();
    // One f64 draw takes two 32-bit words; seeking is exact from an even word position.
    if n <= CHUNK || base % 2 == 1 {
        draw(rng, &mut mask);
        return mask;
    }
    mask.par_chunks_mut(CHUNK).enumerate().for_each(|(i, out)| {
        let mut r = rng.clone();
        r.set_word_pos(base + 2 * (i * CHUNK) as u128);
        draw(&mut r, out);
    });
    rng.set_word_pos(base + 2 * n as u128);
    mask
}

impl<B: Backend> Net<B> {
    /// Builds the network `cfg` describes on `device`, drawing all initial weights from `rng`.
    pub fn new(cfg: &ModelConfig, rng: &mut ChaCha8Rng, device: &B::Device) -> Self {
        let mut convs = vec![];
        let mut inputs = PIXELS;
        if cfg.kind == ModelKind::Cnn {
            let (mut side, mut ch) = (28usize, 1usize);
            for &c in &cfg.channels {
                let k = cfg.kernel;
                let mut conv = Conv2dConfig::new([ch, c], [k, k])
                    .with_padding(PaddingConfig2d::Explicit(
                        cfg.padding,
                        cfg.padding,
                        cfg.padding,
                        cfg.padding,
                    ))
                    .init::<B>(device);
                let fan_in = ch * k * k;
                let fan_out = c * k * k;
                let (w, b) =
                    init_values(cfg.init, cfg.bias_init, c * fan_in, c, fan_in, fan_out, rng);
                conv.weight = Param::from_tensor(Tensor::from_data(
                    TensorData::new(w, [c, ch, k, k]),
                    device,
                ));
                conv.bias = Some(Param::from_tensor(Tensor::from_data(
                    TensorData::new(b, [c]),
                    device,
                )));
                convs.push(conv);
                side = (side + 2 * cfg.padding + 1 - k) / cfg.pool;
                ch = c;
            }
            inputs = side * side * ch;
        }
        let hidden: &[usize] = if cfg.kind == ModelKind::Linear {
            &[]
        } else {
            &cfg.hidden
        };
        let mut linears = vec![];
        let mut norms = vec![];
        for &h in hidden {
            linears.push(linear(inputs, h, cfg, rng, device));
            if cfg.batch_norm {
                norms.push(BatchNormConfig::new(h).init(device));
            }
            inputs = h;
        }
        linears.push(linear(inputs, CLASSES, cfg, rng, device));
        Net {
            convs,
            linears,
            norms,
            shape: Shape {
                activation: cfg.activation,
                dropout: cfg.dropout,
                input_dropout: if cfg.kind == ModelKind::Linear {
                    cfg.input_dropout
                } else {
                    0.0
                },
                cnn: cfg.kind == ModelKind::Cnn,
                padding: cfg.padding,
                pool: cfg.pool,
            },
        }
    }

    fn act<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        match self.shape.activation {
            Activation::Relu => activation::relu(x),
            Activation::Sigmoid => activation::sigmoid(x),
            Activation::Tanh => activation::tanh(x),
            Activation::Gelu => activation::gelu(x),
            Activation::LeakyRelu => activation::leaky_relu(x, 0.01),
        }
    }

    /// Inverted dropout with a mask from the trial's generator (`rng` is `None` in evaluation).
    fn dropout(&self, x: Tensor<B, 2>, p: f64, rng: &mut Option<&mut ChaCha8Rng>) -> Tensor<B, 2> {
        let Some(rng) = rng.as_deref_mut() else {
            return x;
        };
        if p <= 0.0 {
            return x;
        }
        let [n, d] = x.dims();
        let keep = 1.0 - p;
        let mask = dropout_mask(rng, n * d, keep, (1.0 / keep) as f32);
        let mask = Tensor::<B, 2>::from_data(TensorData::new(mask, [n, d]), &x.device());
        x * mask
    }
}

impl<B: NetOps> Net<B> {
    /// Logits for a batch of flattened images `[n, 784]`.
    pub fn forward(&self, x: Tensor<B, 2>, mut rng: Option<&mut ChaCha8Rng>) -> Tensor<B, 2> {
        let mut x = x;
        if self.shape.cnn {
            let n = x.dims()[0];
            let mut img: Tensor<B, 4> = x.reshape([n, 1, 28, 28]);
            for conv in &self.convs {
                let bias = conv.bias.as_ref().expect("convolutions have a bias").val();
                img = B::cnn_conv2d(img, conv.weight.val(), bias, self.shape.padding);
                // ReLU commutes with max pooling and is fused into it; others follow it.
                img = if self.shape.activation == Activation::Relu {
                    B::cnn_max_pool(img, self.shape.pool, true)
                } else {
                    self.act(B::cnn_max_pool(img, self.shape.pool, false))
                };
            }
            x = img.flatten(1, 3);
        }
        x = self.dropout(x, self.shape.input_dropout, &mut rng);
        self.layers_from(0, x, &mut rng)
    }

    /// [`Net::forward`] of the rows `idx` of `data` (the training set, off the graph): a plain
    /// classifier takes them straight into its first layer, without building the batch.
    pub fn forward_rows(
        &self,
        data: Tensor<B, 2>,
        idx: &[usize],
        mut rng: Option<&mut ChaCha8Rng>,
    ) -> Tensor<B, 2> {
        if self.shape.cnn || self.shape.input_dropout > 0.0 {
            return self.forward(super::net_ops::gather(data, idx), rng);
        }
        let first = &self.linears[0];
        let x = B::net_linear_rows(
            data,
            idx,
            first.weight.val(),
            first.bias.as_ref().map(Param::val),
        );
        let x = self.between(0, x, &mut rng);
        self.layers_from(1, x, &mut rng)
    }

    /// The linear layers from `start` on, with what comes between them.
    fn layers_from(
        &self,
        start: usize,
        mut x: Tensor<B, 2>,
        rng: &mut Option<&mut ChaCha8Rng>,
    ) -> Tensor<B, 2> {
        for (i, layer) in self.linears.iter().enumerate().skip(start) {
            x = B::net_linear(x, layer.weight.val(), layer.bias.as_ref().map(Param::val));
            x = self.between(i, x, rng);
        }
        x
    }

    /// What follows linear layer `i` (none after the last): batch norm, the activation and
    /// dropout.
    fn between(
        &self,
        i: usize,
        mut x: Tensor<B, 2>,
        rng: &mut Option<&mut ChaCha8Rng>,
    ) -> Tensor<B, 2> {
        if i + 1 < self.linears.len() {
            if let Some(bn) = self.norms.get(i) {
                x = bn.forward(x);
            }
            x = self.act(x);
            x = self.dropout(x, self.shape.dropout, rng);
        }
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn parallel_dropout_mask_is_the_sequential_stream() {
        for n in [10, 16 * 1024, 100_000, 100_000 + 1] {
            let mut a = ChaCha8Rng::seed_from_u64(7);
            let mut b = a.clone();
            // Start mid-stream, as after earlier batches, at an even word position (the
            // parallel path) and an odd one (the sequential path).
            for _ in 0..3 {
                let _: f64 = a.random();
                let _: f64 = b.random();
            }
            if n == 100_000 + 1 {
                let _: u32 = a.random();
                let _: u32 = b.random();
            }
            let fast = dropout_mask(&mut a, n, 0.8, 1.25);
            let slow: Vec<f32> = (0..n)
                .map(|_| if b.random::<f64>() < 0.8 { 1.25 } else { 0.0 })
                .collect();
            assert_eq!(fast, slow, "n {n}");
            assert_eq!(
                a.random::<u64>(),
                b.random::<u64>(),
                "stream position after n {n}"
            );
            let kept = fast.iter().filter(|&&m| m > 0.0).count() as f64 / n as f64;
            assert!((kept - 0.8).abs() < 0.1, "kept {kept}");
        }
    }
}
