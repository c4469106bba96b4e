//! The optimizers, written once as a burn `SimpleOptimizer` with PyTorch's update rules (burn
//! has no RAdam, and its SGD/Adam differ in details such as eps placement and decay coupling).

use crate::config::{OptimizerConfig, OptimizerKind};
use burn::optim::SimpleOptimizer;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::record::Record;
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};

/// One trial's optimizer (sgd, adam, adamw, radam or rmsprop) with PyTorch's update rules; the
/// learning rate comes with each step.
#[derive(Debug, Clone)]
pub struct Optim {
    /// Which update rule.
    pub kind: OptimizerKind,
    /// Momentum factor for sgd and rmsprop; 0 turns momentum off.
    pub momentum: f64,
    /// Nesterov momentum (sgd only).
    pub nesterov: bool,
    /// Weight decay factor: added to the gradient (L2) for sgd, adam and rmsprop, decoupled
    /// (weights × (1 − lr × decay)) for adamw and radam; 0 turns it off.
    pub weight_decay: f64,
    /// Decay rate of the running mean of gradients (Adam family).
    pub beta1: f64,
    /// Decay rate of the running mean of squared gradients (Adam family).
    pub beta2: f64,
    /// Added to the square-root denominator of the adaptive optimizers, for numerical safety.
    pub eps: f64,
    /// Decay rate of rmsprop's running mean of squared gradients.
    pub alpha: f64,
}

/// Per-parameter state: the step count and up to two moment buffers.
#[derive(Record, Clone)]
pub struct OptimState<B: Backend, const D: usize> {
    /// Updates applied to this parameter so far, the current one included (1 after the first).
    pub step: usize,
    /// Running mean of gradients (Adam family) or the momentum buffer (sgd, rmsprop); else `None`.
    pub m: Option<Tensor<B, D>>,
    /// Running mean of squared gradients (Adam family, rmsprop); `None` when unused.
    pub v: Option<Tensor<B, D>>,
}

impl Optim {
    /// Takes the settings of a trial's optimizer config (all but the learning rate).
    pub fn new(c: &OptimizerConfig) -> Self {
        Optim {
            kind: c.kind,
            momentum: c.momentum,
            nesterov: c.nesterov,
            weight_decay: c.weight_decay,
            beta1: c.betas[0],
            beta2: c.betas[1],
            eps: c.eps,
            alpha: c.alpha,
        }
    }

    /// Wraps it as a burn `Optimizer` for module `M` on autodiff backend `B`.
    pub fn into_adaptor<B: AutodiffBackend, M: burn::module::AutodiffModule<B>>(
        self,
    ) -> OptimizerAdaptor<Optim, M, B> {
        OptimizerAdaptor::from(self)
    }
}

impl<B: Backend> SimpleOptimizer<B> for Optim {
    type State<const D: usize> = OptimState<B, D>;

    fn step<const D: usize>(
        &self,
        lr: f64,
        p: Tensor<B, D>,
        mut g: Tensor<B, D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<B, D>, Option<Self::State<D>>) {
        let (t, m, v) = match state {
            Some(s) => (s.step + 1, s.m, s.v),
            None => (1, None, None),
        };
        let wd = self.weight_decay;
        let coupled = matches!(
            self.kind,
            OptimizerKind::Sgd | OptimizerKind::Adam | OptimizerKind::Rmsprop
        );
        let mut p = p;
        if wd > 0.0 {
            if coupled {
                g = g + p.clone().mul_scalar(wd);
            } else {
                p = p.mul_scalar(1.0 - lr * wd);
            }
        }
        let ema = |old: Option<Tensor<B, D>>, new: Tensor<B, D>, beta: f64| match old {
            Some(o) => o.mul_scalar(beta) + new.mul_scalar(1.0 - beta),
            None => new.mul_scalar(1.0 - beta),
        };
        let (b1, b2) = (self.beta1, self.beta2);
        let (p, m, v) = match self.kind {
            OptimizerKind::Sgd => {
                if self.momentum > 0.0 {
                    let buf = match m {
                        Some(b) => b.mul_scalar(self.momentum) + g.clone(),
                        None => g.clone(),
                    };
                    let d = if self.nesterov {
                        g + buf.clone().mul_scalar(self.momentum)
                    } else {
                        buf.clone()
                    };
                    (p - d.mul_scalar(lr), Some(buf), None)
                } else {
                    (p - g.mul_scalar(lr), None, None)
                }
            }
            OptimizerKind::Adam | OptimizerKind::Adamw => {
                let m = ema(m, g.clone(), b1);
                let v = ema(v, g.square(), b2);
                let bc1 = 1.0 - b1.powi(t as i32);
                let bc2 = 1.0 - b2.powi(t as i32);
                let denom = v.clone().div_scalar(bc2).sqrt().add_scalar(self.eps);
                let p = p - m.clone().div(denom).mul_scalar(lr / bc1);
                (p, Some(m), Some(v))
            }
            OptimizerKind::Radam => {
                let m = ema(m, g.clone(), b1);
                let v = ema(v, g.square(), b2);
                let bc1 = 1.0 - b1.powi(t as i32);
                let bc2 = 1.0 - b2.powi(t as i32);
                let rho_inf = 2.0 / (1.0 - b2) - 1.0;
                let rho_t = rho_inf - 2.0 * t as f64 * b2.powi(t as i32) / bc2;
                let p = if rho_t > 5.0 {
                    let rect = ((rho_t - 4.0) * (rho_t - 2.0) * rho_inf
                        / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t))
                        .sqrt();
                    let denom = v.clone().sqrt().add_scalar(self.eps);
                    p - m
                        .clone()
                        .div(denom)
                        .mul_scalar(lr / bc1 * rect * bc2.sqrt())
                } else {
                    p - m.clone().mul_scalar(lr / bc1)
                };
                (p, Some(m), Some(v))
            }
            OptimizerKind::Rmsprop => {
                let v = ema(v, g.clone().square(), self.alpha);
                let step = g.div(v.clone().sqrt().add_scalar(self.eps));
                if self.momentum > 0.0 {
                    let buf = match m {
                        Some(b) => b.mul_scalar(self.momentum) + step,
                        None => step,
                    };
                    (p - buf.clone().mul_scalar(lr), Some(buf), Some(v))
                } else {
                    (p - step.mul_scalar(lr), None, Some(v))
                }
            }
        };
        (p, Some(OptimState { step: t, m, v }))
    }

    fn to_device<const D: usize>(s: Self::State<D>, device: &B::Device) -> Self::State<D> {
        OptimState {
            step: s.step,
            m: s.m.map(|t| t.to_device(device)),
            v: s.v.map(|t| t.to_device(device)),
        }
    }
}
