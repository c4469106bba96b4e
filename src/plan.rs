//! `Spec` → `Plan`: the expansion order (named trials × grid × zip × seeds), overrides, trial
//! ids and names. Pure: no I/O, no device.

use crate::config::TrialConfig;
use crate::spec::{Method, Override, Pos, Program, Spec, SpecError, closest, leaf_paths, set_path};
pub use crate::trial::Trial;
use crate::trial::{ProgramTrial, TrialId, TrialKind};
use serde_json::{Map, Value};
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

/// FNV-1a, 64 bits: tiny, stable across platforms and releases (unlike std's hasher).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The id of a trial: a short hash of its fully resolved config (a program's: its parameters
/// and command). serde_json's map is ordered by key, so the order of keys in the YAML file does
/// not matter; a built-in config hashes as it did before programs existed.
pub fn trial_id(config: &TrialKind) -> String {
    let canonical = serde_json::to_string(&serde_json::to_value(config).expect("config is JSON"))
        .expect("JSON value serialises");
    format!("{:012x}", fnv1a(canonical.as_bytes()) >> 16)
}

/// Short text of a value for names: `0.01`, `relu`, `[40,15]`.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Rewrites the shorthand forms into the full mapping the serde types expect.
fn normalize_shorthands(root: &mut Map<String, Value>) {
    if let Some(Value::Object(data)) = root.get_mut("data") {
        match data.get_mut("split") {
            Some(v @ Value::String(_)) if v.as_str() == Some("official") => {
                *v = serde_json::json!({"official": true});
            }
            Some(Value::Object(split))
                if !split.contains_key("official")
                    && (split.contains_key("train") || split.contains_key("test")) =>
            {
                split.insert("official".into(), Value::Bool(false));
            }
            _ => {}
        }
        if let Some(v) = data.get_mut("normalize") {
            match v.as_str() {
                Some("unit") => *v = serde_json::json!({"mean": 0.0, "std": 1.0}),
                Some("mnist") => *v = serde_json::json!({"mean": 0.1307, "std": 0.3081}),
                _ => {}
            }
        }
    }
    for key in ["early_stopping", "augment"] {
        match root.get_mut(key) {
            Some(Value::Bool(b)) => {
                let b = *b;
                root.insert(key.into(), serde_json::json!({ "enabled": b }));
            }
            Some(Value::Object(m)) => {
                m.entry("enabled").or_insert(Value::Bool(true));
            }
            _ => {}
        }
    }
    if let Some(v @ Value::String(_)) = root.get_mut("schedule") {
        *v = serde_json::json!({ "kind": v.as_str().unwrap_or_default() });
    }
}

/// Every valid dotted key of a trial, for "did you mean".
pub fn valid_keys() -> Vec<String> {
    let mut out = vec![];
    leaf_paths(
        &serde_json::to_value(TrialConfig::default()).expect("config is JSON"),
        "",
        &mut out,
    );
    out
}

/// Builds one trial from its overrides (applied in order, later wins) and checks it.
fn resolve(spec: &Spec, overrides: &[&Override]) -> Result<TrialConfig, SpecError> {
    let mut root = Map::new();
    for o in overrides {
        set_path(&mut root, &o.key, o.value.clone()).map_err(|m| SpecError {
            file: spec.file.clone(),
            pos: Some(o.pos),
            key: o.key.clone(),
            message: m,
        })?;
    }
    normalize_shorthands(&mut root);
    let config: TrialConfig =
        serde_path_to_error::deserialize(Value::Object(root)).map_err(|e| {
            let mut path = e.path().to_string();
            if path == "." {
                path.clear();
            }
            let inner = e.inner().to_string();
            match inner.strip_prefix("unknown field `") {
                Some(rest) => unknown_key(spec, overrides, path, rest),
                None => located(spec, overrides, path, &crate::spec::words::plain(&inner)),
            }
        })?;
    config
        .check()
        .map_err(|inv| located(spec, overrides, inv.path, &inv.message))?;
    Ok(config)
}

/// A program trial's parameters from its overrides (any keys; dotted keys nest), with `seed`
/// always present, and its command's placeholders checked against them.
fn resolve_program(
    spec: &Spec,
    program: &Program,
    overrides: &[&Override],
) -> Result<ProgramTrial, SpecError> {
    let mut params = Map::new();
    for o in overrides {
        set_path(&mut params, &o.key, o.value.clone()).map_err(|m| SpecError {
            file: spec.file.clone(),
            pos: Some(o.pos),
            key: o.key.clone(),
            message: m,
        })?;
    }
    params.entry("seed").or_insert(Value::from(0));
    crate::program::command::check(&program.command, &params).map_err(|m| SpecError {
        file: spec.file.clone(),
        pos: Some(program.pos),
        key: "program.command".into(),
        message: m,
    })?;
    Ok(ProgramTrial {
        command: program.command.clone(),
        params,
    })
}

/// Where a dotted path was written, for errors found by serde or by the checks: the override
/// with the longest key that is the path, a parent of it or a child of it.
fn locate(overrides: &[&Override], path: &str) -> (Option<Pos>, String) {
    // Overrides are in precedence order and `max_by_key` keeps the last of equals: among the
    // most specific keys, the one written last, whose value the trial has, is blamed.
    overrides
        .iter()
        .filter(|o| {
            path == o.key
                || path.starts_with(&format!("{}.", o.key))
                || o.key.starts_with(&format!("{path}."))
        })
        .max_by_key(|o| o.key.len())
        .map(|o| (Some(o.pos), o.section.clone()))
        .unwrap_or((None, String::new()))
}

/// An error at a key, placed where the key was written and naming its section.
fn located(spec: &Spec, overrides: &[&Override], key: String, message: &str) -> SpecError {
    let (pos, section) = locate(overrides, &key);
    let where_ = if section.is_empty() {
        String::new()
    } else {
        format!(" (in {section})")
    };
    SpecError {
        file: spec.file.clone(),
        pos,
        key,
        message: format!("{message}{where_}"),
    }
}

/// Rewrites serde's "unknown field `x`, expected one of `a`, `b`" into the user's terms: the
/// full dotted key, where it was written, a likely intended key, and the valid keys beside it.
/// `rest` is serde's message after "unknown field `"; `path` is where serde was when it failed.
fn unknown_key(spec: &Spec, overrides: &[&Override], mut path: String, rest: &str) -> SpecError {
    let field = rest.split('`').next().unwrap_or_default();
    // serde_path_to_error's path may already end at the unknown field.
    if path == field {
        path.clear();
    } else if let Some(parent) = path.strip_suffix(&format!(".{field}")) {
        path = parent.to_string();
    }
    let full = if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    };
    let (pos, section) = locate(overrides, &full);
    let expected: Vec<&str> = rest
        .split('`')
        .skip(1)
        .filter(|s| !s.starts_with(',') && !s.trim().is_empty())
        .filter(|s| !s.starts_with(" expected"))
        .collect();
    let hint = suggest_key(field, &full, &path, &expected)
        .map(|c| format!(" did you mean `{c}`?"))
        .unwrap_or_default();
    let where_ = match pos {
        Some(p) if !section.is_empty() => format!(" at {section} (line {})", p.line),
        _ => String::new(),
    };
    let expected_list = if expected.is_empty() {
        String::new()
    } else {
        format!(
            " Expected one of: {}",
            expected
                .iter()
                .map(|e| under(&path, e))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    SpecError {
        file: spec.file.clone(),
        pos,
        key: full,
        message: format!("unknown key `{field}`{where_}:{hint}{expected_list}"),
    }
}

/// `key` inside the mapping at dotted `path` (the root when `path` is empty).
fn under(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The key the user most likely meant: a near sibling first, then a near key anywhere, then a
/// key anywhere with the same last part (a bare `learning_rate` in a grid).
fn suggest_key(field: &str, full: &str, path: &str, siblings: &[&str]) -> Option<String> {
    let keys = valid_keys();
    closest(field, siblings.iter().copied())
        .map(|c| under(path, c))
        .or_else(|| closest(full, keys.iter().map(String::as_str)).map(String::from))
        .or_else(|| {
            keys.iter()
                .find(|k| k.rsplit('.').next() == Some(field))
                .cloned()
        })
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
        crate::search::prune::check_builtin(rule, &trials).map_err(|m| SpecError {
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
    let draws =
        crate::search::distinct_draws(&s.space, s.seed(), count).map_err(|m| SpecError {
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
