//! The `program:` section: the user's own training program as the trial. Its command (a list,
//! or one string split like a shell but never run through one), a timeout, the metric the
//! report ranks by and its goal, extra environment variables. Placeholders are checked against
//! the trials in `plan.rs`, which knows every trial's parameters.

use super::SpecError;
use super::yaml::{Node, NodeKind, Pos};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Whether larger or smaller values of the metric are better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Goal {
    /// Larger is better (accuracy).
    Maximize,
    /// Smaller is better (loss).
    Minimize,
}

impl Goal {
    /// The goal a metric's name suggests: losses and errors are minimized, the rest maximized.
    pub fn guess(metric: &str) -> Goal {
        let m = metric.to_ascii_lowercase();
        if ["loss", "error", "perplexity", "mse", "mae", "rmse"]
            .iter()
            .any(|w| m.contains(w))
        {
            Goal::Minimize
        } else {
            Goal::Maximize
        }
    }
}

/// The program of a sweep, as the user wrote it and as `run` records it in plan.json.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Program {
    /// The argument vector; `{key}` placeholders are filled per trial.
    pub command: Vec<String>,
    /// Seconds a trial may run before its process group is killed.
    pub timeout: Option<f64>,
    /// Seconds between SIGTERM and SIGKILL when a trial is stopped.
    pub grace: f64,
    /// The metric the report sorts by and the best trial is chosen on.
    pub metric: Option<String>,
    /// Whether the metric is maximized or minimized.
    pub goal: Option<Goal>,
    /// Extra environment variables for the program.
    pub env: BTreeMap<String, String>,
    /// The directory the program runs in: the sweep file's (absolute; set by `run`).
    #[serde(default)]
    pub workdir: String,
    /// Metric name → regex matched against each line of the program's stdout and stderr
    /// (`program.patterns`); the group named `value`, or the first group, is the value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub patterns: BTreeMap<String, String>,
    /// Where `command` was written, for placeholder errors.
    #[serde(skip)]
    pub pos: Pos,
}

/// Seconds between SIGTERM and SIGKILL unless the sweep says otherwise.
pub const DEFAULT_GRACE: f64 = 10.0;

const KEYS: &[&str] = &[
    "command", "timeout", "grace", "metric", "goal", "env", "patterns",
];

/// Reads the `program:` mapping.
pub(super) fn program(file: &str, node: &Node) -> Result<Program, SpecError> {
    let NodeKind::Map(entries) = &node.kind else {
        return Err(SpecError::at(
            file,
            node.pos,
            "program",
            format!(
                "expected a mapping with keys {}, found {}",
                KEYS.join(", "),
                node.type_name()
            ),
        ));
    };
    let mut p = Program {
        command: vec![],
        timeout: None,
        grace: DEFAULT_GRACE,
        metric: None,
        goal: None,
        env: BTreeMap::new(),
        patterns: BTreeMap::new(),
        workdir: String::new(),
        pos: node.pos,
    };
    for (key, kpos, v) in entries {
        let at = |m: String| SpecError::at(file, v.pos, format!("program.{key}"), m);
        match key.as_str() {
            "command" => {
                p.command = command(v).map_err(at)?;
                p.pos = v.pos;
            }
            "timeout" => p.timeout = Some(duration(v).map_err(at)?),
            "grace" => p.grace = duration(v).map_err(at)?,
            "metric" => p.metric = Some(scalar_text(v).map_err(at)?),
            "goal" => {
                p.goal = Some(match scalar_text(v).map_err(at)?.as_str() {
                    "maximize" | "max" => Goal::Maximize,
                    "minimize" | "min" => Goal::Minimize,
                    other => return Err(at(format!("`{other}`: expected maximize or minimize"))),
                });
            }
            "env" => p.env = env(file, v)?,
            "patterns" => p.patterns = patterns(file, v)?,
            other => {
                let hint = super::closest(other, KEYS.iter().copied())
                    .map(|c| format!(" did you mean `{c}`?"))
                    .unwrap_or_default();
                return Err(SpecError::at(
                    file,
                    *kpos,
                    format!("program.{other}"),
                    format!(
                        "unknown key `{other}` in program (line {}).{hint} Expected one of: {}",
                        kpos.line,
                        KEYS.join(", ")
                    ),
                ));
            }
        }
    }
    if p.command.is_empty() {
        return Err(SpecError::at(
            file,
            node.pos,
            "program.command",
            "missing `command`: the program to run, as a list ([python3, train.py, --lr, \"{lr}\"]) or one string",
        ));
    }
    Ok(p)
}

/// Placeholders the command fills from the trial itself (its directory, its id), never from
/// its parameters.
const FILLED_BY_TRIAL: &[(&str, &str)] = &[
    ("trial_dir", "the trial's own directory"),
    ("trial_id", "the trial's id"),
];

/// Refuses a key (section, dotted key, where) named like a placeholder the command fills from
/// the trial: `{trial_dir}` would be the trial's directory, and the key's value would silently
/// never reach the program.
pub(super) fn refuse_placeholder_keys<'a>(
    file: &str,
    keys: impl IntoIterator<Item = (&'a str, &'a str, Pos)>,
) -> Result<(), SpecError> {
    for (section, key, pos) in keys {
        let top = key.split('.').next().unwrap_or(key);
        if let Some((name, what)) = FILLED_BY_TRIAL.iter().find(|(n, _)| *n == top) {
            return Err(SpecError::at(
                file,
                pos,
                format!("{section}.{key}"),
                format!(
                    "`{name}` (line {}) is a reserved name: in the program's command `{{{name}}}` is {what}, so this key's value would never reach the program; rename the key",
                    pos.line
                ),
            ));
        }
    }
    Ok(())
}

/// A list of arguments, or one string split like a shell does (quotes group words; nothing
/// is expanded, no shell runs).
fn command(v: &Node) -> Result<Vec<String>, String> {
    match &v.kind {
        NodeKind::Scalar(Value::String(s)) => shlex::split(s)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| format!("cannot split `{s}` into arguments (an unclosed quote?)")),
        NodeKind::Seq(items) => items.iter().map(scalar_text).collect(),
        _ => Err(format!(
            "expected a list of arguments or one string, found {}",
            v.type_name()
        )),
    }
}

/// A string, number or boolean as text.
fn scalar_text(v: &Node) -> Result<String, String> {
    match &v.kind {
        NodeKind::Scalar(Value::String(s)) => Ok(s.clone()),
        NodeKind::Scalar(x @ (Value::Number(_) | Value::Bool(_))) => Ok(x.to_string()),
        _ => Err(format!("expected a string, found {}", v.type_name())),
    }
}

/// `90` (seconds), `90s`, `10m`, `2h`, `1d`, `1.5h`.
fn duration(v: &Node) -> Result<f64, String> {
    let text = scalar_text(v)?;
    let t = text.trim();
    let (num, unit) = match t.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&t[..i], &t[i..]),
        None => (t, "s"),
    };
    let scale = match unit {
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        _ => return Err(format!("`{text}`: unknown unit `{unit}`; use s, m, h or d")),
    };
    match num.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 && n * scale < 1e9 => Ok(n * scale),
        _ => Err(format!(
            "`{text}` is not a duration: a positive number with s, m, h or d (90s, 10m, 2h)"
        )),
    }
}

/// `env:` — names to values (numbers and booleans written as text).
fn env(file: &str, v: &Node) -> Result<BTreeMap<String, String>, SpecError> {
    let NodeKind::Map(entries) = &v.kind else {
        return Err(SpecError::at(
            file,
            v.pos,
            "program.env",
            format!(
                "expected a mapping of variable names to values, found {}",
                v.type_name()
            ),
        ));
    };
    let mut out = BTreeMap::new();
    for (k, kpos, val) in entries {
        let valid = !k.is_empty()
            && !k.starts_with(|c: char| c.is_ascii_digit())
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(SpecError::at(
                file,
                *kpos,
                format!("program.env.{k}"),
                "not a variable name: use letters, digits and `_`",
            ));
        }
        let text = scalar_text(val)
            .map_err(|m| SpecError::at(file, val.pos, format!("program.env.{k}"), m))?;
        out.insert(k.clone(), text);
    }
    Ok(out)
}

/// A metric name that can be a CSV column and a plot label: short, no commas, quotes or
/// control characters.
pub fn usable_metric_name(k: &str) -> bool {
    !k.is_empty()
        && k.chars().count() <= 100
        && !k.chars().any(|c| c.is_control() || matches!(c, ',' | '"'))
}

/// Compiles one metric pattern (`program.patterns`): a regex with a group to take the value
/// from; the error says what is wrong with it.
pub fn compile_pattern(pattern: &str) -> Result<regex::Regex, String> {
    let re =
        regex::Regex::new(pattern).map_err(|e| format!("not a valid regular expression: {e}"))?;
    if re.captures_len() < 2 {
        return Err(format!(
            "`{pattern}` has no group to take the value from: put the number in parentheses, as in `loss: ([0-9.e+-]+)`"
        ));
    }
    Ok(re)
}

/// `program.patterns`: metric names to regexes, each compiled here so that a bad one is an
/// error naming its key and line before anything runs.
fn patterns(file: &str, v: &Node) -> Result<BTreeMap<String, String>, SpecError> {
    let NodeKind::Map(entries) = &v.kind else {
        return Err(SpecError::at(
            file,
            v.pos,
            "program.patterns",
            format!(
                "expected a mapping of metric names to regular expressions (`val_loss: \"val_loss: ([0-9.e+-]+)\"`), found {}",
                v.type_name()
            ),
        ));
    };
    let mut out = BTreeMap::new();
    for (name, kpos, val) in entries {
        if !usable_metric_name(name) {
            return Err(SpecError::at(
                file,
                *kpos,
                format!("program.patterns.{name}"),
                "not a usable metric name: it becomes a column of epochs.csv (no comma, quote or control character; at most 100 characters)",
            ));
        }
        let at = |m: String| SpecError::at(file, val.pos, format!("program.patterns.{name}"), m);
        let text = scalar_text(val).map_err(at)?;
        compile_pattern(&text).map_err(at)?;
        out.insert(name.clone(), text);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::spec::Spec;

    fn program(text: &str) -> Result<super::Program, String> {
        Spec::parse("p.yaml", &format!("name: p\nfixed: {{}}\nprogram:\n{text}"))
            .map(|s| s.program.expect("program"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_string_command_splits_like_a_shell_without_one() {
        let p = program("  command: python3 'my train.py' --lr {lr} $HOME\n").unwrap();
        assert_eq!(
            p.command,
            ["python3", "my train.py", "--lr", "{lr}", "$HOME"]
        );
        assert_eq!(p.grace, super::DEFAULT_GRACE);
    }

    #[test]
    fn durations_goal_and_env_are_read() {
        let p = program(
            "  command: [x]\n  timeout: 10m\n  grace: 2\n  goal: minimize\n  metric: val_loss\n  env: {OMP_NUM_THREADS: 1}\n",
        )
        .unwrap();
        assert_eq!(p.timeout, Some(600.0));
        assert_eq!(p.grace, 2.0);
        assert_eq!(p.goal, Some(super::Goal::Minimize));
        assert_eq!(p.env["OMP_NUM_THREADS"], "1");
    }

    #[test]
    fn mistakes_name_the_key_and_line() {
        let e = program("  command: [x]\n  timout: 10m\n").unwrap_err();
        assert!(
            e.contains("p.yaml:5:3") && e.contains("did you mean `timeout`"),
            "{e}"
        );
        let e = program("  command: [x]\n  timeout: 10 minutes\n").unwrap_err();
        assert!(
            e.contains("program.timeout") && e.contains("unknown unit"),
            "{e}"
        );
        let e = program("  timeout: 1h\n").unwrap_err();
        assert!(e.contains("missing `command`"), "{e}");
        let e = program("  command: \"python3 'unclosed\"\n").unwrap_err();
        assert!(e.contains("unclosed quote"), "{e}");
    }
}
