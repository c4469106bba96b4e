//! Fusion groups (`--fuse K`): which trials may train as one model, and their groups of at most
//! K. Pure: the same trials and K always give the same groups.
//!
//! Members share everything that gives the fused model its shape and its steps: the data
//! settings (so every member's split has the same size), the network (kind, layers, channels,
//! kernel, padding, pooling, activation), the optimizer's kind and Nesterov flag (the update
//! rule), batch size, epochs, steps per epoch and `drop_last`. They may differ in learning
//! rate, schedule, momentum, betas, eps, alpha, weight decay, seed, dropout, init, early
//! stopping, augmentation and what is logged: each member's own values. Not fused: networks
//! with batch norm (its running statistics are per member and burn's layer has no member
//! axis), and program trials (the user's code). Different activations are not fused either:
//! computing each of them for every member would cost more than it saves.

use crate::config::TrialConfig;
use crate::devices::{Device, Slot};
pub use crate::spec::Fuse;
use crate::trial::Trial;

/// The group size `auto` takes on a GPU.
pub const AUTO_GPU: usize = 8;

/// The largest group `fuse` allows on these slots.
pub fn group_size(fuse: Fuse, slots: &[Slot]) -> usize {
    match fuse {
        Fuse::Size(k) => k,
        Fuse::Auto if slots.iter().any(|s| s.device != Device::Cpu) => AUTO_GPU,
        Fuse::Auto => 1,
    }
}

/// The settings a trial's group must share, as text; `None` when it never fuses.
pub fn fusion_key(c: &TrialConfig) -> Option<String> {
    if c.model.batch_norm {
        return None;
    }
    let mut shared = c.clone();
    let defaults = TrialConfig::default();
    let o = &mut shared.optimizer;
    o.learning_rate = None;
    o.momentum = 0.0;
    o.weight_decay = 0.0;
    o.betas = defaults.optimizer.betas;
    o.eps = defaults.optimizer.eps;
    o.alpha = defaults.optimizer.alpha;
    shared.schedule = defaults.schedule.clone();
    shared.seed = 0;
    shared.model.dropout = 0.0;
    shared.model.input_dropout = 0.0;
    shared.model.init = defaults.model.init;
    shared.model.bias_init = defaults.model.bias_init;
    shared.early_stopping = defaults.early_stopping.clone();
    shared.restore_best = false;
    shared.augment = defaults.augment.clone();
    shared.log_steps = false;
    shared.test_each_epoch = false;
    serde_json::to_string(&shared).ok()
}

/// The trials (each with its cost) in groups of at most `k` that share a fusion key, in plan
/// order; each group costs the sum of its members. `k` ≤ 1 gives one group per trial.
pub fn groups(trials: Vec<(Trial, f64)>, k: usize) -> Vec<(Vec<Trial>, f64)> {
    let mut out: Vec<(Vec<Trial>, f64)> = vec![];
    // The group still filling for each key: its index in `out`.
    let mut open: std::collections::HashMap<String, usize> = Default::default();
    for (trial, cost) in trials {
        let key = (k > 1)
            .then(|| trial.builtin().and_then(fusion_key))
            .flatten();
        let Some(key) = key else {
            out.push((vec![trial], cost));
            continue;
        };
        match open.get(&key) {
            Some(&g) if out[g].0.len() < k => {
                out[g].0.push(trial);
                out[g].1 += cost;
            }
            _ => {
                open.insert(key, out.len());
                out.push((vec![trial], cost));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Spec;

    fn plan(yaml: &str) -> Vec<(Trial, f64)> {
        crate::plan::expand(&Spec::parse("t.yaml", yaml).unwrap())
            .unwrap()
            .trials
            .into_iter()
            .map(|t| (t, 1.0))
            .collect()
    }

    fn names(groups: &[(Vec<Trial>, f64)]) -> Vec<Vec<String>> {
        groups
            .iter()
            .map(|g| g.0.iter().map(|t| t.name.clone()).collect())
            .collect()
    }

    #[test]
    fn hyperparameters_and_seeds_fuse_shapes_do_not() {
        let trials = plan(
            "name: t\nfixed:\n  model: {kind: mlp, hidden: [8]}\n  epochs: 1\ngrid:\n  model.hidden: [[8], [16]]\n  optimizer.learning_rate: [0.1, 0.01, 0.001]\nseeds: [1, 2]\n",
        );
        let g = groups(trials.clone(), 4);
        let sizes: Vec<usize> = g.iter().map(|g| g.0.len()).collect();
        assert_eq!(sizes, [4, 2, 4, 2], "{:?}", names(&g));
        for (members, cost) in &g {
            let hidden: Vec<_> = members
                .iter()
                .map(|t| t.builtin().unwrap().model.hidden.clone())
                .collect();
            assert!(hidden.iter().all(|h| *h == hidden[0]), "{hidden:?}");
            assert_eq!(*cost, members.len() as f64);
        }
        assert_eq!(groups(trials.clone(), 1).len(), trials.len());
        assert_eq!(groups(trials, 100).len(), 2);
    }

    #[test]
    fn batch_norm_batch_size_and_optimizer_kind_keep_trials_apart() {
        let bn = plan(
            "name: t\nfixed:\n  model: {kind: mlp, hidden: [8], batch_norm: true}\ngrid:\n  optimizer.learning_rate: [0.1, 0.01]\n",
        );
        assert_eq!(groups(bn, 8).len(), 2, "batch norm never fuses");
        let bs = plan("name: t\ngrid:\n  batch_size: [10, 20]\n  optimizer.kind: [sgd, adam]\n");
        assert_eq!(groups(bs, 8).len(), 4);
        let ok = plan(
            "name: t\nfixed:\n  model: {kind: mlp, hidden: [8]}\ngrid:\n  model.dropout: [0.0, 0.5]\n  optimizer.weight_decay: [0.0, 0.1]\n  schedule.kind: [none, cosine]\n",
        );
        assert_eq!(groups(ok, 8).len(), 1);
    }
}
