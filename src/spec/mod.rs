//! A sweep file: YAML read with the position of every key, checked section by section, into a
//! `Spec` (what the user said). Expanding it into trials is `plan.rs`; nothing here does I/O
//! beyond reading the file, and nothing touches a device.

mod checkpoint;
mod fuse;
mod keys;
pub mod placeholders;
mod program;
pub mod sample;
mod search;
mod sections;
pub(crate) mod words;
mod yaml;

pub use checkpoint::CheckpointPolicy;
pub use fuse::Fuse;
pub use keys::{closest, edit_distance, leaf_paths, set_path};
pub use program::{DEFAULT_GRACE, Goal, Program, compile_pattern, usable_metric_name};
pub use sample::{distinct_draws, draw};
pub use search::{Distribution, EarlyTerminate, Method, Param, PruneKind, Search};
pub use sections::{Axis, NamedTrial, Override};
pub use yaml::{MAX_FILE_BYTES, Node, NodeKind, Pos, parse_yaml};

use sections::{axes, deserialize_section, expect_map, flatten, named_trials};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::path::Path;

/// A problem with the user's sweep file: where, which key, what was expected.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecError {
    /// The sweep file, as the user named it.
    pub file: String,
    /// Where in it, when one place is to blame.
    pub pos: Option<Pos>,
    /// Dotted key path (`grid.optimizer.learning_rate`); empty for the whole file.
    pub key: String,
    /// What is wrong and, where possible, what was expected.
    pub message: String,
}

impl SpecError {
    /// An error at one place in the file.
    pub(crate) fn at(
        file: &str,
        pos: Pos,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> SpecError {
        SpecError {
            file: file.into(),
            pos: Some(pos),
            key: key.into(),
            message: message.into(),
        }
    }

    /// An error about the file as a whole (unreadable, too big, not text).
    fn whole(file: &str, message: String) -> SpecError {
        SpecError {
            file: file.into(),
            pos: None,
            key: String::new(),
            message,
        }
    }
}

/// The YAML parser stops at a NUL byte and would quietly parse a prefix of the file: refuse
/// every control character but tab, newline and carriage return, at its line and column.
fn refuse_control_chars(file: &str, text: &str) -> Result<(), SpecError> {
    for (i, line) in text.split('\n').enumerate() {
        let bad = line
            .chars()
            .enumerate()
            .find(|(_, c)| c.is_control() && !matches!(c, '\t' | '\r'));
        if let Some((col, c)) = bad {
            return Err(SpecError::at(
                file,
                Pos {
                    line: i + 1,
                    col: col + 1,
                },
                "",
                format!(
                    "control character U+{:04X} in the file; sweep files are plain text",
                    u32::from(c)
                ),
            ));
        }
    }
    Ok(())
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
    /// The report's heading; the sweep name when absent.
    pub title: Option<String>,
    /// Whether `metric` is maximized or minimized; guessed from its name when absent.
    pub goal: Option<Goal>,
}

impl ReportOptions {
    /// Whether larger or smaller values of `metric` are better.
    pub fn goal(&self) -> Goal {
        self.goal.unwrap_or_else(|| Goal::guess(&self.metric))
    }
}

impl Default for ReportOptions {
    fn default() -> Self {
        Self {
            metric: "test_accuracy".into(),
            threshold: None,
            threshold_metric: "val_accuracy".into(),
            title: None,
            goal: None,
        }
    }
}

/// A validated sweep file.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The file's path, as the user gave it (for error messages).
    pub file: String,
    /// The file's text, kept so that a run can store the exact sweep it ran.
    pub source: String,
    /// Names the results directory (results/<name>/).
    pub name: String,
    /// Free text, for the report.
    pub description: String,
    /// `data` and `fixed` flattened into dotted overrides of the default trial.
    pub base: Vec<Override>,
    /// Axes crossed with each other, first axis slowest.
    pub grid: Vec<Axis>,
    /// Axes walked in step, all of one length.
    pub zip: Vec<Axis>,
    /// Hand-written variants, each crossed with the grid and zip.
    pub trials: Vec<NamedTrial>,
    /// Every trial repeated once per seed, when given.
    pub seeds: Option<Vec<u64>>,
    /// How `hypersweep report` presents the results.
    pub report: ReportOptions,
    /// The user's program, when trials run it instead of a built-in model.
    pub program: Option<Program>,
    /// How trials are chosen: the grid, or sampled from `space` (`method`, `count`, …).
    pub search: Search,
    /// Which trials stop before their last epoch; none unless `early_terminate` is given.
    pub early_terminate: Option<EarlyTerminate>,
    /// How many trials may train as one model (`fuse: K` or `auto`); `--fuse` overrides it.
    pub fuse: Option<Fuse>,
    /// When built-in trials save the state they resume from (`checkpoint:`); every minute
    /// without it.
    pub checkpoint: Option<CheckpointPolicy>,
}

const TOP_KEYS: &[&str] = &[
    "name",
    "description",
    "program",
    "data",
    "fixed",
    "grid",
    "trials",
    "zip",
    "seeds",
    "report",
    "method",
    "count",
    "search_seed",
    "space",
    "early_terminate",
    "fuse",
    "checkpoint",
];

impl Spec {
    /// Reads and parses a sweep file; size and encoding are checked before any parsing.
    pub fn load(path: &Path) -> Result<Spec, SpecError> {
        use std::io::Read;
        let file = path.display().to_string();
        let cannot =
            |e: std::io::Error| SpecError::whole(&file, format!("cannot read the sweep file: {e}"));
        // Read at most one byte past the limit: `validate /dev/zero` must not read gigabytes.
        let mut bytes = vec![];
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_FILE_BYTES as u64 + 1).read_to_end(&mut bytes))
            .map_err(cannot)?;
        if bytes.len() > MAX_FILE_BYTES {
            return Err(SpecError::whole(
                &file,
                format!(
                    "the file is larger than {MAX_FILE_BYTES} bytes, the limit for sweep files"
                ),
            ));
        }
        let text = String::from_utf8(bytes).map_err(|e| {
            SpecError::whole(
                &file,
                format!(
                    "not a text file: invalid UTF-8 at byte {}",
                    e.utf8_error().valid_up_to()
                ),
            )
        })?;
        Spec::parse(&file, &text)
    }

    /// Parses and checks the sweep-level structure. Trial values are checked by `plan::expand`,
    /// which resolves every trial.
    pub fn parse(file: &str, text: &str) -> Result<Spec, SpecError> {
        // Editors on Windows start files with a byte-order mark; it is not part of the text.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        refuse_control_chars(file, text)?;
        let root = parse_yaml(file, text)?;
        let NodeKind::Map(entries) = &root.kind else {
            return Err(SpecError::at(
                file,
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
            program: None,
            search: Search::default(),
            early_terminate: None,
            fuse: None,
            checkpoint: None,
        };
        let mut seen_fixed = false;
        let mut seeds_pos = Pos::default();
        for (key, kpos, node) in entries {
            seen_fixed |= key == "fixed";
            if key == "seeds" {
                seeds_pos = *kpos;
            }
            spec.read_section(key, *kpos, node)?;
        }
        if spec.name.is_empty() {
            return Err(SpecError::at(
                file,
                root.pos,
                "name",
                "missing `name`: it names the results directory (results/<name>/)",
            ));
        }
        let grid_pos = spec.grid.first().map(|a| a.pos);
        let crossed = [
            ("seeds", spec.seeds.as_ref().map(|_| seeds_pos)),
            ("trials", spec.trials.first().map(|t| t.pos)),
            ("zip", spec.zip.first().map(|a| a.pos)),
        ];
        search::check(file, &spec.search, grid_pos, &crossed)?;
        spec.fill_early_terminate();
        if let Some(p) = &spec.program {
            // The program's metric and goal shape the report unless `report:` names its own.
            if let Some(m) = &p.metric {
                spec.report.metric.clone_from(m);
            }
            spec.report.goal = spec.report.goal.or(p.goal);
        }
        spec.refuse_placeholder_keys()?;
        sections::same_key_twice(file, &spec.base)?;
        for t in &spec.trials {
            sections::same_key_twice(file, &t.overrides)?;
        }
        if let (Some(_), Some(data)) = (
            &spec.program,
            spec.base.iter().find(|o| o.section == "data"),
        ) {
            return Err(SpecError::at(
                file,
                data.pos,
                "data",
                "`data` configures the built-in models; a program reads its own data (put its settings under `fixed`)",
            ));
        }
        if !seen_fixed
            && spec.grid.is_empty()
            && spec.trials.is_empty()
            && spec.zip.is_empty()
            && spec.search.space.is_empty()
        {
            return Err(SpecError::at(
                file,
                root.pos,
                "fixed",
                "nothing to run: give at least `fixed`, `grid`, `zip` or `trials`",
            ));
        }
        Ok(spec)
    }

    /// Reads one top-level section into `self`; no section comes twice, the YAML layer refuses
    /// duplicate keys.
    fn read_section(&mut self, key: &str, kpos: Pos, node: &Node) -> Result<(), SpecError> {
        let file = self.file.as_str();
        match key {
            "name" => self.name = sections::sweep_name(file, node)?,
            "description" => self.description = sections::expect_string(file, key, node)?,
            "data" => {
                expect_map(file, key, node)?;
                flatten(file, "data", node, "data", &mut self.base)?;
            }
            "fixed" => {
                // `fixed:` left empty is allowed: a sweep of one trial with every default.
                if !matches!(node.kind, NodeKind::Scalar(Value::Null)) {
                    expect_map(file, key, node)?;
                    flatten(file, "", node, "fixed", &mut self.base)?;
                }
            }
            "grid" => self.grid = axes(file, "grid", node)?,
            "zip" => self.zip = sections::zip_axes(file, node)?,
            "trials" => self.trials = named_trials(file, node)?,
            "seeds" => self.seeds = Some(sections::seeds(file, node)?),
            "report" => {
                expect_map(file, key, node)?;
                self.report = deserialize_section(file, "report", node)?;
            }
            "program" => self.program = Some(program::program(file, node)?),
            "method" => {
                self.search.method = search::method(file, node)?;
                self.search.method_pos = Some(kpos);
            }
            "count" => {
                let n = search::whole(file, key, node, 1)?;
                self.search.count = Some((n as usize, kpos));
            }
            "search_seed" => self.search.seed = Some((search::whole(file, key, node, 0)?, kpos)),
            "space" => {
                self.search.space = search::space(file, node)?;
                self.search.space_pos = Some(kpos);
            }
            "early_terminate" => {
                self.early_terminate = Some(search::early_terminate(file, node)?);
            }
            "fuse" => self.fuse = Some(sections::fuse(file, node)?),
            "checkpoint" => self.checkpoint = Some(checkpoint::checkpoint(file, node)?),
            other => return Err(unknown_top_key(file, other, kpos)),
        }
        Ok(())
    }
}

impl Spec {
    /// A program sweep's keys named like a placeholder the command fills from the trial itself
    /// (`{trial_dir}`) are refused: the key's value would never reach the program.
    fn refuse_placeholder_keys(&self) -> Result<(), SpecError> {
        if self.program.is_none() {
            return Ok(());
        }
        let set = self
            .base
            .iter()
            .chain(self.trials.iter().flat_map(|t| &t.overrides))
            .map(|o| (o.section.as_str(), o.key.as_str(), o.pos));
        let varied = self
            .grid
            .iter()
            .map(|a| ("grid", a.key.as_str(), a.pos))
            .chain(self.zip.iter().map(|a| ("zip", a.key.as_str(), a.pos)))
            .chain(
                self.search
                    .space
                    .iter()
                    .map(|p| ("space", p.key.as_str(), p.pos)),
            );
        program::refuse_placeholder_keys(&self.file, set.chain(varied))
    }

    /// An early-termination rule without a metric compares the program's metric, or the
    /// built-in models' validation accuracy.
    fn fill_early_terminate(&mut self) {
        let program_metric = self.program.as_ref().and_then(|p| p.metric.clone());
        if let Some(rule) = &mut self.early_terminate
            && rule.metric.is_none()
        {
            rule.metric = Some(program_metric.unwrap_or_else(|| "val_accuracy".into()));
        }
    }
}

fn unknown_top_key(file: &str, key: &str, kpos: Pos) -> SpecError {
    let hint = closest(key, TOP_KEYS.iter().copied())
        .map(|c| format!(" did you mean `{c}`?"))
        .unwrap_or_default();
    SpecError::at(
        file,
        kpos,
        key,
        format!(
            "unknown top-level key `{key}` (line {}).{hint} Expected one of: {}",
            kpos.line,
            TOP_KEYS.join(", ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Keys a sweep file uses, plus a few it does not: trees built from them reach deep into
    /// validation and planning instead of stopping at the first unknown key.
    const KEYS: &[&str] = &[
        "name",
        "description",
        "data",
        "fixed",
        "grid",
        "zip",
        "trials",
        "seeds",
        "report",
        "epochs",
        "batch_size",
        "seed",
        "model",
        "kind",
        "hidden",
        "optimizer",
        "learning_rate",
        "optimizer.learning_rate",
        "model.hidden",
        "split",
        "train_size",
        "steps_per_epoch",
        "early_stopping",
        "schedule",
        "augment",
        "metric",
        "threshold",
        "x",
        "",
    ];

    /// Trees of mappings (keys from KEYS), lists and scalars, small enough that no grid
    /// expands past a few thousand trials.
    fn yaml_tree() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-3i64..2000).prop_map(Value::from),
            (-1.0e3f64..1.0e3).prop_map(Value::from),
            proptest::sample::select(KEYS).prop_map(|k| Value::from(k.to_string())),
            "[a-z0-9_./ -]{0,12}".prop_map(Value::from),
        ];
        let tree = leaf.prop_recursive(4, 48, 5, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::Array),
                proptest::collection::vec((proptest::sample::select(KEYS), inner), 0..5).prop_map(
                    |kv| {
                        serde_json::Value::Object(
                            kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
                        )
                    }
                ),
            ]
        });
        // A name at the top, so most trees get past the first check.
        (tree, any::<bool>()).prop_map(|(t, named)| match t {
            serde_json::Value::Object(mut m) if named => {
                m.insert("name".into(), "p".into());
                serde_json::Value::Object(m)
            }
            other => other,
        })
    }

    #[test]
    fn positions_are_one_based() {
        let e = Spec::parse("f.yaml", "name: x\nfixd: {}\n").unwrap_err();
        assert_eq!(e.pos, Some(Pos { line: 2, col: 1 }));
        assert!(e.message.contains("did you mean `fixed`"));
    }

    #[test]
    fn numeric_looking_names_are_kept_as_written() {
        // The YAML layer resolves `1.50` to the number 1.5; a name is the text the user wrote.
        let spec = Spec::parse(
            "f.yaml",
            "name: 1.50\ndescription: 2.0e1\ntrials:\n  - name: 007\n  - name: 1e3\n  - name: 1_000\n  - name: 1.0\n  - name: 1.00\n",
        )
        .unwrap();
        assert_eq!(spec.name, "1.50");
        assert_eq!(spec.description, "2.0e1");
        let names: Vec<&str> = spec.trials.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["007", "1e3", "1_000", "1.0", "1.00"]);
        let spec = Spec::parse("f.yaml", "name: 1.50\ntrials:\n  - name: 007\n").unwrap();
        let plan = crate::plan::expand(&spec).unwrap();
        assert_eq!(plan.name, "1.50");
        assert_eq!(plan.trials[0].name, "007");
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
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let text = String::from_utf8_lossy(&bytes);
            if let Ok(spec) = Spec::parse("p.yaml", &text) {
                let _ = crate::plan::expand(&spec);
            }
        }

        #[test]
        fn arbitrary_yaml_trees_never_panic(tree in yaml_tree()) {
            // JSON is YAML: the tree's text exercises every section with typed values.
            let text = serde_json::to_string(&tree).unwrap();
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
