//! The optimizers, written once as a burn `SimpleOptimizer` with PyTorch's update rules (burn
//! has no RAdam, and its SGD/Adam differ in details such as eps placement and decay coupling).

use super::kernels::AdamStep;
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
    ) -> OptimizerAdaptor<Optim, M, B>
    where
        B::InnerBackend: FusedAdam,
    {
        OptimizerAdaptor::from(self)
    }
}

impl Optim {
    /// Whether weight decay is added to the gradient (L2: sgd, adam, rmsprop) rather than
    /// applied to the weights (decoupled: adamw, radam).
    fn decay_is_coupled(&self) -> bool {
        matches!(
            self.kind,
            OptimizerKind::Sgd | OptimizerKind::Adam | OptimizerKind::Rmsprop
        )
    }

    /// The constants of Adam or AdamW's `t`-th step at learning rate `lr`.
    pub(super) fn adam_constants(&self, lr: f64, t: usize) -> AdamStep {
        let wd = self.weight_decay;
        let coupled = self.decay_is_coupled();
        AdamStep {
            lr_over_bc1: (lr / (1.0 - self.beta1.powi(t as i32))) as f32,
            beta1: self.beta1 as f32,
            beta2: self.beta2 as f32,
            c1: (1.0 - self.beta1) as f32,
            c2: (1.0 - self.beta2) as f32,
            bc2: (1.0 - self.beta2.powi(t as i32)) as f32,
            eps: self.eps as f32,
            coupled_decay: if coupled { wd as f32 } else { 0.0 },
            decoupled_scale: if coupled { 1.0 } else { (1.0 - lr * wd) as f32 },
        }
    }
}

/// RAdam's `t`-th step: once the variance estimate is trusted (ρ_t > 5), `m / (√v + eps)`
/// times the factor; before, `m` alone times the factor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RadamStep {
    /// lr / bias correction 1 × rectification × √(bias correction 2).
    Rectified(f64),
    /// lr / bias correction 1.
    Plain(f64),
}

impl Optim {
    /// RAdam's step at learning rate `lr`, update `t` (1-based).
    pub fn radam_factors(&self, lr: f64, t: usize) -> RadamStep {
        let (b1, b2) = (self.beta1, self.beta2);
        let bc1 = 1.0 - b1.powi(t as i32);
        let bc2 = 1.0 - b2.powi(t as i32);
        let rho_inf = 2.0 / (1.0 - b2) - 1.0;
        let rho_t = rho_inf - 2.0 * t as f64 * b2.powi(t as i32) / bc2;
        if rho_t > 5.0 {
            let rect = ((rho_t - 4.0) * (rho_t - 2.0) * rho_inf
                / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t))
                .sqrt();
            RadamStep::Rectified(lr / bc1 * rect * bc2.sqrt())
        } else {
            RadamStep::Plain(lr / bc1)
        }
    }
}

/// A parameter, its gradient and its two moments (absent before the first step).
type AdamParts<B, const D: usize> = (
    Tensor<B, D>,
    Tensor<B, D>,
    Option<Tensor<B, D>>,
    Option<Tensor<B, D>>,
);

/// The Adam update in one pass where the backend can (Flex, through
/// [`super::kernels::adam_step`]); elsewhere burn's tensor ops do it.
pub trait FusedAdam: Backend {
    /// The updated parameter and moments, or the inputs back when this backend (or this
    /// tensor's layout) has no fused update.
    #[allow(clippy::type_complexity)]
    fn fused_adam<const D: usize>(
        p: Tensor<Self, D>,
        g: Tensor<Self, D>,
        m: Option<Tensor<Self, D>>,
        v: Option<Tensor<Self, D>>,
        _s: &AdamStep,
    ) -> Result<(Tensor<Self, D>, Tensor<Self, D>, Tensor<Self, D>), AdamParts<Self, D>> {
        Err((p, g, m, v))
    }
}

#[cfg(feature = "cuda")]
impl FusedAdam for burn::backend::Cuda {}
#[cfg(feature = "wgpu")]
impl FusedAdam for burn::backend::Wgpu {}

impl FusedAdam for burn::backend::Flex {
    fn fused_adam<const D: usize>(
        p: Tensor<Self, D>,
        g: Tensor<Self, D>,
        m: Option<Tensor<Self, D>>,
        v: Option<Tensor<Self, D>>,
        s: &AdamStep,
    ) -> Result<(Tensor<Self, D>, Tensor<Self, D>, Tensor<Self, D>), AdamParts<Self, D>> {
        use burn::backend::flex::FlexTensor;
        use burn::tensor::{DType, TensorPrimitive};
        let zeros = || Tensor::<Self, D>::zeros(p.shape(), &p.device());
        let (m, v) = (m.unwrap_or_else(zeros), v.unwrap_or_else(zeros));
        let prim = |t: Tensor<Self, D>| t.into_primitive().tensor();
        let (mut pp, gp, mut mp, mut vp) = (prim(p), prim(g), prim(m), prim(v));
        // f32 values filling their whole storage in order (a parameter and its gradient do).
        let whole = |t: &FlexTensor| {
            t.dtype() == DType::F32
                && t.as_slice::<f32>().map(<[f32]>::len) == Some(t.storage::<f32>().len())
        };
        let wrap = |t| Tensor::<Self, D>::from_primitive(TensorPrimitive::Float(t));
        if ![&pp, &gp, &mp, &vp].into_iter().all(whole) {
            return Err((wrap(pp), wrap(gp), Some(wrap(mp)), Some(wrap(vp))));
        }
        super::kernels::adam_step(
            pp.storage_mut(),
            gp.storage(),
            mp.storage_mut(),
            vp.storage_mut(),
            s,
        );
        Ok((wrap(pp), wrap(mp), wrap(vp)))
    }
}

/// Adam through burn's tensor ops, in the order of the fused kernel.
pub(super) fn adam_tensors<B: Backend, const D: usize>(
    p: Tensor<B, D>,
    g: Tensor<B, D>,
    m: Option<Tensor<B, D>>,
    v: Option<Tensor<B, D>>,
    s: &AdamStep,
) -> (Tensor<B, D>, Tensor<B, D>, Tensor<B, D>) {
    let f = f64::from;
    let g = if s.coupled_decay != 0.0 {
        g + p.clone().mul_scalar(f(s.coupled_decay))
    } else {
        g
    };
    let p = if s.decoupled_scale != 1.0 {
        p.mul_scalar(f(s.decoupled_scale))
    } else {
        p
    };
    let ema = |old: Option<Tensor<B, D>>, new: Tensor<B, D>, beta: f32, c: f32| match old {
        Some(o) => o.mul_scalar(f(beta)) + new.mul_scalar(f(c)),
        None => new.mul_scalar(f(c)),
    };
    let m = ema(m, g.clone(), s.beta1, s.c1);
    let v = ema(v, g.square(), s.beta2, s.c2);
    let denom = v.clone().div_scalar(f(s.bc2)).sqrt().add_scalar(f(s.eps));
    let p = p - m.clone().div(denom).mul_scalar(f(s.lr_over_bc1));
    (p, m, v)
}

impl<B: FusedAdam> SimpleOptimizer<B> for Optim {
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
        let coupled = self.decay_is_coupled();
        if matches!(self.kind, OptimizerKind::Adam | OptimizerKind::Adamw) {
            let s = self.adam_constants(lr, t);
            let (p, m, v) = B::fused_adam(p, g, m, v, &s)
                .unwrap_or_else(|(p, g, m, v)| adam_tensors(p, g, m, v, &s));
            return (
                p,
                Some(OptimState {
                    step: t,
                    m: Some(m),
                    v: Some(v),
                }),
            );
        }
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
            OptimizerKind::Adam | OptimizerKind::Adamw => unreachable!("updated above"),
            OptimizerKind::Radam => {
                let m = ema(m, g.clone(), b1);
                let v = ema(v, g.square(), b2);
                let p = match self.radam_factors(lr, t) {
                    RadamStep::Rectified(f) => {
                        let denom = v.clone().sqrt().add_scalar(self.eps);
                        p - m.clone().div(denom).mul_scalar(f)
                    }
                    RadamStep::Plain(f) => p - m.clone().mul_scalar(f),
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
