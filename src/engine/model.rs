//! The networks (linear, mlp, cnn) as one burn module, and their initialisation from the
//! trial's own generator (never the backend's process-wide one, so parallel trials reproduce).

use super::cnn_ops::CnnOps;
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

/// The non-learned settings of a network.
#[derive(Debug, Clone)]
pub struct Shape {
    pub activation: Activation,
    pub dropout: f64,
    pub input_dropout: f64,
    pub cnn: bool,
    /// Convolution padding and pooling window (CNN only).
    pub padding: usize,
    pub pool: usize,
}

#[derive(Module, Debug)]
pub struct Net<B: Backend> {
    pub convs: Vec<Conv2d<B>>,
    /// Hidden layers then the output layer.
    pub linears: Vec<Linear<B>>,
    /// One per hidden layer when batch norm is on.
    pub norms: Vec<BatchNorm<B>>,
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

impl<B: Backend> Net<B> {
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
        let scale = (1.0 / keep) as f32;
        let mask: Vec<f32> = (0..n * d)
            .map(|_| {
                if rng.random::<f64>() < keep {
                    scale
                } else {
                    0.0
                }
            })
            .collect();
        let mask = Tensor::<B, 2>::from_data(TensorData::new(mask, [n, d]), &x.device());
        x * mask
    }
}

impl<B: CnnOps> Net<B> {
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
        let last = self.linears.len() - 1;
        for (i, layer) in self.linears.iter().enumerate() {
            x = layer.forward(x);
            if i < last {
                if let Some(bn) = self.norms.get(i) {
                    x = bn.forward(x);
                }
                x = self.act(x);
                x = self.dropout(x, self.shape.dropout, &mut rng);
            }
        }
        x
    }
}
