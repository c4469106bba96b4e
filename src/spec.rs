//! A sweep file: YAML read with the position of every key, checked section by section, into a
//! `Spec` (what the user said). Expanding it into trials is `plan.rs`; nothing here does I/O
//! beyond reading the file, and nothing touches a device.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;
use std::path::Path;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Sweep files are small; this bound turns a wrong file into an error instead of a long parse.
pub const MAX_FILE_BYTES: usize = 4 << 20;
const MAX_DEPTH: usize = 64;

/// Where in the file something was written (1-based line and column).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

/// A problem with the user's sweep file: where, which key, what was expected.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecError {
    pub file: String,
    pub pos: Option<Pos>,
    /// Dotted key path (`grid.optimizer.learning_rate`); empty for the whole file.
    pub key: String,
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(p) = self.pos {
            write!(f, ":{}:{}", p.line, p.col)?;
        }
        if !self.key.is_empty() {
            write!(f, ": `{}`", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for SpecError {}

/// A YAML value with the position of each node.
#[derive(Debug, Clone)]
pub struct Node {
    pub pos: Pos,
    pub kind: NodeKind,
}

#[derive(Debug, Clone)]
pub enum NodeKind {
    Scalar(Value),
    Seq(Vec<Node>),
    /// Keys keep their own positions, in file order.
    Map(Vec<(String, Pos, Node)>),
}

impl Node {
    /// Plain JSON, for serde; floats that JSON cannot hold (.nan, .inf) were refused earlier.
    pub fn to_json(&self) -> Value {
        match &self.kind {
            NodeKind::Scalar(v) => v.clone(),
            NodeKind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeKind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, _, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }

    fn type_name(&self) -> &'static str {
        match &self.kind {
            NodeKind::Scalar(Value::Null) => "nothing (null)",
            NodeKind::Scalar(Value::Bool(_)) => "a boolean",
            NodeKind::Scalar(Value::Number(_)) => "a number",
            NodeKind::Scalar(Value::String(_)) => "a string",
            NodeKind::Scalar(_) => "a value",
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
        }
    }
}

fn pos_of(m: &Marker) -> Pos {
    Pos {
        line: m.line(),
        col: m.col() + 1,
    }
}

/// Builds `Node`s from parser events without recursion (deep input cannot overflow the stack).
struct Builder {
    stack: Vec<(Node, Option<(String, Pos)>)>,
    root: Option<Node>,
    documents: usize,
    error: Option<(Pos, String)>,
}

impl Builder {
    fn push_value(&mut self, node: Node) {
        if self.error.is_some() {
            return;
        }
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some((parent, pending_key)) => match &mut parent.kind {
                NodeKind::Seq(items) => items.push(node),
                NodeKind::Map(entries) => match pending_key.take() {
                    None => match node.kind {
                        NodeKind::Scalar(v) => {
                            let key = match v {
                                Value::String(s) => s,
                                Value::Null => String::new(),
                                other => other.to_string(),
                            };
                            if entries.iter().any(|(k, _, _)| *k == key) {
                                self.error = Some((node.pos, format!("duplicate key `{key}`")));
                            }
                            *pending_key = Some((key, node.pos));
                        }
                        _ => {
                            self.error = Some((
                                node.pos,
                                "a mapping key must be a plain word, not a list or mapping".into(),
                            ))
                        }
                    },
                    Some((k, kpos)) => entries.push((k, kpos, node)),
                },
                NodeKind::Scalar(_) => unreachable!("scalars never sit on the stack"),
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let pos = pos_of(&mark);
        match ev {
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents > 1 {
                    self.error = Some((pos, "only one YAML document per sweep file".into()));
                }
            }
            Event::Alias(_) => {
                self.error = Some((pos, "YAML aliases (*name) are not supported".into()));
            }
            Event::Scalar(text, style, _, _) => match scalar(&text, style) {
                Ok(v) => self.push_value(Node {
                    pos,
                    kind: NodeKind::Scalar(v),
                }),
                Err(e) => self.error = Some((pos, e)),
            },
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                if self.stack.len() >= MAX_DEPTH {
                    self.error = Some((pos, format!("nesting deeper than {MAX_DEPTH} levels")));
                    return;
                }
                let kind = if matches!(ev, Event::SequenceStart(..)) {
                    NodeKind::Seq(vec![])
                } else {
                    NodeKind::Map(vec![])
                };
                self.stack.push((Node { pos, kind }, None));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((node, _)) = self.stack.pop() {
                    self.push_value(node);
                }
            }
            _ => {}
        }
    }
}

/// YAML 1.2 core schema resolution of a scalar.
fn scalar(text: &str, style: TScalarStyle) -> Result<Value, String> {
    if style != TScalarStyle::Plain {
        return Ok(Value::String(text.to_string()));
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Ok(Value::Null),
        "true" | "True" | "TRUE" => return Ok(Value::Bool(true)),
        "false" | "False" | "FALSE" => return Ok(Value::Bool(false)),
        _ => {}
    }
    let lower = text.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        ".nan" | ".inf" | "-.inf" | "+.inf" | "nan" | "inf" | "-inf"
    ) {
        return Err(format!("`{text}` is not a finite number"));
    }
    if let Ok(i) = text.parse::<i64>() {
        return Ok(Value::from(i));
    }
    if let Ok(u) = text.parse::<u64>() {
        return Ok(Value::from(u));
    }
    let looks_numeric = text
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-' | '_'))
        && text.chars().any(|c| c.is_ascii_digit());
    if looks_numeric && let Ok(f) = text.replace('_', "").parse::<f64>() {
        if !f.is_finite() {
            return Err(format!("`{text}` is not a finite number"));
        }
        return Ok(serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null));
    }
    Ok(Value::String(text.to_string()))
}

/// Parses YAML text into a positioned tree.
pub fn parse_yaml(file: &str, text: &str) -> Result<Node, SpecError> {
    let err = |pos: Option<Pos>, message: String| SpecError {
        file: file.into(),
        pos,
        key: String::new(),
        message,
    };
    if text.len() > MAX_FILE_BYTES {
        return Err(err(
            None,
            format!(
                "the file is {} bytes; sweep files are limited to {} bytes",
                text.len(),
                MAX_FILE_BYTES
            ),
        ));
    }
    let mut b = Builder {
        stack: vec![],
        root: None,
        documents: 0,
        error: None,
    };
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut b, true) {
        let m = e.marker();
        return Err(err(
            Some(pos_of(m)),
            format!("not valid YAML: {}", e.info()),
        ));
    }
    if let Some((pos, msg)) = b.error {
        return Err(err(Some(pos), msg));
    }
    match b.root {
        Some(n) => Ok(n),
        None => Err(err(
            None,
            "the file is empty: a sweep needs at least `name` and `fixed`".into(),
        )),
    }
}

/// One axis of the grid or zip: a dotted key and its values.
#[derive(Debug, Clone)]
pub struct Axis {
    pub key: String,
    pub values: Vec<Value>,
    pub pos: Pos,
}

/// A value set at a dotted key, with where it was written (for error messages).
#[derive(Debug, Clone)]
pub struct Override {
    pub key: String,
    pub value: Value,
    pub pos: Pos,
    /// The section it came from: `fixed`, `grid`, `zip`, `trials[2]`.
    pub section: String,
}

#[derive(Debug, Clone)]
pub struct NamedTrial {
    pub name: String,
    pub overrides: Vec<Override>,
    pub pos: Pos,
}

/// Report options; they shape `hypersweep report` and never change a trial.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ReportOptions {
    /// The metric tables are sorted by (a column of summary.csv).
    pub metric: String,
    /// First epoch at which each trial reaches this accuracy (S3's "97% at epoch 2").
    pub threshold: Option<f64>,
    /// Which accuracy the threshold is read on: `val_accuracy` or `test_accuracy`.
    pub threshold_metric: String,
    pub title: Option<String>,
}

impl Default for ReportOptions {
    fn default() -> Self {
        Self {
            metric: "test_accuracy".into(),
            threshold: None,
            threshold_metric: "val_accuracy".into(),
            title: None,
        }
    }
}

/// A validated sweep file.
#[derive(Debug, Clone)]
pub struct Spec {
    pub file: String,
    pub source: String,
    pub name: String,
    pub description: String,
    /// `data` and `fixed` flattened into dotted overrides of the default trial.
    pub base: Vec<Override>,
    pub grid: Vec<Axis>,
    pub zip: Vec<Axis>,
    pub trials: Vec<NamedTrial>,
    pub seeds: Option<Vec<u64>>,
    pub report: ReportOptions,
}

const TOP_KEYS: &[&str] = &[
    "name",
    "description",
    "data",
    "fixed",
    "grid",
    "trials",
    "zip",
    "seeds",
    "report",
];

/// Levenshtein distance, for "did you mean".
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest candidate to a misspelt word, when it is close enough to be a likely typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

impl Spec {
    pub fn load(path: &Path) -> Result<Spec, SpecError> {
        let file = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| SpecError {
            file: file.clone(),
            pos: None,
            key: String::new(),
            message: format!("cannot read the sweep file: {e}"),
        })?;
        if bytes.len() > MAX_FILE_BYTES {
            return Err(SpecError {
                file,
                pos: None,
                key: String::new(),
                message: format!(
                    "the file is {} bytes; sweep files are limited to {} bytes",
                    bytes.len(),
                    MAX_FILE_BYTES
                ),
            });
        }
        let text = String::from_utf8(bytes).map_err(|e| SpecError {
            file: file.clone(),
            pos: None,
            key: String::new(),
            message: format!(
                "not a text file: invalid UTF-8 at byte {}",
                e.utf8_error().valid_up_to()
            ),
        })?;
        Spec::parse(&file, &text)
    }

    /// Parses and checks the sweep-level structure. Trial values are checked by `plan::expand`,
    /// which resolves every trial.
    pub fn parse(file: &str, text: &str) -> Result<Spec, SpecError> {
        let root = parse_yaml(file, text)?;
        let err = |pos: Pos, key: &str, message: String| SpecError {
            file: file.into(),
            pos: Some(pos),
            key: key.into(),
            message,
        };
        let NodeKind::Map(entries) = &root.kind else {
            return Err(err(
                root.pos,
                "",
                format!(
                    "a sweep file must be a mapping with keys {}; found {}",
                    TOP_KEYS.join(", "),
                    root.type_name()
                ),
            ));
        };
        let mut spec = Spec {
            file: file.into(),
            source: text.into(),
            name: String::new(),
            description: String::new(),
            base: vec![],
            grid: vec![],
            zip: vec![],
            trials: vec![],
            seeds: None,
            report: ReportOptions::default(),
        };
        let mut seen_fixed = false;
        for (key, kpos, node) in entries {
            match key.as_str() {
                "name" => {
                    spec.name = expect_string(file, key, node)?;
                    if spec.name.is_empty()
                        || !spec
                            .name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                        || spec.name.starts_with('.')
                    {
                        return Err(err(
                            node.pos,
                            "name",
                            "the sweep name becomes a directory: use letters, digits, `-`, `_` and `.`".into(),
                        ));
                    }
                }
                "description" => spec.description = expect_string(file, key, node)?,
                "data" => {
                    expect_map(file, key, node)?;
                    flatten(file, "data", node, "data", &mut spec.base)?;
                }
                "fixed" => {
                    seen_fixed = true;
                    if !matches!(node.kind, NodeKind::Scalar(Value::Null)) {
                        expect_map(file, key, node)?;
                        flatten(file, "", node, "fixed", &mut spec.base)?;
                    }
                }
                "grid" => spec.grid = axes(file, "grid", node)?,
                "zip" => {
                    spec.zip = axes(file, "zip", node)?;
                    if let Some(first) = spec.zip.first() {
                        for a in &spec.zip[1..] {
                            if a.values.len() != first.values.len() {
                                return Err(err(
                                    a.pos,
                                    &format!("zip.{}", a.key),
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
                }
                "trials" => spec.trials = named_trials(file, node)?,
                "seeds" => {
                    let NodeKind::Seq(items) = &node.kind else {
                        return Err(err(
                            node.pos,
                            "seeds",
                            format!(
                                "expected a list of seeds like [1, 2, 3], found {}",
                                node.type_name()
                            ),
                        ));
                    };
                    if items.is_empty() {
                        return Err(err(node.pos, "seeds", "the list of seeds is empty".into()));
                    }
                    let mut seeds = vec![];
                    for it in items {
                        match it.to_json().as_u64() {
                            Some(s) if !seeds.contains(&s) => seeds.push(s),
                            Some(s) => {
                                return Err(err(
                                    it.pos,
                                    "seeds",
                                    format!("seed {s} is listed twice"),
                                ));
                            }
                            None => {
                                return Err(err(
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
                    spec.seeds = Some(seeds);
                }
                "report" => {
                    expect_map(file, key, node)?;
                    spec.report = deserialize_section(file, "report", node)?;
                }
                other => {
                    let hint = closest(other, TOP_KEYS.iter().copied())
                        .map(|c| format!(" did you mean `{c}`?"))
                        .unwrap_or_default();
                    return Err(err(
                        *kpos,
                        other,
                        format!(
                            "unknown top-level key `{other}` (line {}).{hint} Expected one of: {}",
                            kpos.line,
                            TOP_KEYS.join(", ")
                        ),
                    ));
                }
            }
        }
        if spec.name.is_empty() {
            return Err(err(
                root.pos,
                "name",
                "missing `name`: it names the results directory (results/<name>/)".into(),
            ));
        }
        if !seen_fixed && spec.grid.is_empty() && spec.trials.is_empty() && spec.zip.is_empty() {
            return Err(err(
                root.pos,
                "fixed",
                "nothing to run: give at least `fixed`, `grid`, `zip` or `trials`".into(),
            ));
        }
        Ok(spec)
    }
}

fn expect_string(file: &str, key: &str, node: &Node) -> Result<String, SpecError> {
    match &node.kind {
        NodeKind::Scalar(Value::String(s)) => Ok(s.clone()),
        NodeKind::Scalar(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(SpecError {
            file: file.into(),
            pos: Some(node.pos),
            key: key.into(),
            message: format!("expected a string, found {}", node.type_name()),
        }),
    }
}

fn expect_map(file: &str, key: &str, node: &Node) -> Result<(), SpecError> {
    if matches!(node.kind, NodeKind::Map(_)) {
        return Ok(());
    }
    Err(SpecError {
        file: file.into(),
        pos: Some(node.pos),
        key: key.into(),
        message: format!(
            "expected a mapping (key: value lines), found {}",
            node.type_name()
        ),
    })
}

/// Keys whose value is a whole unit even when written as a mapping: they are set, not merged.
const LEAF_MAPS: &[&str] = &["data.normalize"];

/// Turns a mapping into dotted overrides: `{optimizer: {kind: sgd}}` → `optimizer.kind = sgd`.
fn flatten(
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
            return Err(SpecError {
                file: file.into(),
                pos: Some(*kpos),
                key: prefix.into(),
                message: "empty key".into(),
            });
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

fn axes(file: &str, section: &str, node: &Node) -> Result<Vec<Axis>, SpecError> {
    if matches!(node.kind, NodeKind::Scalar(Value::Null)) {
        return Ok(vec![]);
    }
    expect_map(file, section, node)?;
    let NodeKind::Map(entries) = &node.kind else {
        unreachable!()
    };
    let mut out = vec![];
    for (k, kpos, v) in entries {
        let err = |message: String| SpecError {
            file: file.into(),
            pos: Some(*kpos),
            key: format!("{section}.{k}"),
            message,
        };
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

fn named_trials(file: &str, node: &Node) -> Result<Vec<NamedTrial>, SpecError> {
    let NodeKind::Seq(items) = &node.kind else {
        return Err(SpecError {
            file: file.into(),
            pos: Some(node.pos),
            key: "trials".into(),
            message: format!(
                "expected a list of trials (`- name: …` entries), found {}",
                node.type_name()
            ),
        });
    };
    if items.is_empty() {
        return Err(SpecError {
            file: file.into(),
            pos: Some(node.pos),
            key: "trials".into(),
            message: "the list of trials is empty".into(),
        });
    }
    let mut out: Vec<NamedTrial> = vec![];
    for (i, it) in items.iter().enumerate() {
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
            return Err(SpecError {
                file: file.into(),
                pos: Some(it.pos),
                key: section,
                message: "every listed trial needs a `name`".into(),
            });
        };
        if let Some(prev) = out.iter().find(|t| t.name == name) {
            return Err(SpecError {
                file: file.into(),
                pos: Some(it.pos),
                key: format!("{section}.name"),
                message: format!(
                    "duplicate trial name `{name}` (first used at line {})",
                    prev.pos.line
                ),
            });
        }
        out.push(NamedTrial {
            name,
            overrides,
            pos: it.pos,
        });
    }
    Ok(out)
}

fn deserialize_section<T: serde::de::DeserializeOwned>(
    file: &str,
    section: &str,
    node: &Node,
) -> Result<T, SpecError> {
    serde_path_to_error::deserialize(node.to_json()).map_err(|e| {
        let inner = e.inner().to_string();
        let path = e.path().to_string();
        let key = if path == "." || path.is_empty() {
            section.to_string()
        } else {
            format!("{section}.{path}")
        };
        SpecError {
            file: file.into(),
            pos: Some(node.pos),
            key,
            message: inner,
        }
    })
}

/// Walks a JSON object into its dotted leaf paths (the valid keys of a trial).
pub fn leaf_paths(value: &Value, prefix: &str, out: &mut Vec<String>) {
    if let Value::Object(m) = value {
        for (k, v) in m {
            let p = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            out.push(p.clone());
            leaf_paths(v, &p, out);
        }
    }
}

/// Sets `value` at a dotted path, creating the mappings on the way.
pub fn set_path(root: &mut Map<String, Value>, path: &str, value: Value) -> Result<(), String> {
    let mut parts = path.split('.').peekable();
    let mut cur = root;
    while let Some(part) = parts.next() {
        if part.is_empty() {
            return Err(format!("`{path}` has an empty part"));
        }
        if parts.peek().is_none() {
            cur.insert(part.to_string(), value);
            return Ok(());
        }
        let slot = cur
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        cur = slot.as_object_mut().expect("just made an object");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn positions_are_one_based() {
        let e = Spec::parse("f.yaml", "name: x\nfixd: {}\n").unwrap_err();
        assert_eq!(e.pos, Some(Pos { line: 2, col: 1 }));
        assert!(e.message.contains("did you mean `fixed`"));
    }

    #[test]
    fn scalars_follow_the_yaml_core_schema() {
        assert_eq!(
            scalar("1e-5", TScalarStyle::Plain).unwrap(),
            serde_json::json!(1e-5)
        );
        assert_eq!(
            scalar("42", TScalarStyle::Plain).unwrap(),
            serde_json::json!(42)
        );
        assert_eq!(
            scalar("'42'", TScalarStyle::SingleQuoted).unwrap(),
            serde_json::json!("'42'")
        );
        assert_eq!(
            scalar("relu", TScalarStyle::Plain).unwrap(),
            serde_json::json!("relu")
        );
        assert_eq!(scalar("~", TScalarStyle::Plain).unwrap(), Value::Null);
        assert!(scalar(".inf", TScalarStyle::Plain).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn parsing_never_panics(text in "\\PC{0,200}") {
            if let Ok(spec) = Spec::parse("p.yaml", &text) {
                let _ = crate::plan::expand(&spec);
            }
        }

        #[test]
        fn yaml_like_text_never_panics(lines in proptest::collection::vec(
            "(name|fixed|grid|zip|trials|seeds|data|report|  epochs|  batch_size|  model|  - name|    optimizer.learning_rate)(: )?(\\[|\\{|1|0.1|-1|x|\\]|\\}|, |\\[1, 2\\]|relu|true|null)*", 0..12)) {
            let text = lines.join("\n");
            if let Ok(spec) = Spec::parse("p.yaml", &text) {
                let _ = crate::plan::expand(&spec);
            }
        }
    }
}
