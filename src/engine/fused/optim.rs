//! The optimizers of a fused group: the update rules of [`Optim`] (PyTorch's) on parameters with
//! a leading member axis, each member's hyperparameters as a `[K, 1, 1]` column, so that one
//! update serves K trials with different learning rates, momenta, betas or weight decays.

use crate::config::OptimizerKind;
use crate::engine::kernels::{self, Step};
use crate::engine::optim::{Optim, RadamStep};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

/// One parameter's moment buffers (absent before the first step, or when unused).
#[derive(Clone)]
struct Moments<B: Backend> {
    m: Option<Tensor<B, 3>>,
    v: Option<Tensor<B, 3>>,
}

/// The optimizer of K members that share one update rule (`kind`, Nesterov or not).
pub struct FusedOptim<B: Backend> {
    /// Each member's settings, in member order.
    members: Vec<Optim>,
    /// Updates applied so far; the same for every member (they step together).
    step: usize,
    state: Vec<Moments<B>>,
}

/// A `[K, 1, 1]` column of one value per member.
fn column<B: Backend>(values: Vec<f64>, device: &B::Device) -> Tensor<B, 3> {
    let k = values.len();
    let v: Vec<f32> = values.into_iter().map(|x| x as f32).collect();
    Tensor::from_data(TensorData::new(v, [k, 1, 1]), device)
}

/// `old · beta + new · (1 − beta)` (just `new · (1 − beta)` at first), as `Optim` computes it.
fn ema<B: Backend>(
    old: Option<Tensor<B, 3>>,
    new: Tensor<B, 3>,
    beta: &Tensor<B, 3>,
    one_minus: &Tensor<B, 3>,
) -> Tensor<B, 3> {
    match old {
        Some(o) => o * beta.clone() + new * one_minus.clone(),
        None => new * one_minus.clone(),
    }
}

impl<B: MemberSteps> FusedOptim<B> {
    /// The optimizer of members with these settings, for `params` parameters.
    pub fn new(members: Vec<Optim>, params: usize) -> Self {
        FusedOptim {
            members,
            step: 0,
            state: vec![Moments { m: None, v: None }; params],
        }
    }

    /// Keeps the members at `keep` (positions, in order), as the group shrinks.
    pub fn keep(&mut self, keep: &[usize], device: &B::Device) {
        let ids: Vec<i64> = keep.iter().map(|&i| i as i64).collect();
        let ids = Tensor::<B, 1, Int>::from_data(TensorData::new(ids, [keep.len()]), device);
        self.members = keep.iter().map(|&i| self.members[i].clone()).collect();
        for s in &mut self.state {
            s.m = s.m.take().map(|t| t.select(0, ids.clone()));
            s.v = s.v.take().map(|t| t.select(0, ids.clone()));
        }
    }

    /// A column of `f` of each member's settings.
    fn col(&self, device: &B::Device, f: impl Fn(&Optim) -> f64) -> Tensor<B, 3> {
        column(self.members.iter().map(f).collect(), device)
    }

    fn any(&self, f: impl Fn(&Optim) -> bool) -> bool {
        self.members.iter().any(f)
    }

    /// One update of every parameter, each member at its own learning rate `lrs[k]`.
    pub fn step(
        &mut self,
        lrs: &[f64],
        params: Vec<Tensor<B, 3>>,
        grads: Vec<Tensor<B, 3>>,
    ) -> Vec<Tensor<B, 3>> {
        self.update(lrs, params, grads, true)
    }

    /// [`FusedOptim::step`] through the column arithmetic alone: the GPU backends' path,
    /// which the tests also take on CPU.
    pub fn step_by_columns(
        &mut self,
        lrs: &[f64],
        params: Vec<Tensor<B, 3>>,
        grads: Vec<Tensor<B, 3>>,
    ) -> Vec<Tensor<B, 3>> {
        self.update(lrs, params, grads, false)
    }

    /// One update: member by member where the backend can and `kernels` allows, else (per
    /// parameter) through [`Rule`]'s columns.
    fn update(
        &mut self,
        lrs: &[f64],
        params: Vec<Tensor<B, 3>>,
        grads: Vec<Tensor<B, 3>>,
        kernels: bool,
    ) -> Vec<Tensor<B, 3>> {
        self.step += 1;
        let Some(first) = params.first() else {
            return params;
        };
        let device = first.device();
        let steps = if kernels {
            self.member_steps(lrs)
        } else {
            vec![]
        };
        let mut rule = None;
        let mut state = std::mem::take(&mut self.state);
        let out = params
            .into_iter()
            .zip(grads)
            .zip(&mut state)
            .map(|((p, g), s)| {
                let (m, v) = (s.m.take(), s.v.take());
                let tried = if kernels {
                    B::member_steps(p, g, (m, v), &steps)
                } else {
                    Err((p, g, m, v))
                };
                match tried {
                    Ok((p, m, v)) => {
                        (s.m, s.v) = (m, v);
                        p
                    }
                    Err((p, g, m, v)) => {
                        (s.m, s.v) = (m, v);
                        let rule = rule.get_or_insert_with(|| Rule::new(self, lrs, &device));
                        rule.apply(p, g, s)
                    }
                }
            })
            .collect();
        self.state = state;
        out
    }

    /// Each member's constants for this step, for backends that update member by member.
    fn member_steps(&self, lrs: &[f64]) -> Vec<Step> {
        let t = self.step;
        let f = |x: f64| x as f32;
        self.members
            .iter()
            .zip(lrs)
            .map(|(m, &lr)| match m.kind {
                OptimizerKind::Sgd => Step::Sgd {
                    lr: f(lr),
                    wd: f(m.weight_decay),
                    momentum: f(m.momentum),
                    nesterov: m.nesterov,
                },
                OptimizerKind::Adam | OptimizerKind::Adamw => Step::Adam(m.adam_constants(lr, t)),
                OptimizerKind::Radam => {
                    let (rectified, plain) = match m.radam_factors(lr, t) {
                        RadamStep::Rectified(x) => (Some(f(x)), None),
                        RadamStep::Plain(x) => (None, Some(f(x))),
                    };
                    Step::Radam {
                        scale: if m.weight_decay > 0.0 {
                            f(1.0 - lr * m.weight_decay)
                        } else {
                            1.0
                        },
                        b1: (f(m.beta1), f(1.0 - m.beta1)),
                        b2: (f(m.beta2), f(1.0 - m.beta2)),
                        eps: f(m.eps),
                        rectified,
                        plain,
                    }
                }
                OptimizerKind::Rmsprop => Step::Rmsprop {
                    lr: f(lr),
                    wd: f(m.weight_decay),
                    alpha: (f(m.alpha), f(1.0 - m.alpha)),
                    eps: f(m.eps),
                    momentum: f(m.momentum),
                },
            })
            .collect()
    }
}

/// A parameter, its gradient and its two moments, handed back when a backend has no
/// member-by-member update.
type Parts<B> = (
    Tensor<B, 3>,
    Tensor<B, 3>,
    Option<Tensor<B, 3>>,
    Option<Tensor<B, 3>>,
);

/// The update of each member's slice of a stacked parameter in one pass, where the backend can
/// (Flex, through [`kernels::step`]); elsewhere [`Rule`]'s column arithmetic does it.
pub trait MemberSteps: Backend {
    /// The updated parameter and the moments the steps use, or the inputs back.
    #[allow(clippy::type_complexity)]
    fn member_steps(
        p: Tensor<Self, 3>,
        g: Tensor<Self, 3>,
        (m, v): (Option<Tensor<Self, 3>>, Option<Tensor<Self, 3>>),
        _steps: &[Step],
    ) -> Result<Updated<Self>, Parts<Self>> {
        Err((p, g, m, v))
    }
}

/// A parameter after its update, and its moments where used.
type Updated<B> = (Tensor<B, 3>, Option<Tensor<B, 3>>, Option<Tensor<B, 3>>);

#[cfg(feature = "cuda")]
impl MemberSteps for burn::backend::Cuda {}
#[cfg(feature = "wgpu")]
impl MemberSteps for burn::backend::Wgpu {}

impl MemberSteps for burn::backend::Flex {
    fn member_steps(
        p: Tensor<Self, 3>,
        g: Tensor<Self, 3>,
        (m, v): (Option<Tensor<Self, 3>>, Option<Tensor<Self, 3>>),
        steps: &[Step],
    ) -> Result<Updated<Self>, Parts<Self>> {
        use burn::backend::flex::FlexTensor;
        use burn::tensor::{DType, TensorPrimitive};
        // A moment no member uses is neither allocated nor read (plain SGD's step then reads
        // the weights and gradients alone).
        let (uses_m, uses_v) =
            (steps.iter().map(Step::moments)).fold((false, false), |a, b| (a.0 || b.0, a.1 || b.1));
        let (had_m, had_v) = (m.is_some() || uses_m, v.is_some() || uses_v);
        let zeros = |t: Option<Tensor<Self, 3>>, used: bool| match t {
            Some(t) => t,
            None if used => Tensor::<Self, 3>::zeros(p.shape(), &p.device()),
            None => Tensor::<Self, 3>::empty([0, 0, 0], &p.device()),
        };
        let (m, v) = (zeros(m, uses_m), zeros(v, uses_v));
        let prim = |t: Tensor<Self, 3>| t.into_primitive().tensor();
        let (mut pp, gp, mut mp, mut vp) = (prim(p), prim(g), prim(m), prim(v));
        // f32 values filling their whole storage in order (a parameter and its gradient do).
        let whole = |t: &FlexTensor| {
            t.dtype() == DType::F32
                && t.as_slice::<f32>().map(<[f32]>::len) == Some(t.storage::<f32>().len())
        };
        let wrap = |t| Tensor::<Self, 3>::from_primitive(TensorPrimitive::Float(t));
        let k = steps.len();
        if ![&pp, &gp, &mp, &vp].into_iter().all(whole) || k == 0 {
            let (m, v) = (had_m.then(|| wrap(mp)), had_v.then(|| wrap(vp)));
            return Err((wrap(pp), wrap(gp), m, v));
        }
        use rayon::prelude::*;
        let len = gp.storage::<f32>().len() / k;
        let (ps, gs) = (pp.storage_mut::<f32>(), gp.storage::<f32>());
        // Each member's slice of a moment, or an empty one where it is unused.
        fn slices(s: &mut [f32], len: usize, k: usize) -> Vec<&mut [f32]> {
            match s.is_empty() {
                true => (0..k).map(|_| <&mut [f32]>::default()).collect(),
                false => s.chunks_mut(len).collect(),
            }
        }
        let ms = slices(mp.storage_mut::<f32>(), len, k);
        let vs = slices(vp.storage_mut::<f32>(), len, k);
        ps.par_chunks_mut(len)
            .zip(gs.par_chunks(len))
            .zip(ms.into_par_iter().zip(vs))
            .zip(steps)
            .for_each(|(((p, g), (m, v)), s)| kernels::step(p, g, m, v, s));
        let kept = |t: FlexTensor, used: bool| used.then(|| wrap(t));
        Ok((wrap(pp), kept(mp, uses_m), kept(vp, uses_v)))
    }
}

/// The columns of one step's update, computed once for all parameters.
struct Rule<B: Backend> {
    kind: OptimizerKind,
    nesterov: bool,
    lr: Tensor<B, 3>,
    /// Weight decay added to the gradient (sgd, adam, rmsprop), when any member has one.
    coupled: Option<Tensor<B, 3>>,
    /// Factor of the weights before the update (adamw, radam), when any member decays.
    decoupled: Option<Tensor<B, 3>>,
    /// sgd and rmsprop momentum, when any member has one.
    momentum: Option<Tensor<B, 3>>,
    /// The moments' decay rates and their complements (Adam family; rmsprop's alpha as b2).
    b1: Option<(Tensor<B, 3>, Tensor<B, 3>)>,
    b2: Option<(Tensor<B, 3>, Tensor<B, 3>)>,
    eps: Tensor<B, 3>,
    /// Adam: lr / bias correction 1 and bias correction 2.
    adam: Option<(Tensor<B, 3>, Tensor<B, 3>)>,
    /// RAdam: the rectified step's factor and the unrectified one (zero where the other
    /// applies), each `None` when no member takes that branch.
    radam: (Option<Tensor<B, 3>>, Option<Tensor<B, 3>>),
}

impl<B: MemberSteps> Rule<B> {
    fn new(o: &FusedOptim<B>, lrs: &[f64], device: &B::Device) -> Self {
        let kind = o.members[0].kind;
        let t = o.step;
        let coupled_kind = matches!(
            kind,
            OptimizerKind::Sgd | OptimizerKind::Adam | OptimizerKind::Rmsprop
        );
        let decays = o.any(|m| m.weight_decay > 0.0);
        let with_lr = |f: &dyn Fn(&Optim, f64) -> f64| {
            column::<B>(
                o.members.iter().zip(lrs).map(|(m, &lr)| f(m, lr)).collect(),
                device,
            )
        };
        let pair = |f: fn(&Optim) -> f64| (o.col(device, f), o.col(device, move |m| 1.0 - f(m)));
        let adam_like = matches!(kind, OptimizerKind::Adam | OptimizerKind::Adamw);
        let radam = if kind == OptimizerKind::Radam {
            let rect = |m: &Optim, lr: f64| match m.radam_factors(lr, t) {
                RadamStep::Rectified(f) => (f, 0.0),
                RadamStep::Plain(f) => (0.0, f),
            };
            let rect_on = o
                .members
                .iter()
                .zip(lrs)
                .any(|(m, &lr)| rect(m, lr).0 != 0.0);
            let plain_on = o
                .members
                .iter()
                .zip(lrs)
                .any(|(m, &lr)| rect(m, lr).1 != 0.0);
            (
                rect_on.then(|| with_lr(&|m, lr| rect(m, lr).0)),
                plain_on.then(|| with_lr(&|m, lr| rect(m, lr).1)),
            )
        } else {
            (None, None)
        };
        Rule {
            kind,
            nesterov: o.members[0].nesterov,
            lr: column(lrs.to_vec(), device),
            coupled: (coupled_kind && decays).then(|| o.col(device, |m| m.weight_decay)),
            decoupled: (!coupled_kind && decays)
                .then(|| with_lr(&|m, lr| 1.0 - lr * m.weight_decay)),
            momentum: o
                .any(|m| m.momentum > 0.0)
                .then(|| o.col(device, |m| m.momentum)),
            b1: matches!(
                kind,
                OptimizerKind::Adam | OptimizerKind::Adamw | OptimizerKind::Radam
            )
            .then(|| pair(|m| m.beta1)),
            b2: match kind {
                OptimizerKind::Sgd => None,
                OptimizerKind::Rmsprop => Some(pair(|m| m.alpha)),
                _ => Some(pair(|m| m.beta2)),
            },
            eps: o.col(device, |m| m.eps),
            adam: adam_like.then(|| {
                (
                    with_lr(&|m, lr| f64::from(m.adam_constants(lr, t).lr_over_bc1)),
                    o.col(device, |m| f64::from(m.adam_constants(0.0, t).bc2)),
                )
            }),
            radam,
        }
    }

    /// The update of one parameter `p` with gradient `g` and moments `s`.
    fn apply(&self, p: Tensor<B, 3>, g: Tensor<B, 3>, s: &mut Moments<B>) -> Tensor<B, 3> {
        let g = match &self.coupled {
            Some(wd) => g + p.clone() * wd.clone(),
            None => g,
        };
        let p = match &self.decoupled {
            Some(f) => p * f.clone(),
            None => p,
        };
        let second = |s: &mut Moments<B>, g: &Tensor<B, 3>| {
            let (b2, c2) = self.b2.as_ref().expect("a second moment");
            let v = ema(s.v.take(), g.clone().square(), b2, c2);
            s.v = Some(v.clone());
            v
        };
        match self.kind {
            OptimizerKind::Sgd => {
                let Some(mom) = &self.momentum else {
                    return p - g * self.lr.clone();
                };
                let buf = match s.m.take() {
                    Some(b) => b * mom.clone() + g.clone(),
                    None => g.clone(),
                };
                s.m = Some(buf.clone());
                let d = if self.nesterov {
                    g + buf * mom.clone()
                } else {
                    buf
                };
                p - d * self.lr.clone()
            }
            OptimizerKind::Adam | OptimizerKind::Adamw => {
                let (b1, c1) = self.b1.as_ref().expect("adam's betas");
                let (lr_over_bc1, bc2) = self.adam.as_ref().expect("adam's constants");
                let m = ema(s.m.take(), g.clone(), b1, c1);
                s.m = Some(m.clone());
                let v = second(s, &g);
                let denom = (v / bc2.clone()).sqrt() + self.eps.clone();
                p - m.div(denom) * lr_over_bc1.clone()
            }
            OptimizerKind::Radam => {
                let (b1, c1) = self.b1.as_ref().expect("radam's betas");
                let m = ema(s.m.take(), g.clone(), b1, c1);
                s.m = Some(m.clone());
                let v = second(s, &g);
                let mut p = p;
                if let Some(rect) = &self.radam.0 {
                    let denom = v.sqrt() + self.eps.clone();
                    p = p - m.clone().div(denom) * rect.clone();
                }
                if let Some(plain) = &self.radam.1 {
                    p = p - m * plain.clone();
                }
                p
            }
            OptimizerKind::Rmsprop => {
                let v = second(s, &g);
                let step = g.div(v.sqrt() + self.eps.clone());
                let Some(mom) = &self.momentum else {
                    return p - step * self.lr.clone();
                };
                let buf = match s.m.take() {
                    Some(b) => b * mom.clone() + step,
                    None => step,
                };
                s.m = Some(buf.clone());
                p - buf * self.lr.clone()
            }
        }
    }
}
