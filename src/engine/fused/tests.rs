//! Fused against unfused: each member of a fused group must end as the same trial trained
//! alone (its streams, its hyperparameters), and leave the group without disturbing the others.

use super::optim::FusedOptim;
use crate::engine::optim::{Optim, OptimState};
use crate::engine::{BurnEngine, Device, Engine, Status, Trial, TrialContext, TrialResult};
use crate::spec::Spec;
use burn::optim::SimpleOptimizer;
use burn::tensor::{Tensor, TensorData};
use std::sync::atomic::{AtomicBool, Ordering};

type F = burn::backend::Flex;

thread_local! {
    /// Lanes and wave size a test imposes on CPU groups (else they follow the machine).
    pub static LANES: std::cell::Cell<Option<(usize, usize)>> = const { std::cell::Cell::new(None) };
}

fn trials(yaml: &str) -> Vec<Trial> {
    crate::plan::expand(&Spec::parse("t.yaml", yaml).unwrap())
        .unwrap()
        .trials
}

fn ctx<'a>(
    progress: &'a mut (dyn FnMut(crate::engine::Progress) + Send),
    cancel: &'a AtomicBool,
) -> TrialContext<'a> {
    TrialContext {
        device: Device::Cpu,
        threads: crate::cores::Threads::fixed(2),
        progress,
        cancel,
        stop_now: &crate::engine::NEVER,
        checkpoint: None,
    }
}

fn alone(t: &Trial) -> TrialResult {
    let cancel = AtomicBool::new(false);
    BurnEngine.run(t, &mut ctx(&mut |_| {}, &cancel)).unwrap()
}

/// The group's results in member order; `stop_after[i]` cancels member i once it reported
/// that many epochs (as a pruning judge does).
fn fused(ts: &[Trial], stop_after: &[Option<usize>]) -> Vec<TrialResult> {
    let cancels: Vec<AtomicBool> = ts.iter().map(|_| AtomicBool::new(false)).collect();
    let mut progress: Vec<Box<dyn FnMut(crate::engine::Progress) + Send + '_>> = ts
        .iter()
        .enumerate()
        .map(|(i, _)| {
            let (cancel, limit) = (&cancels[i], stop_after.get(i).copied().flatten());
            let mut seen = 0;
            Box::new(move |_| {
                seen += 1;
                if limit == Some(seen) {
                    cancel.store(true, Ordering::SeqCst);
                }
            }) as Box<dyn FnMut(crate::engine::Progress) + Send + '_>
        })
        .collect();
    let mut ctxs: Vec<TrialContext<'_>> = progress
        .iter_mut()
        .zip(&cancels)
        .map(|(p, c)| ctx(&mut **p, c))
        .collect();
    let mut out: Vec<Option<TrialResult>> = vec![None; ts.len()];
    BurnEngine.run_group(ts, &mut ctxs, &mut |i, r| out[i] = Some(r.unwrap()));
    out.into_iter()
        .map(|r| r.expect("every member ends"))
        .collect()
}

/// Each member's status, epochs and test accuracy against the same trial alone.
fn assert_members_match(ts: &[Trial], got: &[TrialResult]) {
    for (t, f) in ts.iter().zip(got) {
        let a = alone(t);
        assert_eq!(
            f.status, a.status,
            "{}: {:?} / {:?}",
            t.name, f.notes, a.notes
        );
        assert_eq!(f.epochs.len(), a.epochs.len(), "{}", t.name);
        let (fa, aa) = (
            f.test_accuracy.unwrap_or(0.0),
            a.test_accuracy.unwrap_or(0.0),
        );
        assert!(
            (fa - aa).abs() <= 0.005,
            "{}: fused {fa} alone {aa}",
            t.name
        );
        for (fe, ae) in f.epochs.iter().zip(&a.epochs) {
            let close =
                (fe.train_loss - ae.train_loss).abs() <= 1e-3 * ae.train_loss.abs().max(1.0);
            assert!(
                close || !ae.train_loss.is_finite(),
                "{}: epoch {} loss {} vs {}",
                t.name,
                fe.epoch,
                fe.train_loss,
                ae.train_loss
            );
        }
        let group = f.fused.as_ref().expect("a fused member says so");
        assert!(group.members.contains(&t.id), "{group:?}");
        assert_eq!(group.size, group.members.len());
    }
}

#[test]
fn linear_mlp_with_dropout_and_cnn_members_match_their_trials_alone() {
    let models = [
        "{kind: linear, input_dropout: 0.2}",
        "{kind: mlp, hidden: [32, 16], dropout: 0.3}",
        "{kind: cnn, channels: [4], kernel: 5, pool: 2, hidden: [16]}",
    ];
    for model in models {
        let ts = trials(&format!(
            "name: t\ndata: {{train_size: 300, split: {{official: true, val: 0.1}}}}\nfixed:\n  model: {model}\n  optimizer: {{kind: sgd, learning_rate: 0.05}}\n  batch_size: 30\n  epochs: 2\ngrid:\n  optimizer.learning_rate: [0.1, 0.02]\nseeds: [1, 2]\n"
        ));
        assert_members_match(&ts, &fused(&ts, &[]));
    }
}

#[test]
fn every_optimizer_and_schedule_matches_alone() {
    let optimizers = [
        "{kind: sgd, momentum: 0.9, weight_decay: 0.001}",
        "{kind: sgd, momentum: 0.9, nesterov: true}",
        "{kind: adam, weight_decay: 0.01}",
        "{kind: adamw, weight_decay: 0.01}",
        "{kind: radam}",
        "{kind: rmsprop, momentum: 0.5}",
    ];
    for o in optimizers {
        let ts = trials(&format!(
            "name: t\ndata: {{train_size: 200}}\nfixed:\n  model: {{kind: mlp, hidden: [16]}}\n  optimizer: {o}\n  schedule: {{kind: cosine}}\n  batch_size: 20\n  epochs: 2\n  augment: {{rotate: 10}}\n  log_steps: true\ngrid:\n  optimizer.learning_rate: [0.01, 0.001]\n  seed: [3, 4]\n"
        ));
        let got = fused(&ts, &[]);
        assert_members_match(&ts, &got);
        for (t, f) in ts.iter().zip(&got) {
            assert_eq!(f.step_losses.len(), alone(t).step_losses.len(), "{o}");
        }
    }
}

#[test]
fn a_diverging_member_ends_alone_and_the_others_are_undisturbed() {
    let ts = trials(
        "name: t\ndata: {train_size: 200}\nfixed:\n  model: {kind: mlp, hidden: [16]}\n  batch_size: 20\n  epochs: 4\ngrid:\n  optimizer.learning_rate: [1.0e30, 0.05, 0.01]\n",
    );
    let got = fused(&ts, &[]);
    assert_eq!(got[0].status, Status::Diverged);
    assert!(got[0].epochs.len() < 4);
    assert!(
        got[1..]
            .iter()
            .all(|r| r.status == Status::Ok && r.epochs.len() == 4)
    );
    assert_members_match(&ts, &got);
}

#[test]
fn early_stopping_and_a_stopped_member_leave_the_group() {
    let ts = trials(
        "name: t\ndata: {split: {official: true, val: 0.2}, train_size: 300}\nfixed:\n  optimizer: {kind: sgd}\n  batch_size: 10\n  epochs: 12\n  early_stopping: {patience: 2, min_delta: 0.0}\n  restore_best: true\ngrid:\n  optimizer.learning_rate: [0.5, 0.001, 0.01]\n",
    );
    // Member 2 is stopped after its third epoch, as a pruner would.
    let got = fused(&ts, &[None, None, Some(3)]);
    assert_eq!(got[0].status, Status::StoppedEarly, "{:?}", got[0].notes);
    assert!(got[0].notes.iter().any(|n| n.contains("best validation")));
    assert_eq!(got[2].status, Status::Interrupted);
    assert_eq!(got[2].epochs.len(), 3);
    assert_members_match(&ts[..2], &got[..2]);
}

/// A few steps of every update rule, two members with different settings, against
/// [`Optim`] on each member's slice.
#[test]
fn the_fused_optimizer_is_each_members_optimizer() {
    let kinds = [
        r#"{"kind": "sgd"}"#,
        r#"{"kind": "sgd", "momentum": 0.9, "weight_decay": 0.1}"#,
        r#"{"kind": "sgd", "momentum": 0.5, "nesterov": true}"#,
        r#"{"kind": "adam", "weight_decay": 0.1}"#,
        r#"{"kind": "adamw", "weight_decay": 0.1, "betas": [0.8, 0.99]}"#,
        r#"{"kind": "radam", "weight_decay": 0.1}"#,
        r#"{"kind": "rmsprop", "momentum": 0.9, "alpha": 0.9}"#,
    ];
    let dev = burn::backend::flex::FlexDevice;
    for json in kinds {
        let a: crate::config::OptimizerConfig = serde_json::from_str(json).unwrap();
        // The second member: other rates; momentum off where the first has it.
        let mut b = a.clone();
        b.momentum = 0.0;
        b.weight_decay /= 2.0;
        b.betas[1] = 0.9;
        let members = [Optim::new(&a), Optim::new(&b)];
        let lrs = [0.1, 0.03];
        // The member-by-member kernels (CPU) and the column arithmetic (GPUs).
        for columns in [false, true] {
            let mut fused = FusedOptim::<F>::new(members.to_vec(), 1);
            let mut p: Tensor<F, 3> = Tensor::from_data(
                TensorData::new(vec![1.0f32, -2.0, 0.5, 3.0], [2, 1, 2]),
                &dev,
            );
            let mut alone: Vec<(Tensor<F, 1>, Option<OptimState<F, 1>>)> = (0..2)
                .map(|k| (p.clone().narrow(0, k, 1).reshape([2]), None))
                .collect();
            for t in 1..=8 {
                let g: Vec<f32> = (0..4)
                    .map(|i| ((i + 1) as f32 * 0.3 - 0.5) * t as f32)
                    .collect();
                let gt: Tensor<F, 3> =
                    Tensor::from_data(TensorData::new(g.clone(), [2, 1, 2]), &dev);
                p = if columns {
                    fused.step_by_columns(&lrs, vec![p], vec![gt]).remove(0)
                } else {
                    fused.step(&lrs, vec![p], vec![gt]).remove(0)
                };
                for (k, (pk, state)) in alone.iter_mut().enumerate() {
                    let gk: Tensor<F, 1> =
                        Tensor::from_data(TensorData::new(g[2 * k..2 * k + 2].to_vec(), [2]), &dev);
                    let (np, ns) = <Optim as SimpleOptimizer<F>>::step(
                        &members[k],
                        lrs[k],
                        pk.clone(),
                        gk,
                        state.take(),
                    );
                    *pk = np;
                    *state = ns;
                }
                let got: Vec<f32> = p.clone().into_data().iter::<f32>().collect();
                for (k, (pk, _)) in alone.iter().enumerate() {
                    let want: Vec<f32> = pk.clone().into_data().iter::<f32>().collect();
                    for (x, y) in got[2 * k..2 * k + 2].iter().zip(&want) {
                        assert!(
                            (x - y).abs() <= 1e-5 * y.abs().max(1.0),
                            "{json} member {k} step {t} (columns {columns}): {x} vs {y}"
                        );
                    }
                }
            }
        }
    }
}

/// However a CPU group is cut in lanes and waves, each member ends as itself: its own
/// progress and cancel (a member stopped after one epoch), a member whose data cannot load
/// failing alone between others.
#[test]
fn lanes_and_waves_keep_each_members_own_context() {
    let missing = "{name: m, data: {path: /nonexistent/mnist}}";
    let ts = trials(&format!(
        "name: t\ndata: {{split: {{official: true, val: 0.2}}, train_size: 120}}\nfixed:\n  model: {{kind: mlp, hidden: [8]}}\n  optimizer: {{kind: sgd, learning_rate: 0.05}}\n  batch_size: 20\n  epochs: 2\ntrials:\n  - {{name: a}}\n  - {{name: b, seed: 2}}\n  - {missing}\n  - {{name: c, seed: 3}}\n  - {{name: d, seed: 4}}\n  - {{name: e, seed: 5}}\n"
    ));
    for lanes in [(1, 1), (1, 5), (2, 1), (2, 2), (3, 1), (5, 1)] {
        LANES.set(Some(lanes));
        let cancels: Vec<AtomicBool> = ts.iter().map(|_| AtomicBool::new(false)).collect();
        let mut epochs = vec![0usize; ts.len()];
        let mut progress: Vec<Box<dyn FnMut(crate::engine::Progress) + Send + '_>> = epochs
            .iter_mut()
            .zip(&cancels)
            .enumerate()
            .map(|(i, (seen, cancel))| {
                Box::new(move |_| {
                    *seen += 1;
                    if i == 4 {
                        cancel.store(true, Ordering::SeqCst);
                    }
                }) as Box<dyn FnMut(crate::engine::Progress) + Send + '_>
            })
            .collect();
        let mut ctxs: Vec<TrialContext<'_>> = (progress.iter_mut().zip(&cancels))
            .map(|(p, c)| ctx(&mut **p, c))
            .collect();
        let mut out: Vec<Option<crate::error::Result<TrialResult>>> =
            (0..ts.len()).map(|_| None).collect();
        BurnEngine.run_group(&ts, &mut ctxs, &mut |i, r| {
            assert!(out[i].is_none(), "{lanes:?}: member {i} ended twice");
            out[i] = Some(r);
        });
        drop(ctxs);
        drop(progress);
        LANES.set(None);
        let out: Vec<_> = (out.into_iter())
            .map(|r| r.expect("every member ends"))
            .collect();
        let err = out[2].as_ref().expect_err("its data does not load");
        assert!(err.to_string().contains("nonexistent"), "{lanes:?}: {err}");
        assert_eq!(epochs, [2, 2, 0, 2, 1, 2], "{lanes:?}: epochs reported");
        for (i, r) in out.iter().enumerate().filter(|(i, _)| *i != 2) {
            let r = r.as_ref().expect("trained");
            let want = if i == 4 {
                Status::Interrupted
            } else {
                Status::Ok
            };
            assert_eq!(r.status, want, "{lanes:?}: member {i}");
            if i != 4 {
                let a = alone(&ts[i]);
                assert_eq!(r.test_accuracy, a.test_accuracy, "{lanes:?}: member {i}");
            }
        }
    }
}

/// Members ending in one epoch with different statuses each end as themselves, whatever their
/// order in the group (the group's positions change as members leave).
#[test]
fn members_ending_together_with_different_statuses_keep_their_own() {
    let a = "{name: a, optimizer: {learning_rate: 1.0e30}}";
    let b = "{name: b, early_stopping: {enabled: true, patience: 0}}";
    let c = "{name: c}";
    for order in [[a, b, c], [c, b, a], [b, a, c]] {
        let ts = trials(&format!(
            "name: t\ndata: {{split: {{official: true, val: 0.2}}, train_size: 200}}\nfixed:\n  model: {{kind: mlp, hidden: [16]}}\n  optimizer: {{kind: sgd, learning_rate: 0.05}}\n  batch_size: 20\n  epochs: 3\ntrials:\n  - {}\n  - {}\n  - {}\n",
            order[0], order[1], order[2]
        ));
        let got = fused(&ts, &[]);
        for (t, r) in ts.iter().zip(&got) {
            let want = match t.name.as_str() {
                "a" => Status::Diverged,
                "b" => Status::StoppedEarly,
                _ => Status::Ok,
            };
            assert_eq!(r.status, want, "{}: {:?}", t.name, r.notes);
        }
        assert_members_match(&ts, &got);
    }
}
