//! A program's command line: `{key}` placeholders, found when the sweep is planned (so an
//! unknown one is a validation error) and filled when the trial starts.

use serde_json::{Map, Value};

/// Placeholders every program trial has besides its parameters.
pub const BUILT_IN: &[&str] = &["seed", "trial_id", "trial_dir"];

/// A piece of one argument: literal text or a placeholder's key.
#[derive(Debug, PartialEq)]
enum Piece {
    Text(String),
    Key(String),
}

/// Splits an argument into text and `{key}` placeholders; `{{` and `}}` are literal braces.
fn pieces(arg: &str) -> Result<Vec<Piece>, String> {
    let mut out = vec![];
    let mut text = String::new();
    let mut chars = arg.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                text.push('}');
            }
            '{' => {
                let mut key = String::new();
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == '}' {
                        closed = true;
                        break;
                    }
                    key.push(c);
                }
                if !closed || key.trim().is_empty() || key.contains('{') {
                    return Err(format!(
                        "`{arg}`: a placeholder is `{{key}}`; write `{{{{` for a literal brace"
                    ));
                }
                out.push(Piece::Text(std::mem::take(&mut text)));
                out.push(Piece::Key(key.trim().to_string()));
            }
            '}' => {
                return Err(format!(
                    "`{arg}`: a lone `}}`; write `}}}}` for a literal one"
                ));
            }
            c => text.push(c),
        }
    }
    out.push(Piece::Text(text));
    Ok(out)
}

/// The value at a dotted key of the parameters.
pub fn lookup<'a>(params: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    let mut parts = key.split('.');
    let mut cur = params.get(parts.next()?)?;
    for p in parts {
        cur = cur.as_object()?.get(p)?;
    }
    Some(cur)
}

/// Checks every placeholder of `command` against a trial's parameters; the error names the
/// first unknown one and the keys that exist.
pub fn check(command: &[String], params: &Map<String, Value>) -> Result<(), String> {
    for arg in command {
        for piece in pieces(arg)? {
            if let Piece::Key(k) = piece
                && !BUILT_IN.contains(&k.as_str())
                && lookup(params, &k).is_none()
            {
                let mut known: Vec<String> = vec![];
                crate::spec::leaf_paths(&Value::Object(params.clone()), "", &mut known);
                known.extend(BUILT_IN.iter().map(ToString::to_string));
                known.sort();
                known.dedup();
                return Err(format!(
                    "unknown placeholder `{{{k}}}` in the command; known: {}",
                    known
                        .iter()
                        .map(|k| format!("{{{k}}}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
    }
    Ok(())
}

/// The argument vector with every placeholder filled: strings as they are, numbers and lists
/// as JSON text (`0.01`, `[64,32]`). `check` has passed for these parameters at plan time.
pub fn fill(
    command: &[String],
    params: &Map<String, Value>,
    trial_id: &str,
    trial_dir: &str,
) -> Result<Vec<String>, String> {
    command
        .iter()
        .map(|arg| {
            let mut s = String::new();
            for piece in pieces(arg)? {
                match piece {
                    Piece::Text(t) => s += &t,
                    Piece::Key(k) => {
                        s += &match k.as_str() {
                            "trial_id" => trial_id.to_string(),
                            "trial_dir" => trial_dir.to_string(),
                            _ => lookup(params, &k)
                                .map(crate::format::value_text)
                                .ok_or_else(|| format!("no parameter `{k}`"))?,
                        }
                    }
                }
            }
            Ok(s)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params() -> Map<String, Value> {
        json!({"lr": 0.01, "model": {"width": 64, "layers": [8, 4]}, "act": "relu", "seed": 1})
            .as_object()
            .unwrap()
            .clone()
    }

    #[test]
    fn placeholders_fill_with_values_and_braces_escape() {
        let cmd: Vec<String> = [
            "run",
            "--lr={lr}",
            "{model.width}",
            "{model.layers}",
            "{act}",
        ]
        .into_iter()
        .chain(["{trial_id}", "{{x}}", "{seed}"])
        .map(String::from)
        .collect();
        let argv = fill(&cmd, &params(), "abc", "/d").unwrap();
        assert_eq!(
            argv,
            ["run", "--lr=0.01", "64", "[8,4]", "relu", "abc", "{x}", "1"]
        );
    }

    #[test]
    fn an_unknown_placeholder_names_itself_and_the_known_ones() {
        let e = check(&["{model.depth}".into()], &params()).unwrap_err();
        assert!(e.contains("`{model.depth}`"), "{e}");
        assert!(
            e.contains("{model.width}") && e.contains("{trial_dir}"),
            "{e}"
        );
        assert!(check(&["{lr".into()], &params()).is_err());
        assert!(check(&["a}".into()], &params()).is_err());
        assert!(check(&["{trial_dir}/x".into()], &params()).is_ok());
    }
}
