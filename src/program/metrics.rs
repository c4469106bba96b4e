//! What a program reports: JSON objects, one a line, appended to `$HYPERSWEEP_METRICS`, or
//! `name: number` / `name=number` lines on its standard output. The file wins when it has any
//! row; standard output is read only from programs that never wrote the file.

use super::patterns::Patterns;
use crate::trial::MetricRow;
use serde_json::Value;

/// Rows kept per trial at most: a program printing metrics in a tight loop must not fill memory.
pub const MAX_ROWS: usize = 100_000;

/// The rows a program reported, as stored: all of them up to `MAX_ROWS`; past it the curve is
/// thinned evenly (every 2nd row, then every 4th…) and still ends with the last row reported.
/// The final values are the last value of every metric over *every* row, thinned or not, and a
/// non-finite value of a metric is remembered even when its row is thinned away.
pub struct Curve {
    kept: Vec<MetricRow>,
    /// One row in `stride` is kept (a power of two, 1 until the cap is reached).
    stride: usize,
    /// Rows reported.
    seen: usize,
    /// The newest row when it was not kept, appended at the end.
    newest: Option<MetricRow>,
    last: MetricRow,
    non_finite: std::collections::BTreeSet<String>,
}

impl Default for Curve {
    fn default() -> Curve {
        Curve {
            kept: vec![],
            stride: 1,
            seen: 0,
            newest: None,
            last: MetricRow::new(),
            non_finite: std::collections::BTreeSet::new(),
        }
    }
}

impl Curve {
    /// Adds the next row reported.
    pub fn push(&mut self, row: MetricRow) {
        self.last.extend(row.iter().map(|(k, v)| (k.clone(), *v)));
        for (k, v) in &row {
            if !v.is_finite() && !self.non_finite.contains(k) {
                self.non_finite.insert(k.clone());
            }
        }
        let keep = self.seen.is_multiple_of(self.stride);
        self.seen += 1;
        if !keep {
            self.newest = Some(row);
            return;
        }
        self.newest = None;
        self.kept.push(row);
        if self.kept.len() > MAX_ROWS {
            // Keep rows 0, 2, 4…: the reported rows 0, 2·stride, 4·stride…
            let mut i = 0;
            self.kept.retain(|_| {
                i += 1;
                i % 2 == 1
            });
            self.stride *= 2;
        }
    }

    /// How many rows were reported.
    pub fn len(&self) -> usize {
        self.seen
    }

    /// True when no row was reported.
    pub fn is_empty(&self) -> bool {
        self.seen == 0
    }

    /// Every metric's last value over all rows: the trial's final values.
    pub fn last(&self) -> &MetricRow {
        &self.last
    }

    /// True when `metric` was ever NaN or infinite.
    pub fn had_non_finite(&self, metric: &str) -> bool {
        self.non_finite.contains(metric)
    }

    /// The stored rows (the last one reported included), and a note when the curve was thinned.
    pub fn into_rows(mut self) -> (Vec<MetricRow>, Option<String>) {
        let stride = self.stride;
        self.kept.extend(self.newest.take());
        let note = (stride > 1).then(|| {
            format!(
                "{} metric rows were reported; the stored curve keeps one row in {} and the \
                 last, whose values are the final ones: {} rows",
                self.seen,
                stride,
                self.kept.len()
            )
        });
        (self.kept, note)
    }

    /// Adds `other`'s rows after this one's (its thinned rows stay thinned, but count).
    pub fn append(&mut self, other: Curve) {
        if self.is_empty() {
            *self = other;
            return;
        }
        let (seen, last, non_finite) = (other.seen, other.last.clone(), other.non_finite.clone());
        let (rows, _) = other.into_rows();
        let thinned = seen - rows.len();
        for r in rows {
            self.push(r);
        }
        self.seen += thinned;
        self.last.extend(last);
        self.non_finite.extend(non_finite);
    }
}

/// Python's `json.dumps` writes `NaN`, `Infinity` and `-Infinity`, which JSON lacks: outside
/// strings they are rewritten to `null`, read back as NaN (a non-finite value).
fn python_json(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = line;
    while let Some(c) = rest.chars().next() {
        if in_string {
            in_string = escaped || c != '"';
            escaped = !escaped && c == '\\';
        } else if c == '"' {
            in_string = true;
        } else if let Some(word) = ["-Infinity", "Infinity", "NaN"]
            .into_iter()
            .find(|w| rest.starts_with(w))
        {
            out += "null";
            rest = &rest[word.len()..];
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// One line of the metrics file as a row: its numbers (null → NaN); other values are ignored.
/// `None` for a line that is not a JSON object.
pub fn json_row(line: &str) -> Option<MetricRow> {
    let line = line.trim();
    if line.is_empty() {
        return None;
    }
    let value: Value = serde_json::from_str(line)
        .or_else(|_| serde_json::from_str(&python_json(line)))
        .ok()?;
    let Value::Object(map) = value else {
        return None;
    };
    let row: MetricRow = map
        .into_iter()
        .filter(|(k, _)| crate::spec::usable_metric_name(k))
        .filter_map(|(k, v)| match v {
            Value::Number(n) => n.as_f64().map(|x| (k, x)),
            Value::Null => Some((k, f64::NAN)),
            _ => None,
        })
        .collect();
    (!row.is_empty()).then_some(row)
}

/// Every row of a chunk of a metrics file's text (malformed lines, such as a last line cut by a
/// kill, are skipped), and how many lines were skipped. The chunk is bounded by its reader.
pub fn file_rows(text: &str) -> (Vec<MetricRow>, usize) {
    let mut rows = vec![];
    let mut skipped = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match json_row(line) {
            Some(r) => rows.push(r),
            None => skipped += 1,
        }
    }
    (rows, skipped)
}

/// `name: number` or `name=number` pairs of one line of output, when the whole line is such
/// pairs (separated by spaces or commas): `epoch=3 val_loss=0.21`, `accuracy: 0.9`.
pub fn stdout_pairs(line: &str) -> Option<Vec<(String, f64)>> {
    let normalized = line.trim().replace(": ", ":").replace(" = ", "=");
    let mut pairs = vec![];
    for token in normalized.split([' ', ',', '\t']).filter(|t| !t.is_empty()) {
        let (k, v) = token.split_once('=').or_else(|| token.split_once(':'))?;
        let valid_name = crate::spec::usable_metric_name(k)
            && k.chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'));
        let value = match v.to_ascii_lowercase().as_str() {
            "nan" => f64::NAN,
            "inf" | "infinity" => f64::INFINITY,
            "-inf" | "-infinity" => f64::NEG_INFINITY,
            other => other.parse::<f64>().ok()?,
        };
        if !valid_name {
            return None;
        }
        pairs.push((k.to_string(), value));
    }
    (!pairs.is_empty()).then_some(pairs)
}

/// Gathers rows from output lines: a line naming `epoch` or `step` starts a new row, as does a
/// metric already present in the current row; other pairs join the current row.
#[derive(Default)]
pub struct StdoutRows {
    rows: Curve,
    current: MetricRow,
    patterns: Patterns,
}

impl StdoutRows {
    /// Rows from `name=value` lines and from what `patterns` match.
    pub fn with_patterns(patterns: Patterns) -> Self {
        StdoutRows {
            patterns,
            ..Default::default()
        }
    }

    /// Reads one line of standard output: its `name=value` pairs and what the patterns match.
    pub fn line(&mut self, line: &str) {
        let mut pairs = stdout_pairs(line).unwrap_or_default();
        pairs.extend(self.patterns.pairs(line));
        self.add(pairs);
    }

    /// Reads one line of standard error: only the patterns apply.
    pub fn error_line(&mut self, line: &str) {
        let pairs = self.patterns.pairs(line);
        self.add(pairs);
    }

    /// The patterns, with what they matched so far.
    pub fn patterns(&self) -> &Patterns {
        &self.patterns
    }

    fn add(&mut self, pairs: Vec<(String, f64)>) {
        if pairs.is_empty() {
            return;
        }
        let starts = pairs
            .iter()
            .any(|(k, _)| k == "epoch" || k == "step" || self.current.contains_key(k));
        if starts {
            self.flush();
        }
        self.current.extend(pairs);
    }

    fn flush(&mut self) {
        let row = std::mem::take(&mut self.current);
        if !row.is_empty() {
            self.rows.push(row);
        }
    }

    /// The rows read, the last one included.
    pub fn finish(mut self) -> Curve {
        self.flush();
        self.rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_keep_numbers_and_python_nan() {
        let (rows, skipped) = file_rows(
            "{\"epoch\": 1, \"val_loss\": 0.5, \"tag\": \"NaN here\"}\n\n{\"epoch\": 2, \"val_loss\": NaN, \"x\": -Infinity}\n{\"epoch\": 3, \"val_lo",
        );
        assert_eq!(rows.len(), 2);
        assert_eq!(skipped, 1, "the cut last line is skipped");
        assert_eq!(rows[0]["val_loss"], 0.5);
        assert!(!rows[0].contains_key("tag"));
        assert!(rows[1]["val_loss"].is_nan() && rows[1]["x"].is_nan());
    }

    #[test]
    fn stdout_pairs_take_whole_lines_of_pairs_only() {
        assert_eq!(
            stdout_pairs("epoch=3 val_loss=0.25, acc: 0.9"),
            Some(vec![
                ("epoch".into(), 3.0),
                ("val_loss".into(), 0.25),
                ("acc".into(), 0.9)
            ])
        );
        assert_eq!(
            stdout_pairs("loss = 1e-3"),
            Some(vec![("loss".into(), 0.001)])
        );
        assert!(stdout_pairs("Epoch 3: loss went down").is_none());
        assert!(stdout_pairs("saving to http://x:80").is_none());
        assert!(stdout_pairs("").is_none());
        assert!(stdout_pairs("loss: nan").unwrap()[0].1.is_nan());
    }

    #[test]
    fn stdout_rows_split_at_epoch_and_repeated_metrics() {
        let mut r = StdoutRows::default();
        for l in [
            "epoch: 1",
            "loss: 0.5",
            "acc: 0.8",
            "epoch: 2",
            "loss: 0.4",
            "loss: 0.3",
        ] {
            r.line(l);
        }
        let curve = r.finish();
        assert_eq!(curve.last()["loss"], 0.3);
        assert_eq!(curve.last()["epoch"], 2.0);
        let (rows, note) = curve.into_rows();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0]["acc"], 0.8);
        assert_eq!(rows[1]["loss"], 0.4);
        assert!(note.is_none());
    }

    /// Per-step logging past the cap: the stored curve is thinned evenly, but the final values
    /// are the last row's, and a NaN in a thinned-away row still counts.
    #[test]
    fn a_curve_past_the_cap_is_thinned_and_keeps_its_last_row() {
        let mut c = Curve::default();
        let n = 2 * MAX_ROWS + 12_345;
        for i in 0..n {
            let loss = if i == 1 {
                f64::NAN
            } else {
                1.0 / (i + 1) as f64
            };
            c.push(MetricRow::from([
                ("step".into(), i as f64),
                ("loss".into(), loss),
            ]));
        }
        assert_eq!(c.len(), n);
        assert_eq!(c.last()["step"], (n - 1) as f64);
        assert!(c.had_non_finite("loss") && !c.had_non_finite("step"));
        let (rows, note) = c.into_rows();
        assert!(rows.len() <= MAX_ROWS + 1, "{}", rows.len());
        assert!(rows.len() > MAX_ROWS / 2, "{}", rows.len());
        assert_eq!(rows.last().unwrap()["step"], (n - 1) as f64);
        let steps: Vec<f64> = rows.iter().map(|r| r["step"]).collect();
        assert!(
            steps[..steps.len() - 1]
                .windows(2)
                .all(|w| w[1] - w[0] == 4.0),
            "evenly"
        );
        let note = note.unwrap();
        assert!(
            note.contains(&n.to_string()) && note.contains("one row in 4"),
            "{note}"
        );
    }
}
