//! `Spec` → `Plan`: the expansion order (named trials × grid × zip × seeds), overrides, trial
//! ids and names. Pure: no I/O, no device.

pub mod fusion;
mod resolve;

pub use resolve::valid_keys;

use crate::config::TrialConfig;
use crate::spec::{EarlyTerminate, Method, Override, Pos, Spec, SpecError, set_path};
pub use crate::trial::Trial;
use crate::trial::{ProgramTrial, TrialId, TrialKind, trial_id, value_text};
use resolve::{normalize_shorthands, resolve, resolve_program};
use serde_json::Value;
use std::collections::HashMap;

/// A sweep expanded into its trials.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The sweep's name; its results go to `<out>/<name>/`.
    pub name: String,
    /// Every trial, in expansion order (named trials × grid × zip × seeds).
    pub trials: Vec<Trial>,
    /// The varied keys in display order (columns of plan.csv and the summary).
    pub axes: Vec<String>,
}

/// Expands a sweep into its trials, checking every one.
pub fn expand(spec: &Spec) -> Result<Plan, SpecError> {
    let count = trial_count(spec);
    if count > MAX_TRIALS {
        return Err(SpecError {
            file: spec.file.clone(),
            pos: spec.grid.first().map(|a| a.pos),
            key: String::new(),
            message: format!(
                "this sweep expands to {count} trials; at most {MAX_TRIALS} are allowed (use fewer grid values, or random search)"
            ),
        });
    }
    let combos = match spec.search.method {
        Method::Grid => grid_combos(spec),
        Method::Random | Method::Tpe => sampled_combos(spec)?,
    };
    let zip_len = spec.zip.first().map(|a| a.values.len()).unwrap_or(1);
    let named: Vec<Option<&crate::spec::NamedTrial>> = if spec.trials.is_empty() {
        vec![None]
    } else {
        spec.trials.iter().map(Some).collect()
    };
    let seeds: Vec<Option<u64>> = match &spec.seeds {
        Some(s) => s.iter().copied().map(Some).collect(),
        None => vec![None],
    };
    let mut trials: Vec<Trial> = Vec::with_capacity(count as usize);
    let mut seen: HashMap<TrialId, usize> = HashMap::with_capacity(count as usize);
    for nt in &named {
        for combo in &combos {
            for zi in 0..zip_len {
                for seed in &seeds {
                    let trial = build_trial(spec, *nt, combo, zi, *seed)?;
                    if let Some(&prev) = seen.get(&trial.id) {
                        let prev = &trials[prev];
                        return Err(SpecError {
                            file: spec.file.clone(),
                            pos: None,
                            key: String::new(),
                            message: format!(
                                "trials `{}` and `{}` resolve to the same configuration (id {}); remove one",
                                prev.name, trial.name, trial.id
                            ),
                        });
                    }
                    seen.insert(trial.id.clone(), trials.len());
                    trials.push(trial);
                }
            }
        }
    }
    if let Some(rule) = &spec.early_terminate
        && spec.program.is_none()
    {
        check_pruning(rule, &trials).map_err(|m| SpecError {
            file: spec.file.clone(),
            pos: None,
            key: "early_terminate.metric".into(),
            message: m,
        })?;
    }
    Ok(Plan {
        name: spec.name.clone(),
        trials,
        axes: varied_axes(spec),
    })
}

/// A rule that could never stop a built-in trial is an error, not a silent no-op: its metric must
/// be an epoch column, and a validation metric needs a validation split.
fn check_pruning(rule: &EarlyTerminate, trials: &[Trial]) -> Result<(), String> {
    let metric = rule.metric();
    if !crate::trial::EPOCH_METRICS.contains(&metric) {
        return Err(format!(
            "`{metric}` is not measured every epoch; expected one of: {}",
            crate::trial::EPOCH_METRICS.join(", ")
        ));
    }
    let no_val = trials
        .iter()
        .filter_map(Trial::builtin)
        .any(|c| c.data.split.val <= 0.0);
    if metric.starts_with("val_") && no_val {
        return Err(format!(
            "`{metric}` needs a validation split: set `data.split.val` above 0"
        ));
    }
    Ok(())
}

/// The trials of a TPE sweep drawn at random before TPE proposes the others from them: they are
/// the plan; the rest are recorded as they are proposed (`search::proposals`).
pub const TPE_STARTUP: usize = 5;

/// The first `count` distinct draws from the space, each a set of overrides (section `space`).
fn sampled_combos(spec: &Spec) -> Result<Vec<Vec<Override>>, SpecError> {
    let s = &spec.search;
    let (mut count, pos) = s.count.unwrap_or((0, Pos::default()));
    if s.method == Method::Tpe {
        count = count.min(TPE_STARTUP);
    }
    let draws = crate::spec::distinct_draws(&s.space, s.seed(), count).map_err(|m| SpecError {
        file: spec.file.clone(),
        pos: Some(pos),
        key: "count".into(),
        message: m,
    })?;
    Ok(draws
        .into_iter()
        .map(|d| {
            d.into_iter()
                .zip(&s.space)
                .map(|((key, value), p)| Override {
                    key,
                    value,
                    pos: p.pos,
                    section: "space".into(),
                })
                .collect()
        })
        .collect())
}

/// Cartesian product of the grid, first axis slowest.
fn grid_combos(spec: &Spec) -> Vec<Vec<Override>> {
    let mut combos: Vec<Vec<Override>> = vec![vec![]];
    for axis in &spec.grid {
        let mut next = Vec::with_capacity(combos.len() * axis.values.len());
        for c in &combos {
            for v in &axis.values {
                let mut c = c.clone();
                c.push(Override {
                    key: axis.key.clone(),
                    value: v.clone(),
                    pos: axis.pos,
                    section: "grid".into(),
                });
                next.push(c);
            }
        }
        combos = next;
    }
    combos
}

/// The most trials one sweep may expand to: beyond this a typo in a grid (an extra zero in a
/// range) would take minutes and gigabytes before saying anything. Measured at 100,000 trials
/// (2 cores): `validate` 1.5 s and 200 MB, a 232 MB plan.json, `status` 5.6 s; at 1,000,000
/// `run` wrote a 2.3 GB plan.json and took 5.6 GB of memory.
pub const MAX_TRIALS: u128 = 100_000;

/// How many trials a sweep expands to, computed without expanding it (saturating, so a grid of
/// a thousand axes cannot overflow).
pub fn trial_count(spec: &Spec) -> u128 {
    let grid = match spec.search.method {
        Method::Grid => spec
            .grid
            .iter()
            .fold(1u128, |n, a| n.saturating_mul(a.values.len() as u128)),
        Method::Random => spec.search.count.map_or(1, |(c, _)| c as u128),
        Method::Tpe => spec
            .search
            .count
            .map_or(1, |(c, _)| c.min(TPE_STARTUP) as u128),
    };
    let zip = spec.zip.first().map_or(1, |a| a.values.len() as u128);
    let named = spec.trials.len().max(1) as u128;
    let seeds = spec.seeds.as_ref().map_or(1, |s| s.len() as u128);
    grid.saturating_mul(zip)
        .saturating_mul(named)
        .saturating_mul(seeds)
}

/// The varied keys in display order: named-trial keys, then grid and zip axes, then the seed.
fn varied_axes(spec: &Spec) -> Vec<String> {
    let mut axes: Vec<String> = vec![];
    for t in &spec.trials {
        for o in &t.overrides {
            if !axes.contains(&o.key) {
                axes.push(o.key.clone());
            }
        }
    }
    let sampled = spec.search.space.iter().map(|p| &p.key);
    for key in spec.grid.iter().map(|a| &a.key).chain(sampled) {
        if !axes.contains(key) {
            axes.push(key.clone());
        }
    }
    for a in &spec.zip {
        if !axes.contains(&a.key) {
            axes.push(a.key.clone());
        }
    }
    if spec.seeds.is_some() && !axes.iter().any(|a| a == "seed") {
        axes.push("seed".into());
    }
    axes
}

/// One trial: the base, then the named trial, grid combination, zip position `zi` and seed, in
/// that order of precedence (later wins).
fn build_trial(
    spec: &Spec,
    nt: Option<&crate::spec::NamedTrial>,
    combo: &[Override],
    zi: usize,
    seed: Option<u64>,
) -> Result<Trial, SpecError> {
    let mut ov: Vec<&Override> = spec.base.iter().collect();
    let zip_ov: Vec<Override> = spec
        .zip
        .iter()
        .map(|a| Override {
            key: a.key.clone(),
            value: a.values[zi].clone(),
            pos: a.pos,
            section: "zip".into(),
        })
        .collect();
    let seed_ov = seed.map(|s| Override {
        key: "seed".into(),
        value: Value::from(s),
        pos: Pos::default(),
        section: "seeds".into(),
    });
    if let Some(nt) = nt {
        ov.extend(nt.overrides.iter());
    }
    ov.extend(combo.iter());
    ov.extend(zip_ov.iter());
    ov.extend(seed_ov.iter());
    let mut varied: Vec<(String, Value)> = vec![];
    for o in ov
        .iter()
        .filter(|o| o.section != "fixed" && o.section != "data")
    {
        varied.retain(|(k, _)| *k != o.key);
        varied.push((o.key.clone(), o.value.clone()));
    }
    let config = match &spec.program {
        Some(p) => TrialKind::Program(resolve_program(spec, p, &ov)?),
        None => TrialKind::Builtin(Box::new(resolve(spec, &ov)?)),
    };
    let id = trial_id(&config);
    let name = trial_name(spec, nt, &varied);
    Ok(Trial {
        id: TrialId(id),
        name,
        varied,
        config,
    })
}

/// A trial like `template` (a trial of the same sweep) with `draw`'s values set at their keys:
/// how TPE's proposals become trials without the sweep file. The config is checked like a
/// planned one.
pub fn from_template(template: &Trial, draw: &[(String, Value)]) -> Result<Trial, String> {
    let config = match &template.config {
        TrialKind::Builtin(c) => {
            let Ok(Value::Object(mut root)) = serde_json::to_value(c) else {
                return Err("the template trial's config is not a mapping".into());
            };
            for (k, v) in draw {
                set_path(&mut root, k, v.clone())?;
            }
            normalize_shorthands(&mut root);
            let c: TrialConfig =
                serde_json::from_value(Value::Object(root)).map_err(|e| e.to_string())?;
            c.check()
                .map_err(|inv| format!("`{}`: {}", inv.path, inv.message))?;
            TrialKind::Builtin(Box::new(c))
        }
        TrialKind::Program(p) => {
            let mut params = p.params.clone();
            for (k, v) in draw {
                set_path(&mut params, k, v.clone())?;
            }
            TrialKind::Program(ProgramTrial {
                command: p.command.clone(),
                params,
            })
        }
    };
    let mut varied = template.varied.clone();
    for (k, v) in draw {
        match varied.iter_mut().find(|(x, _)| x == k) {
            Some(slot) => slot.1 = v.clone(),
            None => varied.push((k.clone(), v.clone())),
        }
    }
    let name = varied
        .iter()
        .map(|(k, v)| format!("{}={}", k.rsplit('.').next().unwrap_or(k), value_text(v)))
        .collect::<Vec<_>>()
        .join(",");
    Ok(Trial {
        id: TrialId(trial_id(&config)),
        name,
        varied,
        config,
    })
}

/// The named trial's name, followed by `key=value` for each other varied key (last part of the
/// key only, to stay short); the sweep's name when nothing varies.
fn trial_name(
    spec: &Spec,
    nt: Option<&crate::spec::NamedTrial>,
    varied: &[(String, Value)],
) -> String {
    let generated = varied
        .iter()
        .filter(|(k, _)| nt.is_none_or(|nt| !nt.overrides.iter().any(|o| o.key == *k)))
        .map(|(k, v)| format!("{}={}", k.rsplit('.').next().unwrap_or(k), value_text(v)))
        .collect::<Vec<_>>()
        .join(",");
    match (nt, generated.is_empty()) {
        (Some(nt), true) => nt.name.clone(),
        (Some(nt), false) => format!("{},{generated}", nt.name),
        (None, false) => generated,
        (None, true) => spec.name.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(text: &str) -> Result<Plan, SpecError> {
        expand(&Spec::parse("t.yaml", text)?)
    }

    #[test]
    fn grid_is_a_cartesian_product_first_axis_slowest() {
        let p = plan(
            "name: g\nfixed: {epochs: 1}\ngrid:\n  batch_size: [1, 2]\n  optimizer.learning_rate: [0.1, 0.01, 0.001]\n",
        )
        .unwrap();
        assert_eq!(p.trials.len(), 6);
        assert_eq!(p.trials[0].name, "batch_size=1,learning_rate=0.1");
        assert_eq!(p.trials[1].name, "batch_size=1,learning_rate=0.01");
        assert_eq!(p.trials[3].builtin().unwrap().batch_size, 2);
    }

    /// A grid over the limit is refused before anything is expanded; one at the limit is not.
    #[test]
    fn a_grid_over_the_trial_limit_is_refused() {
        let values = |n: usize| {
            (1..=n)
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let grid = |seeds: usize| {
            format!(
                "name: big\nfixed: {{epochs: 1}}\ngrid:\n  seed: [{}]\n  batch_size: [{}]\n",
                values(seeds),
                values(1000)
            )
        };
        assert_eq!(plan(&grid(100)).unwrap().trials.len(), 100_000);
        let e = plan(&grid(101)).unwrap_err().to_string();
        assert!(
            e.contains("expands to 101000 trials; at most 100000"),
            "{e}"
        );
    }

    #[test]
    fn ids_ignore_key_order_and_shorthand() {
        let a =
            plan("name: a\nfixed:\n  epochs: 2\n  batch_size: 8\n  schedule: cosine\n").unwrap();
        let b = plan("fixed:\n  schedule: {kind: cosine}\n  batch_size: 8\n  epochs: 2\nname: b\n")
            .unwrap();
        assert_eq!(a.trials[0].id, b.trials[0].id);
        let c = plan("name: a\nfixed:\n  epochs: 3\n  batch_size: 8\n").unwrap();
        assert_ne!(a.trials[0].id, c.trials[0].id);
    }

    #[test]
    fn zip_pairs_and_seeds_repeat() {
        let p = plan(
            "name: z\nfixed: {epochs: 1}\nzip:\n  batch_size: [10, 100]\n  optimizer.learning_rate: [0.01, 0.1]\nseeds: [1, 2, 3]\n",
        )
        .unwrap();
        assert_eq!(p.trials.len(), 6);
        assert_eq!(p.trials[3].builtin().unwrap().batch_size, 100);
        assert_eq!(
            p.trials[3].builtin().unwrap().optimizer.learning_rate,
            Some(0.1)
        );
        assert_eq!(p.trials[3].builtin().unwrap().seed, 1);
        assert_eq!(
            p.axes,
            vec!["batch_size", "optimizer.learning_rate", "seed"]
        );
    }

    #[test]
    fn named_trials_cross_the_grid_and_lists_are_values() {
        let p = plan(
            "name: n\nfixed: {model: {kind: mlp, hidden: [8]}}\ntrials:\n  - name: small\n    model.hidden: [4]\n  - name: big\n    model: {hidden: [16, 8]}\ngrid:\n  seed: [1, 2]\n",
        )
        .unwrap();
        assert_eq!(p.trials.len(), 4);
        assert_eq!(p.trials[2].builtin().unwrap().model.hidden, vec![16, 8]);
        assert_eq!(p.trials[0].name, "small,seed=1");
    }

    #[test]
    fn misspelt_key_names_line_and_suggestion() {
        let e = plan("name: x\nfixed:\n  epochs: 1\ngrid:\n  optimizer.learnig_rate: [0.1]\n")
            .unwrap_err();
        assert_eq!(e.key, "optimizer.learnig_rate");
        assert_eq!(e.pos.unwrap().line, 5);
        assert!(
            e.message.contains("did you mean `optimizer.learning_rate`"),
            "{e}"
        );
        assert!(e.message.contains("at grid (line 5)"), "{e}");
    }

    #[test]
    fn bare_key_in_grid_suggests_its_full_path() {
        let e = plan("name: x\ngrid:\n  learning_rate: [0.1]\n").unwrap_err();
        assert!(e.message.contains("optimizer.learning_rate"), "{e}");
    }
}
