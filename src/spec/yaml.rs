//! YAML read into a tree that remembers where every key and value was written, so that any later
//! error can point at a line and column. Only the parts of YAML a sweep file needs are accepted.

use super::SpecError;
use serde_json::Value;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Sweep files are small; this bound turns a wrong file into an error instead of a long parse.
pub const MAX_FILE_BYTES: usize = 4 << 20;
const MAX_DEPTH: usize = 64;

/// Where in the file something was written (1-based line and column).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
}

/// A YAML value with the position of each node.
#[derive(Debug, Clone)]
pub struct Node {
    /// Where the value starts.
    pub pos: Pos,
    /// The value itself.
    pub kind: NodeKind,
    /// A scalar's text as written (without quotes); `None` for lists and mappings. Names are
    /// taken from it, so `name: 1.50` stays `1.50` (its value would print as `1.5`).
    pub text: Option<String>,
}

/// The three shapes a YAML value can take.
#[derive(Debug, Clone)]
pub enum NodeKind {
    /// A plain value, already resolved to null, boolean, number or string.
    Scalar(Value),
    /// A list.
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

    pub(super) fn type_name(&self) -> &'static str {
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
                            ));
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
                    text: Some(text),
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
                self.stack.push((
                    Node {
                        pos,
                        kind,
                        text: None,
                    },
                    None,
                ));
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
    // The core schema's infinities and not-a-number; plain `nan` or `inf` are strings.
    let special = text.trim_start_matches(['-', '+']);
    if matches!(special, ".nan" | ".NaN" | ".NAN" | ".inf" | ".Inf" | ".INF") {
        return Err(format!("`{text}` is not a finite number"));
    }
    let looks_numeric = text
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-' | '_'))
        && text.chars().any(|c| c.is_ascii_digit());
    if !looks_numeric {
        return Ok(Value::String(text.to_string()));
    }
    // Digits may be grouped with `_` (`60_000`).
    let digits = text.replace('_', "");
    if let Ok(i) = digits.parse::<i64>() {
        return Ok(Value::from(i));
    }
    if let Ok(u) = digits.parse::<u64>() {
        return Ok(Value::from(u));
    }
    match digits.parse::<f64>() {
        Ok(f) if !f.is_finite() => Err(format!("`{text}` is not a finite number")),
        Ok(f) => Ok(serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        Err(_) => Ok(Value::String(text.to_string())),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(scalar("-.Inf", TScalarStyle::Plain).is_err());
        assert!(scalar(".NaN", TScalarStyle::Plain).is_err());
        assert!(scalar("1e999", TScalarStyle::Plain).is_err());
        // Only the dotted forms are numbers: a program may take `nan` as a word.
        for word in ["nan", "NaN", "inf", "-inf", "infinity"] {
            assert_eq!(
                scalar(word, TScalarStyle::Plain).unwrap(),
                serde_json::json!(word)
            );
        }
        assert_eq!(
            scalar("60_000", TScalarStyle::Plain).unwrap(),
            serde_json::json!(60000)
        );
    }
}
