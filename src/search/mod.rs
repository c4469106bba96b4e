//! Search beyond grids: TPE's proposals (`tpe.rs`, recorded by `proposals.rs`) and the early
//! termination of weak trials (`prune.rs`), pure over the recorded metric curves of a sweep's
//! trials. Random draws from a sweep's `space` are the spec's (`spec/sample.rs`): the plan
//! makes its first trials from them.

pub mod proposals;
pub mod prune;
pub mod tpe;

pub use prune::{Pruner, decide};

#[cfg(test)]
mod tests {
    use crate::plan::{Plan, expand};
    use crate::spec::{Spec, SpecError};

    const SPACE: &str = "name: r\nmethod: random\nsearch_seed: 7\nfixed: {epochs: 2, model: {kind: mlp, hidden: [8]}}\nspace:\n  optimizer.learning_rate: {distribution: log_uniform, min: 1.0e-4, max: 1.0e-1}\n  model.dropout: {distribution: uniform, min: 0.0, max: 0.5}\n  model.hidden: {values: [[128], [256, 128], [512, 256]]}\n  batch_size: {distribution: int_log_uniform, min: 16, max: 512}\n";

    fn plan(text: &str) -> Result<Plan, SpecError> {
        expand(&Spec::parse("t.yaml", text)?)
    }

    fn ids(p: &Plan) -> Vec<String> {
        p.trials.iter().map(|t| t.id.to_string()).collect()
    }

    #[test]
    fn random_plans_are_reproducible_and_a_larger_count_keeps_the_first() {
        let twenty = plan(&format!("{SPACE}count: 20\n")).unwrap();
        let again = plan(&format!("count: 20\n{SPACE}")).unwrap();
        let more = plan(&format!("{SPACE}count: 25\n")).unwrap();
        assert_eq!(ids(&twenty), ids(&again));
        assert_eq!(ids(&twenty), ids(&more)[..20]);
        let other = plan(&format!(
            "{}count: 20\n",
            SPACE.replace("search_seed: 7", "search_seed: 8")
        ))
        .unwrap();
        assert_ne!(ids(&twenty)[0], ids(&other)[0]);
        let t = &twenty.trials[0];
        let c = t.builtin().unwrap();
        assert!((16..=512).contains(&c.batch_size));
        assert!((0.0..=0.5).contains(&c.model.dropout));
        assert_eq!(
            twenty.axes,
            [
                "optimizer.learning_rate",
                "model.dropout",
                "model.hidden",
                "batch_size"
            ]
        );
        assert!(t.name.starts_with("learning_rate="), "{}", t.name);
    }

    #[test]
    fn a_tpe_plan_holds_its_random_start() {
        let p = plan(&format!(
            "{}count: 20\n",
            SPACE.replace("method: random", "method: tpe")
        ))
        .unwrap();
        let r = plan(&format!("{SPACE}count: 20\n")).unwrap();
        assert_eq!(ids(&p), ids(&r)[..crate::plan::TPE_STARTUP]);
    }

    #[test]
    fn sampled_trials_cross_the_seeds() {
        let p = plan(&format!("{SPACE}count: 3\nseeds: [1, 2]\n")).unwrap();
        assert_eq!(p.trials.len(), 6);
        assert_eq!(p.trials[0].varied[..4], p.trials[1].varied[..4]);
    }

    /// Each bad search section: (yaml, substrings of the error).
    const BAD: &[(&str, &[&str])] = &[
        (
            "name: x\nmethod: random\ncount: 3\nspace:\n  model.dropout: {distribution: uniform, min: 0.5, max: 0.1}\n",
            &[
                "space.model.dropout",
                "min (0.5) must be below max (0.1)",
                ":5:",
            ],
        ),
        (
            "name: x\nmethod: random\ncount: 3\nspace:\n  optimizer.learning_rate: {distribution: log_uniform, min: 0, max: 0.1}\n",
            &["space.optimizer.learning_rate", "above 0"],
        ),
        (
            "name: x\nmethod: random\nspace:\n  model.dropout: {distribution: uniform, min: 0.0, max: 0.1}\n",
            &["count", "`method: random` needs `count`", ":2:"],
        ),
        (
            "name: x\nfixed: {epochs: 1}\nspace:\n  model.dropout: {distribution: uniform, min: 0.0, max: 0.1}\n",
            &["space", "set `method: random`", ":3:"],
        ),
        (
            "name: x\nfixed: {epochs: 1}\ngrid:\n  model.dropout: {distribution: uniform, min: 0.0, max: 0.1}\n",
            &["grid.model.dropout", "method: random", ":4:"],
        ),
        (
            "name: x\nmethod: random\ncount: 2\nspace:\n  model.dropout: {distribution: gaussian, min: 0.0, max: 0.1}\n",
            &["unknown distribution `gaussian`", "log_uniform"],
        ),
        (
            "name: x\nmethod: random\ncount: 2\nspace:\n  model.dropout: {distribution: uniform, mn: 0.0, max: 0.1}\n",
            &["unknown key `mn`", "did you mean `min`", ":5:"],
        ),
        (
            "name: x\nmethod: randm\ncount: 2\n",
            &["method", "did you mean `random`"],
        ),
        (
            "name: x\nmethod: random\ncount: 2\nspace:\n  batch_size: {distribution: int_uniform, min: 1.5, max: 8}\n",
            &["whole number"],
        ),
        (
            "name: x\nmethod: random\ncount: 5\nspace:\n  model.kind: {values: [linear, mlp]}\nfixed: {model: {hidden: [8]}}\n",
            &["count", "only 2 distinct"],
        ),
        (
            "name: x\nmethod: random\ncount: 2\nspace:\n  model.dropout: {distribution: uniform, min: 0.0, max: 0.1}\ngrid:\n  batch_size: [1, 2]\n",
            &["grid", "`{values: [...]}`"],
        ),
        (
            "name: x\nfixed: {epochs: 1}\ncount: 4\n",
            &["count", "applies to `method: random`"],
        ),
        (
            "name: x\nfixed: {epochs: 1}\nearly_terminate: {type: hyperband, eta: 1}\n",
            &["early_terminate.eta", "at least 2"],
        ),
        (
            "name: x\nfixed: {epochs: 1}\nearly_terminate: {type: median}\n",
            &["early_terminate.metric", "needs a validation split"],
        ),
        (
            "name: x\nfixed: {epochs: 1}\nearly_terminate: {type: median, metric: accuracy}\n",
            &["early_terminate.metric", "not measured every epoch"],
        ),
        (
            "name: x\nfixed: {epochs: 1}\nearly_terminate: {type: asha}\n",
            &["early_terminate", "asha"],
        ),
        (
            "name: x\nmethod: random\ncount: 2\nspace:\n  model.dropout: {distribution: q_uniform, min: 0.0, max: 0.4}\n",
            &["space.model.dropout", "missing `q`"],
        ),
    ];

    #[test]
    fn bad_search_sections_name_key_and_line() {
        for (yaml, wants) in BAD {
            let e = plan(yaml).unwrap_err().to_string();
            for w in *wants {
                assert!(e.contains(w), "{yaml:?}: `{w}` missing from: {e}");
            }
        }
    }
}
