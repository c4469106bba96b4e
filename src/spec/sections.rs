//! The sections of a sweep file read from the positioned tree: the name, the base (`data`,
//! `fixed`) flattened into dotted overrides, the grid and zip axes, the named trials, the seeds
//! and the serde-typed sections such as `report`. Each error points at the offending key.

use super::SpecError;
use super::yaml::{Node, NodeKind, Pos};
use serde_json::Value;

/// One axis of the grid or zip: a dotted key and its values.
#[derive(Debug, Clone)]
pub struct Axis {
    /// The dotted key the axis varies.
    pub key: String,
    /// Its values, in file order, each listed once.
    pub values: Vec<Value>,
    /// Where the key was written.
    pub pos: Pos,
}

/// A value set at a dotted key, with where it was written (for error messages).
#[derive(Debug, Clone)]
pub struct Override {
    /// The dotted key set.
    pub key: String,
    /// The value given to it.
    pub value: Value,
    /// Where the key was written.
    pub pos: Pos,
    /// The section it came from: `fixed`, `grid`, `zip`, `trials[2]`.
    pub section: String,
}

/// An entry of `trials`: a name and the overrides that make it differ from the base.
#[derive(Debug, Clone)]
pub struct NamedTrial {
    /// The name given with `- name: …`, unique within the sweep.
    pub name: String,
    /// Every other key of the entry, flattened.
    pub overrides: Vec<Override>,
    /// Where the entry starts.
    pub pos: Pos,
}

/// Keys whose value is a whole unit even when written as a mapping: they are set, not merged.
const LEAF_MAPS: &[&str] = &["data.normalize"];

/// A string value; a number is taken as written (`1.50`, `007`, `1e3`), never as its value
/// printed back (`1.5`, `7`, `1000.0`), since names become directories.
pub(super) fn expect_string(file: &str, key: &str, node: &Node) -> Result<String, SpecError> {
    match &node.kind {
        NodeKind::Scalar(Value::String(s)) => Ok(s.clone()),
        NodeKind::Scalar(Value::Number(n)) => {
            Ok(node.text.clone().unwrap_or_else(|| n.to_string()))
        }
        _ => Err(SpecError::at(
            file,
            node.pos,
            key,
            format!("expected a string, found {}", node.type_name()),
        )),
    }
}

pub(super) fn expect_map(file: &str, key: &str, node: &Node) -> Result<(), SpecError> {
    if matches!(node.kind, NodeKind::Map(_)) {
        return Ok(());
    }
    Err(SpecError::at(
        file,
        node.pos,
        key,
        format!(
            "expected a mapping (key: value lines), found {}",
            node.type_name()
        ),
    ))
}

/// The longest sweep name: it becomes a directory, and `--fresh` adds `.old-<time>` to it
/// within the file system's 255-byte limit.
const MAX_NAME: usize = 100;

/// The sweep's name, which becomes a directory: so no path separators and no leading dot.
pub(super) fn sweep_name(file: &str, node: &Node) -> Result<String, SpecError> {
    let name = expect_string(file, "name", node)?;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        || name.starts_with('.')
    {
        return Err(SpecError::at(
            file,
            node.pos,
            "name",
            "the sweep name becomes a directory: use letters, digits, `-`, `_` and `.`",
        ));
    }
    if name.chars().count() > MAX_NAME {
        return Err(SpecError::at(
            file,
            node.pos,
            "name",
            format!(
                "the sweep name becomes a directory: at most {MAX_NAME} characters, found {}",
                name.chars().count()
            ),
        ));
    }
    Ok(name)
}

/// One key set twice in one section, once nested and once dotted (`optimizer: {learning_rate:
/// 0.1}` and `optimizer.learning_rate: 0.01`): the YAML layer sees two different keys and one
/// value would silently win, so it is an error naming both lines.
pub(super) fn same_key_twice(file: &str, overrides: &[Override]) -> Result<(), SpecError> {
    let mut first: std::collections::HashMap<(&str, &str), Pos> = Default::default();
    for o in overrides {
        if let Some(p) = first.insert((o.section.as_str(), o.key.as_str()), o.pos) {
            return Err(SpecError::at(
                file,
                o.pos,
                o.key.clone(),
                format!(
                    "`{}` is set twice in {}: on line {} and on line {}; keep one",
                    o.key, o.section, p.line, o.pos.line
                ),
            ));
        }
    }
    Ok(())
}

/// Turns a mapping into dotted overrides: `{optimizer: {kind: sgd}}` → `optimizer.kind = sgd`.
pub(super) fn flatten(
    file: &str,
    prefix: &str,
    node: &Node,
    section: &str,
    out: &mut Vec<Override>,
) -> Result<(), SpecError> {
    let NodeKind::Map(entries) = &node.kind else {
        unreachable!("callers check for a mapping")
    };
    for (k, kpos, v) in entries {
        if k.is_empty() {
            return Err(SpecError::at(file, *kpos, prefix, "empty key"));
        }
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        if matches!(v.kind, NodeKind::Map(_)) && !LEAF_MAPS.contains(&key.as_str()) {
            flatten(file, &key, v, section, out)?;
        } else {
            out.push(Override {
                key,
                value: v.to_json(),
                pos: *kpos,
                section: section.into(),
            });
        }
    }
    Ok(())
}

/// The axes of `grid` or `zip`; an empty section (`grid:`) has none.
pub(super) fn axes(file: &str, section: &str, node: &Node) -> Result<Vec<Axis>, SpecError> {
    if matches!(node.kind, NodeKind::Scalar(Value::Null)) {
        return Ok(vec![]);
    }
    expect_map(file, section, node)?;
    let NodeKind::Map(entries) = &node.kind else {
        unreachable!()
    };
    let mut out = vec![];
    for (k, kpos, v) in entries {
        let err = |message: String| SpecError::at(file, *kpos, format!("{section}.{k}"), message);
        if let NodeKind::Map(m) = &v.kind
            && m.iter()
                .any(|(k, _, _)| k == "distribution" || k == "values")
        {
            return Err(err(format!(
                "a distribution is sampled, not crossed: set `method: random` or `method: tpe` and put `{k}` under `space`"
            )));
        }
        let NodeKind::Seq(items) = &v.kind else {
            return Err(err(format!(
                "an axis needs a list of values like [0.1, 0.01], found {}",
                v.type_name()
            )));
        };
        if items.is_empty() {
            return Err(err("the axis has no values".into()));
        }
        let values: Vec<Value> = items.iter().map(Node::to_json).collect();
        for (i, a) in values.iter().enumerate() {
            if values[..i].contains(a) {
                return Err(err(format!("the value {a} is listed twice")));
            }
        }
        out.push(Axis {
            key: k.clone(),
            values,
            pos: *kpos,
        });
    }
    Ok(out)
}

/// The axes of `zip`, which are walked in step and so must all have the first axis's length.
pub(super) fn zip_axes(file: &str, node: &Node) -> Result<Vec<Axis>, SpecError> {
    let zip = axes(file, "zip", node)?;
    if let Some(first) = zip.first() {
        for a in &zip[1..] {
            if a.values.len() != first.values.len() {
                return Err(SpecError::at(
                    file,
                    a.pos,
                    format!("zip.{}", a.key),
                    format!(
                        "zip lists must have equal lengths: `{}` has {} values, `{}` has {}",
                        first.key,
                        first.values.len(),
                        a.key,
                        a.values.len()
                    ),
                ));
            }
        }
    }
    Ok(zip)
}

/// The `seeds` list: whole numbers, none twice (a repeated seed would repeat a trial).
pub(super) fn seeds(file: &str, node: &Node) -> Result<Vec<u64>, SpecError> {
    let NodeKind::Seq(items) = &node.kind else {
        return Err(SpecError::at(
            file,
            node.pos,
            "seeds",
            format!(
                "expected a list of seeds like [1, 2, 3], found {}",
                node.type_name()
            ),
        ));
    };
    if items.is_empty() {
        return Err(SpecError::at(
            file,
            node.pos,
            "seeds",
            "the list of seeds is empty",
        ));
    }
    let mut seeds = vec![];
    for it in items {
        match it.to_json().as_u64() {
            Some(s) if !seeds.contains(&s) => seeds.push(s),
            Some(s) => {
                return Err(SpecError::at(
                    file,
                    it.pos,
                    "seeds",
                    format!("seed {s} is listed twice"),
                ));
            }
            None => {
                return Err(SpecError::at(
                    file,
                    it.pos,
                    "seeds",
                    format!(
                        "a seed must be a whole number ≥ 0, found {}",
                        it.type_name()
                    ),
                ));
            }
        }
    }
    Ok(seeds)
}

/// The `trials` list; names must be given and unique, since they name the trials.
pub(super) fn named_trials(file: &str, node: &Node) -> Result<Vec<NamedTrial>, SpecError> {
    let NodeKind::Seq(items) = &node.kind else {
        return Err(SpecError::at(
            file,
            node.pos,
            "trials",
            format!(
                "expected a list of trials (`- name: …` entries), found {}",
                node.type_name()
            ),
        ));
    };
    if items.is_empty() {
        return Err(SpecError::at(
            file,
            node.pos,
            "trials",
            "the list of trials is empty",
        ));
    }
    let mut out: Vec<NamedTrial> = vec![];
    for (i, it) in items.iter().enumerate() {
        let trial = named_trial(file, i, it)?;
        if let Some(prev) = out.iter().find(|t| t.name == trial.name) {
            return Err(SpecError::at(
                file,
                it.pos,
                format!("trials[{i}].name"),
                format!(
                    "duplicate trial name `{}` (first used at line {})",
                    trial.name, prev.pos.line
                ),
            ));
        }
        out.push(trial);
    }
    Ok(out)
}

/// Entry `i` of `trials`. Its keys may be dotted or nested, like those of `fixed`.
fn named_trial(file: &str, i: usize, it: &Node) -> Result<NamedTrial, SpecError> {
    let section = format!("trials[{i}]");
    expect_map(file, &section, it)?;
    let NodeKind::Map(entries) = &it.kind else {
        unreachable!()
    };
    let mut name = None;
    let mut overrides = vec![];
    for (k, kpos, v) in entries {
        if k == "name" {
            name = Some(expect_string(file, &format!("{section}.name"), v)?);
        } else if matches!(v.kind, NodeKind::Map(_)) && !LEAF_MAPS.contains(&k.as_str()) {
            flatten(file, k, v, &section, &mut overrides)?;
        } else {
            overrides.push(Override {
                key: k.clone(),
                value: v.to_json(),
                pos: *kpos,
                section: section.clone(),
            });
        }
    }
    let Some(name) = name else {
        return Err(SpecError::at(
            file,
            it.pos,
            section,
            "every listed trial needs a `name`",
        ));
    };
    Ok(NamedTrial {
        name,
        overrides,
        pos: it.pos,
    })
}

/// A section read by serde; its errors name the key path inside the section.
pub(super) fn deserialize_section<T: serde::de::DeserializeOwned>(
    file: &str,
    section: &str,
    node: &Node,
) -> Result<T, SpecError> {
    serde_path_to_error::deserialize(node.to_json()).map_err(|e| {
        let inner = super::words::plain(&e.inner().to_string());
        let path = e.path().to_string();
        let key = if path == "." || path.is_empty() {
            section.to_string()
        } else {
            format!("{section}.{path}")
        };
        SpecError::at(file, node.pos, key, inner)
    })
}

/// `fuse:` — a number of trials (1 or more) or `auto`.
pub(super) fn fuse(file: &str, node: &Node) -> Result<crate::spec::Fuse, SpecError> {
    let text = match &node.kind {
        NodeKind::Scalar(Value::String(s)) => s.clone(),
        NodeKind::Scalar(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    text.parse().map_err(|_| {
        SpecError::at(
            file,
            node.pos,
            "fuse",
            "expected a number of trials (1 or more) or `auto`",
        )
    })
}
