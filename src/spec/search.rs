//! The search keys of a sweep file: `method`, `count`, `search_seed`, `space` (one distribution
//! per dotted key) and `early_terminate`, read from the positioned tree; `check` then makes sure
//! they fit together (a space needs a sampling method, sampling needs a count).

use super::sections::{deserialize_section, expect_map};
use super::yaml::{Node, NodeKind, Pos};
use super::{Goal, SpecError, closest};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How the trials are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Every combination of the grid (the default).
    #[default]
    Grid,
    /// `count` independent draws from the space, reproducible from `search_seed`.
    Random,
    /// Tree-structured Parzen estimator: each new trial proposed from the finished ones.
    Tpe,
}

const METHODS: &[&str] = &["grid", "random", "tpe"];

/// The distribution a key of `space` is sampled from; bounds are inclusive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "distribution", rename_all = "snake_case")]
pub enum Distribution {
    /// One of the listed values, each equally likely.
    Values {
        /// The choices, in file order.
        values: Vec<Value>,
    },
    /// A real number, uniform between the bounds.
    Uniform {
        /// Lower bound.
        min: f64,
        /// Upper bound.
        max: f64,
    },
    /// A positive real number whose logarithm is uniform (learning rates).
    LogUniform {
        /// Lower bound, above 0.
        min: f64,
        /// Upper bound.
        max: f64,
    },
    /// A whole number, each in the range equally likely.
    IntUniform {
        /// Lower bound.
        min: i64,
        /// Upper bound.
        max: i64,
    },
    /// A positive whole number whose logarithm is uniform (batch sizes, widths).
    IntLogUniform {
        /// Lower bound, at least 1.
        min: i64,
        /// Upper bound.
        max: i64,
    },
    /// A real number, uniform, rounded to a multiple of `q`.
    QUniform {
        /// Lower bound.
        min: f64,
        /// Upper bound.
        max: f64,
        /// The step values are rounded to.
        q: f64,
    },
}

impl Distribution {
    /// True for the distributions drawn on a log scale (their plots use a log axis).
    pub fn is_log(&self) -> bool {
        matches!(
            self,
            Distribution::LogUniform { .. } | Distribution::IntLogUniform { .. }
        )
    }
}

const DISTRIBUTIONS: &[&str] = &[
    "values",
    "uniform",
    "log_uniform",
    "int_uniform",
    "int_log_uniform",
    "q_uniform",
];
const PARAM_KEYS: &[&str] = &["distribution", "min", "max", "q", "values"];

/// One key of `space`: a dotted trial key and where its values come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Param {
    /// The dotted key sampled (`optimizer.learning_rate`).
    pub key: String,
    /// Its distribution.
    pub dist: Distribution,
    /// Where the key was written.
    #[serde(skip)]
    pub pos: Pos,
}

/// The search part of a sweep file, with where each key was written (for errors).
#[derive(Debug, Clone, Default)]
pub struct Search {
    /// `method`, grid unless given.
    pub method: Method,
    /// Where `method` was written.
    pub method_pos: Option<Pos>,
    /// `count`: how many trials to sample, and where it was written.
    pub count: Option<(usize, Pos)>,
    /// `search_seed`: the seed of every draw (0 unless given), and where it was written.
    pub seed: Option<(u64, Pos)>,
    /// `space`, in file order.
    pub space: Vec<Param>,
    /// Where `space` was written.
    pub space_pos: Option<Pos>,
}

impl Search {
    /// The seed every draw derives from.
    pub fn seed(&self) -> u64 {
        self.seed.map_or(0, |(s, _)| s)
    }
}

/// The early-termination rule of a sweep: which trials stop before their last epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarlyTerminate {
    /// `hyperband` or `median`.
    #[serde(rename = "type")]
    pub kind: PruneKind,
    /// The per-epoch metric compared (`val_accuracy`, or a metric a program reports); the
    /// program's metric, else `val_accuracy`, when absent.
    #[serde(default)]
    pub metric: Option<String>,
    /// Hyperband: the first rung; median: no trial stops before this epoch.
    #[serde(default = "one")]
    pub min_epochs: usize,
    /// Hyperband: rungs at min_epochs·eta^k, and the top 1/eta of a rung go on.
    #[serde(default = "three")]
    pub eta: usize,
    /// Median: trials that must have reached an epoch before any is stopped there.
    #[serde(default = "three")]
    pub min_trials: usize,
    /// Whether larger or smaller values of the metric are better; guessed from its name.
    #[serde(default)]
    pub goal: Option<Goal>,
}

fn one() -> usize {
    1
}

fn three() -> usize {
    3
}

impl EarlyTerminate {
    /// The metric compared (filled in by `Spec::parse` when the file gives none).
    pub fn metric(&self) -> &str {
        self.metric.as_deref().unwrap_or("val_accuracy")
    }

    /// Whether larger or smaller values of the metric are better.
    pub fn goal(&self) -> Goal {
        self.goal.unwrap_or_else(|| Goal::guess(self.metric()))
    }
}

/// The rules of early termination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PruneKind {
    /// Asynchronous successive halving: at each rung only the top 1/eta go on.
    Hyperband,
    /// A trial whose best value is worse than the others' median at the same epoch stops.
    Median,
}

/// `method: grid | random | tpe`.
pub(super) fn method(file: &str, node: &Node) -> Result<Method, SpecError> {
    match node.to_json().as_str() {
        Some("grid") => Ok(Method::Grid),
        Some("random") => Ok(Method::Random),
        Some("tpe") => Ok(Method::Tpe),
        other => {
            let hint = other
                .and_then(|o| closest(o, METHODS.iter().copied()))
                .map(|c| format!(" did you mean `{c}`?"))
                .unwrap_or_default();
            Err(SpecError::at(
                file,
                node.pos,
                "method",
                format!(
                    "unknown method {}.{hint} Expected one of: {}",
                    node.to_json(),
                    METHODS.join(", ")
                ),
            ))
        }
    }
}

/// A value as the error names it: a string as one (`count: "10"` is not the number 10), a
/// number as written, anything else by its kind.
fn found(node: &Node) -> String {
    match (&node.kind, &node.text) {
        (NodeKind::Scalar(Value::String(s)), _) => format!("the string {s:?}"),
        (NodeKind::Scalar(Value::Number(_) | Value::Bool(_)), Some(t)) => t.clone(),
        _ => node.type_name().into(),
    }
}

/// A whole number ≥ `min` for `count` and `search_seed`.
pub(super) fn whole(file: &str, key: &str, node: &Node, min: u64) -> Result<u64, SpecError> {
    match node.to_json().as_u64() {
        Some(n) if n >= min => Ok(n),
        _ => Err(SpecError::at(
            file,
            node.pos,
            key,
            format!("expected a whole number ≥ {min}, found {}", found(node)),
        )),
    }
}

/// The `space` mapping: one distribution per dotted key.
pub(super) fn space(file: &str, node: &Node) -> Result<Vec<Param>, SpecError> {
    let NodeKind::Map(entries) = &node.kind else {
        return Err(SpecError::at(
            file,
            node.pos,
            "space",
            format!(
                "expected a mapping of keys to distributions, found {}",
                node.type_name()
            ),
        ));
    };
    if entries.is_empty() {
        return Err(SpecError::at(file, node.pos, "space", "the space is empty"));
    }
    entries
        .iter()
        .map(|(k, kpos, v)| {
            Ok(Param {
                key: k.clone(),
                dist: distribution(file, &format!("space.{k}"), *kpos, v)?,
                pos: *kpos,
            })
        })
        .collect()
}

/// One entry of `space`: `{values: [...]}` or `{distribution: …, min: …, max: …[, q: …]}`.
fn distribution(file: &str, key: &str, kpos: Pos, node: &Node) -> Result<Distribution, SpecError> {
    let err = |pos: Pos, m: String| SpecError::at(file, pos, key, m);
    let NodeKind::Map(entries) = &node.kind else {
        return Err(err(
            kpos,
            format!(
                "expected a distribution like {{distribution: uniform, min: 0.0, max: 0.5}} or {{values: [a, b]}}, found {}",
                node.type_name()
            ),
        ));
    };
    for (k, p, _) in entries {
        if !PARAM_KEYS.contains(&k.as_str()) {
            let hint = closest(k, PARAM_KEYS.iter().copied())
                .map(|c| format!(" did you mean `{c}`?"))
                .unwrap_or_default();
            return Err(err(
                *p,
                format!(
                    "unknown key `{k}` (line {}).{hint} Expected one of: {}",
                    p.line,
                    PARAM_KEYS.join(", ")
                ),
            ));
        }
    }
    let get = |name: &str| entries.iter().find(|(k, _, _)| k == name).map(|e| &e.2);
    let kind = match get("distribution") {
        Some(d) => d.to_json().as_str().map(String::from).ok_or_else(|| {
            err(
                d.pos,
                format!(
                    "`distribution` must be one of: {}",
                    DISTRIBUTIONS.join(", ")
                ),
            )
        })?,
        None if get("values").is_some() => "values".into(),
        None => {
            return Err(err(
                kpos,
                format!(
                    "missing `distribution`: one of {} (or give `values: [...]`)",
                    DISTRIBUTIONS.join(", ")
                ),
            ));
        }
    };
    let dpos = get("distribution").map_or(kpos, |d| d.pos);
    if kind == "values" {
        return values(file, key, kpos, get("values"), get("min").or(get("max")));
    }
    if let Some(v) = get("values") {
        return Err(err(
            v.pos,
            format!("`values` lists the choices of `distribution: values`, not of `{kind}`"),
        ));
    }
    let bounds = Bounds {
        file,
        key,
        at: kpos,
    };
    let q = get("q");
    if q.is_some() && kind != "q_uniform" {
        return Err(err(
            dpos,
            format!("`q` is the step of `q_uniform`, not of `{kind}`"),
        ));
    }
    match kind.as_str() {
        "uniform" => bounds
            .real(get("min"), get("max"), false)
            .map(|(min, max)| Distribution::Uniform { min, max }),
        "log_uniform" => bounds
            .real(get("min"), get("max"), true)
            .map(|(min, max)| Distribution::LogUniform { min, max }),
        "int_uniform" => bounds
            .int(get("min"), get("max"), false)
            .map(|(min, max)| Distribution::IntUniform { min, max }),
        "int_log_uniform" => bounds
            .int(get("min"), get("max"), true)
            .map(|(min, max)| Distribution::IntLogUniform { min, max }),
        "q_uniform" => {
            let (min, max) = bounds.real(get("min"), get("max"), false)?;
            let q = bounds.number("q", q)?;
            if !(q > 0.0 && q <= max - min) {
                return Err(err(
                    kpos,
                    format!(
                        "`q` must be above 0 and at most max − min ({}), found {q}",
                        max - min
                    ),
                ));
            }
            Ok(Distribution::QUniform { min, max, q })
        }
        other => {
            let hint = closest(other, DISTRIBUTIONS.iter().copied())
                .map(|c| format!(" did you mean `{c}`?"))
                .unwrap_or_default();
            Err(err(
                dpos,
                format!(
                    "unknown distribution `{other}`.{hint} Expected one of: {}",
                    DISTRIBUTIONS.join(", ")
                ),
            ))
        }
    }
}

/// `{values: [...]}`: a non-empty list, no value twice.
fn values(
    file: &str,
    key: &str,
    kpos: Pos,
    node: Option<&Node>,
    bound: Option<&Node>,
) -> Result<Distribution, SpecError> {
    let err = |pos: Pos, m: &str| SpecError::at(file, pos, key, m);
    if let Some(b) = bound {
        return Err(err(
            b.pos,
            "`min` and `max` bound a numeric distribution; `values` lists the choices",
        ));
    }
    let Some(Node {
        kind: NodeKind::Seq(items),
        ..
    }) = node
    else {
        return Err(err(
            node.map_or(kpos, |n| n.pos),
            "`values` needs a list like [a, b, c]",
        ));
    };
    if items.is_empty() {
        return Err(err(kpos, "`values` has no values"));
    }
    let values: Vec<Value> = items.iter().map(Node::to_json).collect();
    for (i, a) in values.iter().enumerate() {
        if values[..i].contains(a) {
            return Err(err(items[i].pos, &format!("the value {a} is listed twice")));
        }
    }
    Ok(Distribution::Values { values })
}

/// Reads and checks the bounds of one numeric distribution.
struct Bounds<'a> {
    file: &'a str,
    key: &'a str,
    at: Pos,
}

impl Bounds<'_> {
    fn err(&self, pos: Pos, m: String) -> SpecError {
        SpecError::at(self.file, pos, self.key, m)
    }

    fn number(&self, name: &str, node: Option<&Node>) -> Result<f64, SpecError> {
        let Some(n) = node else {
            return Err(self.err(self.at, format!("missing `{name}`")));
        };
        n.to_json().as_f64().ok_or_else(|| {
            self.err(
                n.pos,
                format!("`{name}` must be a number, found {}", n.type_name()),
            )
        })
    }

    fn real(
        &self,
        min: Option<&Node>,
        max: Option<&Node>,
        log: bool,
    ) -> Result<(f64, f64), SpecError> {
        let (lo, hi) = (self.number("min", min)?, self.number("max", max)?);
        let at = min.map_or(self.at, |n| n.pos);
        if lo >= hi {
            return Err(self.err(at, format!("min ({lo}) must be below max ({hi})")));
        }
        if log && lo <= 0.0 {
            return Err(self.err(
                at,
                format!("a log distribution needs bounds above 0, found min {lo}"),
            ));
        }
        Ok((lo, hi))
    }

    fn int(
        &self,
        min: Option<&Node>,
        max: Option<&Node>,
        log: bool,
    ) -> Result<(i64, i64), SpecError> {
        let (lo, hi) = self.real(min, max, log)?;
        for (name, v, n) in [("min", lo, min), ("max", hi, max)] {
            if v.fract() != 0.0 || v.abs() > 1e15 {
                return Err(self.err(
                    n.map_or(self.at, |n| n.pos),
                    format!(
                        "`{name}` of an integer distribution must be a whole number, found {v}"
                    ),
                ));
            }
        }
        Ok((lo as i64, hi as i64))
    }
}

/// The search keys checked against each other and against `grid`: a space needs a sampling
/// method and a sampling method needs a space and a count.
pub(super) fn check(
    file: &str,
    s: &Search,
    grid_pos: Option<Pos>,
    crossed: &[(&str, Option<Pos>)],
) -> Result<(), SpecError> {
    let at = |p: Option<Pos>| p.unwrap_or_default();
    match s.method {
        Method::Grid => {
            if let Some(p) = s.space_pos {
                return Err(SpecError::at(
                    file,
                    p,
                    "space",
                    "`space` is sampled: set `method: random` or `method: tpe`, or list the values under `grid`",
                ));
            }
            for (key, p) in [
                ("count", s.count.map(|c| c.1)),
                ("search_seed", s.seed.map(|c| c.1)),
            ] {
                if let Some(p) = p {
                    return Err(SpecError::at(
                        file,
                        p,
                        key,
                        format!(
                            "`{key}` applies to `method: random` or `method: tpe`; this sweep's method is grid"
                        ),
                    ));
                }
            }
            Ok(())
        }
        Method::Random | Method::Tpe => {
            let name = if s.method == Method::Random {
                "random"
            } else {
                "tpe"
            };
            if s.count.is_none() {
                return Err(SpecError::at(
                    file,
                    at(s.method_pos),
                    "count",
                    format!("`method: {name}` needs `count`: how many trials to sample"),
                ));
            }
            if s.space.is_empty() {
                return Err(SpecError::at(
                    file,
                    at(s.method_pos),
                    "space",
                    format!(
                        "`method: {name}` needs `space`: the distribution of each key to sample"
                    ),
                ));
            }
            if let Some(p) = grid_pos {
                return Err(SpecError::at(
                    file,
                    p,
                    "grid",
                    format!(
                        "`method: {name}` samples `space`; put a grid's list under `space` as `{{values: [...]}}`"
                    ),
                ));
            }
            if s.method == Method::Tpe
                && let Some((key, p)) = crossed.iter().find(|(_, p)| p.is_some())
            {
                return Err(SpecError::at(
                    file,
                    p.unwrap_or_default(),
                    *key,
                    format!(
                        "`method: tpe` proposes one trial at a time, so `{key}` cannot be crossed with its trials; use `method: random`, or set one value under `fixed`"
                    ),
                ));
            }
            Ok(())
        }
    }
}

/// `early_terminate`: the rule and its settings, each within its range.
pub(super) fn early_terminate(file: &str, node: &Node) -> Result<EarlyTerminate, SpecError> {
    expect_map(file, "early_terminate", node)?;
    let rule: EarlyTerminate = deserialize_section(file, "early_terminate", node)?;
    for (name, value, least) in [
        ("min_epochs", rule.min_epochs, 1),
        ("eta", rule.eta, 2),
        ("min_trials", rule.min_trials, 1),
    ] {
        if value < least {
            return Err(SpecError::at(
                file,
                node.pos,
                format!("early_terminate.{name}"),
                format!("`{name}` must be at least {least}, found {value}"),
            ));
        }
    }
    Ok(rule)
}
