//! Metric patterns (`program.patterns: {name: REGEX}`): metrics read from an unmodified
//! script's prose output ("Test set: Average loss: 0.0330, Accuracy: 9890/10000 (99%)"). Each
//! regex is matched against every line of stdout and stderr; its group named `value`, or else
//! its first group, is the metric's value, read as Python prints numbers (`1e-05`, `nan`,
//! `inf`, `9,890`).

use crate::spec::compile_pattern as compile;
use regex::Regex;
use std::collections::BTreeMap;

/// The compiled patterns of a sweep, with how many lines each matched.
#[derive(Debug, Clone, Default)]
pub struct Patterns {
    patterns: Vec<Pattern>,
    matched: BTreeMap<String, usize>,
}

/// One metric's regex, and whether its value is the group named `value` (else the first).
#[derive(Debug, Clone)]
struct Pattern {
    name: String,
    re: Regex,
    named: bool,
}

/// A number as Python prints it: `0.25`, `1e-05`, `-3`, `nan`, `inf`, `-inf`; thousands
/// separators, a trailing `%` and a sentence's full stop are dropped (`9,890`, `99%`, `0.25.`).
pub fn python_number(text: &str) -> Option<f64> {
    let t = text.trim().trim_end_matches(['%', '.']).replace(',', "");
    match t.to_ascii_lowercase().as_str() {
        "nan" | "-nan" => Some(f64::NAN),
        "inf" | "+inf" | "infinity" => Some(f64::INFINITY),
        "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
        other => other.parse().ok(),
    }
}

impl Patterns {
    /// The patterns of `program.patterns` (already checked when the sweep file was read).
    pub fn new(map: &BTreeMap<String, String>) -> Result<Patterns, String> {
        let mut patterns = vec![];
        for (name, p) in map {
            let re = compile(p).map_err(|e| format!("`{name}`: {e}"))?;
            let named = re.capture_names().any(|n| n == Some("value"));
            patterns.push(Pattern {
                name: name.clone(),
                re,
                named,
            });
        }
        Ok(Patterns {
            matched: patterns.iter().map(|p| (p.name.clone(), 0)).collect(),
            patterns,
        })
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The metrics one line gives, in the patterns' order (a match whose value is not a number
    /// gives nothing).
    pub fn pairs(&mut self, line: &str) -> Vec<(String, f64)> {
        let mut out = vec![];
        for p in &self.patterns {
            let Some(c) = p.re.captures(line) else {
                continue;
            };
            // A `value` group that took no part in the match gives nothing, not group 1.
            let value = if p.named { c.name("value") } else { c.get(1) };
            if let Some(v) = value.and_then(|m| python_number(m.as_str())) {
                out.push((p.name.clone(), v));
                *self.matched.entry(p.name.clone()).or_default() += 1;
            }
        }
        out
    }

    /// How many lines each pattern matched.
    pub fn matched(&self) -> &BTreeMap<String, usize> {
        &self.matched
    }

    /// The notes for patterns that never matched a line.
    pub fn unmatched_notes(&self) -> Vec<String> {
        self.matched
            .iter()
            .filter(|(_, n)| **n == 0)
            .map(|(name, _)| {
                format!("the pattern for `{name}` never matched a line of the program's output")
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::program::metrics::StdoutRows;

    fn patterns(pairs: &[(&str, &str)]) -> Patterns {
        let map = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Patterns::new(&map).unwrap()
    }

    fn rows(p: Patterns, log: &str) -> Vec<BTreeMap<String, f64>> {
        let mut r = StdoutRows::with_patterns(p);
        for line in log.split(['\n', '\r']) {
            r.line(line);
        }
        r.finish().into_rows().0
    }

    #[test]
    fn numbers_as_python_prints_them() {
        for (t, v) in [
            ("1e-05", 1e-5),
            ("9,890", 9890.0),
            ("99%", 99.0),
            ("-0.5", -0.5),
        ] {
            assert_eq!(python_number(t), Some(v), "{t}");
        }
        assert!(python_number("nan").unwrap().is_nan());
        assert_eq!(python_number("-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(python_number("abc"), None);
        assert_eq!(python_number("0.25."), Some(0.25));
    }

    #[test]
    fn pytorch_examples_prose_gives_one_row_per_epoch() {
        let log = "Train Epoch: 1 [0/60000 (0%)]\tLoss: 2.300000\nTrain Epoch: 1 [640/60000 (1%)]\tLoss: 1.200000\n\nTest set: Average loss: 0.0330, Accuracy: 9890/10000 (99%)\n\nTrain Epoch: 2 [0/60000 (0%)]\tLoss: 0.300000\n\nTest set: Average loss: 0.0280, Accuracy: 9912/10000 (99%)\n";
        let p = patterns(&[
            ("test_loss", r"Average loss: ([0-9.]+)"),
            ("test_correct", r"Accuracy: (?P<value>\d+)/"),
        ]);
        // No epoch counter: a metric seen again starts the next row.
        let r = rows(p, log);
        assert_eq!(r.len(), 2, "{r:?}");
        assert_eq!(r[0]["test_loss"], 0.033);
        assert_eq!(r[1]["test_correct"], 9912.0);
    }

    #[test]
    fn keras_progress_and_tqdm_carriage_returns() {
        let log = "Epoch 1/3\n1875/1875 [==============================] - 3s 1ms/step - loss: 0.2611 - accuracy: 0.9251 - val_loss: 0.1378 - val_accuracy: 0.9587\nEpoch 2/3\r 10%|█ | 1/10 [00:00<00:01]\r100%|██████████| 10/10 [00:01<00:00]\n1875/1875 [==============================] - 3s 1ms/step - loss: 0.1155 - accuracy: 0.9658 - val_loss: nan - val_accuracy: 0.9671\n";
        let p = patterns(&[
            ("epoch", r"^Epoch (\d+)/"),
            ("loss", r" - loss: ([0-9.e+-]+|nan)"),
            ("val_loss", r"val_loss: ([0-9.e+-]+|nan)"),
            ("val_accuracy", r"val_accuracy: ([0-9.e+-]+)"),
        ]);
        let r = rows(p, log);
        assert_eq!(r.len(), 2, "{r:?}");
        assert_eq!(r[0]["epoch"], 1.0);
        assert_eq!(r[0]["val_accuracy"], 0.9587);
        assert_eq!(r[1]["epoch"], 2.0);
        assert!(r[1]["val_loss"].is_nan());
    }

    #[test]
    fn a_pattern_without_a_group_or_invalid_is_refused_and_unmatched_ones_are_named() {
        assert!(compile("loss: [0-9.]+").unwrap_err().contains("no group"));
        assert!(
            compile("loss: ([0-9.]+")
                .unwrap_err()
                .contains("not a valid")
        );
        // An optional `value` group that did not match gives nothing (not the epoch number).
        let mut p = patterns(&[("loss", r"Epoch (\d+)(?:.*loss: (?P<value>[0-9.]+))?")]);
        assert!(p.pairs("Epoch 3 starting").is_empty());
        assert_eq!(p.pairs("Epoch 3 - loss: 0.5"), [("loss".to_string(), 0.5)]);
        let mut p = patterns(&[("acc", r"acc=([0-9.]+)"), ("lr", r"lr=([0-9.e-]+)")]);
        p.pairs("acc=0.5");
        let notes = p.unmatched_notes();
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains("`lr`"), "{notes:?}");
    }
}
