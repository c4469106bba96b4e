//! One trial's config from the sweep's base and its overrides, checked; a mistake is placed at
//! the key the user wrote (file, line, section), with the valid keys beside it and a likely
//! intended one.

use crate::config::TrialConfig;
use crate::spec::{Override, Pos, Program, Spec, SpecError, closest, leaf_paths, set_path};
use crate::trial::ProgramTrial;
use serde_json::{Map, Value};

/// Rewrites the shorthand forms into the full mapping the serde types expect.
pub(super) fn normalize_shorthands(root: &mut Map<String, Value>) {
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
pub(super) fn resolve(spec: &Spec, overrides: &[&Override]) -> Result<TrialConfig, SpecError> {
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
pub(super) fn resolve_program(
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
    crate::spec::placeholders::check(&program.command, &params).map_err(|m| SpecError {
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
