//! What differs between the plan recorded in a results directory and the plan of the sweep file
//! now, in words: the trials only one of them has, or, when the same trials changed their ids
//! (a `fixed:` value changed), which value changed from what to what.

use crate::store::SweepInfo;
use crate::trial::Trial;
use crate::trial::value_text;
use serde_json::Value;
use std::collections::HashSet;

/// A setting that differs between two trials: its key, the recorded value, the new one.
type Change = (String, Value, Value);

/// The difference of two plans in words; `None` when they hold the same trials.
pub(super) fn describe(old: &SweepInfo, new: &SweepInfo) -> Option<String> {
    let ids =
        |i: &SweepInfo| -> HashSet<String> { i.trials.iter().map(|t| t.id.to_string()).collect() };
    let (a, b) = (ids(old), ids(new));
    if a == b {
        return None;
    }
    // A trial of the same name in both plans but another id: a setting it does not vary changed.
    let moved: Vec<(&Trial, &Trial)> = old
        .trials
        .iter()
        .filter(|o| !b.contains(o.id.as_str()))
        .filter_map(|o| {
            let n = new.trials.iter().find(|n| n.name == o.name)?;
            (!a.contains(n.id.as_str())).then_some((o, n))
        })
        .collect();
    let moved_names: HashSet<&str> = moved.iter().map(|(o, _)| o.name.as_str()).collect();
    let names = |i: &SweepInfo, other: &HashSet<String>| -> Vec<String> {
        i.trials
            .iter()
            .filter(|t| !other.contains(t.id.as_str()) && !moved_names.contains(t.name.as_str()))
            .take(3)
            .map(|t| format!("`{}`", t.name))
            .collect()
    };
    let (gone, added) = (names(old, &b), names(new, &a));
    let mut text = format!(
        "{} trials recorded, {} in this file",
        old.trials.len(),
        new.trials.len()
    );
    if !moved.is_empty() {
        text += &format!("; {}", moved_text(&moved, old, new));
    }
    if moved.is_empty() || !gone.is_empty() || !added.is_empty() {
        let list = |l: Vec<String>| {
            if l.is_empty() {
                "none".into()
            } else {
                l.join(", ")
            }
        };
        text += &format!(
            "; only recorded: {}; only in this file: {}",
            list(gone),
            list(added)
        );
    }
    Some(text)
}

/// Why trials kept their names but not their ids: the settings every one of them changed.
fn moved_text(moved: &[(&Trial, &Trial)], old: &SweepInfo, new: &SweepInfo) -> String {
    let mut common = changes(moved[0].0, moved[0].1);
    for (o, n) in &moved[1..] {
        let these = changes(o, n);
        common.retain(|c| these.contains(c));
    }
    let whose = if moved.len() == old.trials.len() && moved.len() == new.trials.len() {
        "every trial's id changed".to_string()
    } else {
        format!("the ids of {} trials changed", moved.len())
    };
    if common.is_empty() {
        return format!("the settings the trials share changed, so {whose}");
    }
    let each: Vec<String> = common
        .iter()
        .take(3)
        .map(|(k, was, is)| {
            format!(
                "`{k}` changed from {} to {}",
                value_text(was),
                value_text(is)
            )
        })
        .collect();
    let more = common.len().saturating_sub(3);
    let more = if more > 0 {
        format!(" (and {more} more)")
    } else {
        String::new()
    };
    let s = if common.len() == 1 { "" } else { "s" };
    format!("the fixed value{s} {}{more}, so {whose}", each.join(", "))
}

/// The settings of two trials that differ, by dotted key (a program's parameters by their own
/// key, its command as `program.command`).
fn changes(old: &Trial, new: &Trial) -> Vec<Change> {
    let json = |t: &Trial| serde_json::to_value(&t.config).unwrap_or(Value::Null);
    let mut out = vec![];
    diff("", &json(old), &json(new), &mut out);
    for c in &mut out {
        if let Some(k) = c.0.strip_prefix("params.") {
            c.0 = k.to_string();
        } else if c.0 == "command" {
            c.0 = "program.command".into();
        }
    }
    out
}

/// Every leaf (a value that is not a mapping) that differs, under `path`.
fn diff(path: &str, a: &Value, b: &Value, out: &mut Vec<Change>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                let none = Value::Null;
                diff(
                    &p,
                    x.get(k).unwrap_or(&none),
                    y.get(k).unwrap_or(&none),
                    out,
                );
            }
        }
        _ if a != b => out.push((path.to_string(), a.clone(), b.clone())),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::describe;
    use crate::plan::expand;
    use crate::spec::Spec;
    use crate::store::SweepInfo;

    fn info(yaml: &str) -> SweepInfo {
        let spec = Spec::parse("s.yaml", yaml).unwrap();
        SweepInfo::new(&expand(&spec).unwrap(), &spec)
    }

    #[test]
    fn a_changed_fixed_value_is_named_with_its_old_and_new_value() {
        let old = info("name: d\nfixed: {epochs: 3}\ngrid:\n  seed: [1, 2]\n");
        let new = info("name: d\nfixed: {epochs: 4}\ngrid:\n  seed: [1, 2]\n");
        let text = describe(&old, &new).unwrap();
        assert_eq!(
            text,
            "2 trials recorded, 2 in this file; the fixed value `epochs` changed from 3 to 4, so every trial's id changed"
        );
        let grown = info("name: d\nfixed: {epochs: 4}\ngrid:\n  seed: [1, 2, 9]\n");
        let text = describe(&old, &grown).unwrap();
        assert!(
            text.contains("`epochs` changed from 3 to 4, so the ids of 2 trials changed")
                && text.contains("only recorded: none; only in this file: `seed=9`"),
            "{text}"
        );
        assert_eq!(describe(&old, &old), None);
    }

    #[test]
    fn trials_only_one_plan_has_are_listed() {
        let old = info("name: d\nfixed: {epochs: 3}\ngrid:\n  seed: [1, 2]\n");
        let new = info("name: d\nfixed: {epochs: 3}\ngrid:\n  seed: [1, 9]\n");
        assert_eq!(
            describe(&old, &new).unwrap(),
            "2 trials recorded, 2 in this file; only recorded: `seed=2`; only in this file: `seed=9`"
        );
    }
}
