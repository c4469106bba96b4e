//! Reference tests of the optimizers: a few steps of each against PyTorch's update rules,
//! written out on scalars independently of the tensor code.

use super::optim::{Optim, OptimState};
use burn::optim::SimpleOptimizer;
use burn::tensor::{Tensor, TensorData};

type F = burn::backend::Flex;

/// Runs `steps` updates of one optimizer on p = [1, -2] with gradients g_t = [0.5, 0.1] · t.
fn steps(kind: crate::config::OptimizerKind, extra: &str, steps: usize) -> Vec<f32> {
    let mut c: crate::config::OptimizerConfig = serde_json::from_str(&format!(
        "{{\"kind\": {}{extra}}}",
        serde_json::to_string(&kind).unwrap()
    ))
    .unwrap();
    c.learning_rate = Some(0.1);
    let o = Optim::new(&c);
    let dev = burn::backend::flex::FlexDevice;
    let mut p: Tensor<F, 1> = Tensor::from_data(TensorData::new(vec![1.0f32, -2.0], [2]), &dev);
    let mut state: Option<OptimState<F, 1>> = None;
    for t in 1..=steps {
        let g: Tensor<F, 1> = Tensor::from_data(
            TensorData::new(vec![0.5 * t as f32, 0.1 * t as f32], [2]),
            &dev,
        );
        let (np, ns) = <Optim as SimpleOptimizer<F>>::step(&o, 0.1, p, g, state);
        p = np;
        state = ns;
    }
    p.into_data().iter::<f32>().collect()
}

/// PyTorch's update rules on scalars, written out independently of the tensor code.
fn reference(kind: &str, wd: f64, momentum: f64, nesterov: bool, b2: f64, n: usize) -> Vec<f64> {
    let (lr, b1, eps, alpha) = (0.1, 0.9, 1e-8, 0.99);
    let mut out = vec![];
    for (mut p, g0) in [(1.0f64, 0.5f64), (-2.0, 0.1)] {
        let (mut m, mut v, mut buf) = (0.0, 0.0, None::<f64>);
        for t in 1..=n {
            let mut g = g0 * t as f64;
            let tf = t as i32;
            match kind {
                "sgd" => {
                    g += wd * p;
                    if momentum > 0.0 {
                        let b = buf.map_or(g, |b| momentum * b + g);
                        buf = Some(b);
                        g = if nesterov { g + momentum * b } else { b };
                    }
                    p -= lr * g;
                }
                "adam" | "adamw" => {
                    if kind == "adam" {
                        g += wd * p;
                    } else {
                        p *= 1.0 - lr * wd;
                    }
                    m = b1 * m + (1.0 - b1) * g;
                    v = b2 * v + (1.0 - b2) * g * g;
                    let mh = m / (1.0 - b1.powi(tf));
                    let vh = v / (1.0 - b2.powi(tf));
                    p -= lr * mh / (vh.sqrt() + eps);
                }
                "radam" => {
                    p *= 1.0 - lr * wd;
                    m = b1 * m + (1.0 - b1) * g;
                    v = b2 * v + (1.0 - b2) * g * g;
                    let mh = m / (1.0 - b1.powi(tf));
                    let rho_inf = 2.0 / (1.0 - b2) - 1.0;
                    let rho = rho_inf - 2.0 * t as f64 * b2.powi(tf) / (1.0 - b2.powi(tf));
                    if rho > 5.0 {
                        let l = (1.0 - b2.powi(tf)).sqrt() / (v.sqrt() + eps);
                        let r = ((rho - 4.0) * (rho - 2.0) * rho_inf
                            / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho))
                            .sqrt();
                        p -= lr * mh * r * l;
                    } else {
                        p -= lr * mh;
                    }
                }
                "rmsprop" => {
                    g += wd * p;
                    v = alpha * v + (1.0 - alpha) * g * g;
                    let s = g / (v.sqrt() + eps);
                    if momentum > 0.0 {
                        let b = buf.map_or(s, |b| momentum * b + s);
                        buf = Some(b);
                        p -= lr * b;
                    } else {
                        p -= lr * s;
                    }
                }
                _ => unreachable!(),
            }
        }
        out.push(p);
    }
    out
}

fn close(a: &[f32], b: &[f64]) {
    for (x, y) in a.iter().zip(b) {
        assert!(
            (f64::from(*x) - y).abs() < 1e-5 * (1.0 + y.abs()),
            "{a:?} vs {b:?}"
        );
    }
}

#[test]
fn optimizers_match_hand_computed_steps() {
    use crate::config::OptimizerKind::*;
    // By hand: SGD momentum 0.9, wd 0.01, lr 0.1, g1 = [0.5, 0.1], g2 = [1.0, 0.2].
    // step 1: g' = [0.51, 0.08] = buf; p1 = [0.949, -2.008]
    // step 2: g' = [1.00949, 0.17992]; buf = [1.46849, 0.25192]; p2 = [0.802151, -2.033192]
    close(
        &steps(Sgd, ", \"momentum\": 0.9, \"weight_decay\": 0.01", 2),
        &[0.802151, -2.033192],
    );
    // By hand: Adam's first step moves each weight by lr against the gradient's sign.
    close(&steps(Adam, "", 1), &[0.9, -2.1]);
    close(
        &steps(Sgd, "", 2),
        &reference("sgd", 0.0, 0.0, false, 0.999, 2),
    );
    close(
        &steps(
            Sgd,
            ", \"momentum\": 0.9, \"nesterov\": true, \"weight_decay\": 0.01",
            2,
        ),
        &reference("sgd", 0.01, 0.9, true, 0.999, 2),
    );
    close(
        &steps(Adam, ", \"weight_decay\": 0.1", 2),
        &reference("adam", 0.1, 0.0, false, 0.999, 2),
    );
    close(
        &steps(Adamw, ", \"weight_decay\": 0.1", 2),
        &reference("adamw", 0.1, 0.0, false, 0.999, 2),
    );
    // RAdam with beta2 0.9 crosses from the plain-momentum phase into the rectified one.
    close(
        &steps(Radam, ", \"weight_decay\": 0.1, \"betas\": [0.9, 0.9]", 12),
        &reference("radam", 0.1, 0.0, false, 0.9, 12),
    );
    close(
        &steps(Rmsprop, "", 2),
        &reference("rmsprop", 0.0, 0.0, false, 0.999, 2),
    );
    close(
        &steps(Rmsprop, ", \"momentum\": 0.5, \"weight_decay\": 0.01", 2),
        &reference("rmsprop", 0.01, 0.5, false, 0.999, 2),
    );
}

/// The fused Adam/AdamW step on Flex gives what burn's tensor ops give, over several steps of
/// a tensor large enough to be split across threads.
#[test]
fn fused_adam_matches_the_tensor_ops() {
    use super::optim::{FusedAdam, adam_tensors};
    use crate::config::OptimizerKind;
    let dev = burn::backend::flex::FlexDevice;
    let n = 40_000;
    let vals = |seed: u32| -> Tensor<F, 1> {
        let v = (0..n)
            .map(|i| ((i as u32).wrapping_mul(2_654_435_761) ^ seed) as f32 / u32::MAX as f32 - 0.5)
            .collect::<Vec<_>>();
        Tensor::from_data(TensorData::new(v, [n]), &dev)
    };
    for (kind, wd) in [(OptimizerKind::Adam, 0.01), (OptimizerKind::Adamw, 0.01)] {
        let o = Optim::new(&crate::config::OptimizerConfig {
            kind,
            weight_decay: wd,
            ..Default::default()
        });
        let (mut a, mut b) = ((vals(1), None, None), (vals(1), None, None));
        for t in 1..=3 {
            let s = o.adam_constants(0.01, t);
            let g = vals(t as u32 + 7);
            let (p, m, v) =
                F::fused_adam(a.0, g.clone(), a.1, a.2, &s).unwrap_or_else(|_| panic!("not fused"));
            a = (p, Some(m), Some(v));
            let (p, m, v) = adam_tensors(b.0, g, b.1, b.2, &s);
            b = (p, Some(m), Some(v));
        }
        let (x, y): (Vec<f32>, Vec<f32>) = (
            a.0.into_data().iter::<f32>().collect(),
            b.0.into_data().iter::<f32>().collect(),
        );
        let worst = x
            .iter()
            .zip(&y)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(
            worst <= 1e-6,
            "{kind:?}: fused and tensor updates differ by {worst}"
        );
    }
}
