//! From a results directory to what the course notebooks made by hand: Polars tables
//! (summary.parquet/csv, epochs.parquet, summary_by_setting.csv) and a report as a list of
//! blocks, made section by section, that each exporter (Markdown, HTML) renders.

mod bars;
mod compare;
mod digits;
pub mod export;
mod heatmap;
mod parallel;
pub mod sections;
pub mod svg;
pub mod tables;

pub use compare::compare;

use crate::error::{Error, Result};
use crate::spec::{EarlyTerminate, Goal, Method, Param, Program, ReportOptions};
use crate::store::Store;
use crate::trial::{TrialId, TrialResult};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// One trial as the report sees it.
pub struct TrialRow {
    /// The trial's id.
    pub id: TrialId,
    /// The trial's name.
    pub name: String,
    /// Its varied values by key.
    pub varied: Map<String, Value>,
    /// What it produced.
    pub result: TrialResult,
}

impl TrialRow {
    /// The text of a varied value (empty when this trial does not set it).
    pub fn varied_text(&self, axis: &str) -> String {
        self.varied
            .get(axis)
            .map(crate::trial::value_text)
            .unwrap_or_default()
    }
}

/// A results directory read back through the store.
pub struct Loaded {
    /// The results directory.
    pub dir: PathBuf,
    /// The sweep's name.
    pub name: String,
    /// The sweep's description.
    pub description: String,
    /// The report options the sweep file gave.
    pub options: ReportOptions,
    /// The varied keys in display order.
    pub axes: Vec<String>,
    /// Every finished trial, in plan order.
    pub rows: Vec<TrialRow>,
    /// How many trials the plan has.
    pub planned: usize,
    /// Results that could not be read, each naming its file.
    pub unreadable: Vec<String>,
    /// The sweep's program, when its trials run one.
    pub program: Option<Program>,
    /// How the trials were chosen.
    pub method: Method,
    /// The sampled keys and their distributions (empty for a grid).
    pub space: Vec<Param>,
    /// The rule that stopped weak trials early, when the sweep has one.
    pub early_terminate: Option<EarlyTerminate>,
}

impl Loaded {
    /// The metrics programs reported, by name (`epoch` and `step` are positions, not metrics).
    pub fn metric_names(&self) -> Vec<String> {
        let names: std::collections::BTreeSet<&String> = self
            .rows
            .iter()
            .flat_map(|r| r.result.metrics.keys())
            .filter(|k| !matches!(k.as_str(), "epoch" | "step"))
            .collect();
        names.into_iter().cloned().collect()
    }
}

/// What a report is made of; exporters turn blocks into Markdown or HTML.
pub enum Block {
    /// A heading of a level (1 = title).
    Heading(usize, String),
    /// A paragraph, or a list when every line starts with "- ".
    Para(String),
    /// Headers, rows, and the row to highlight (the best).
    Table(Vec<String>, Vec<Vec<String>>, Option<usize>),
    /// A file stem and SVG text.
    Plot(String, String),
}

/// Reads a results directory: the recorded plan and every readable result.
pub fn load(dir: &Path) -> Result<Loaded> {
    let (info, finished, unreadable) = Store::open(dir)?.read_sweep()?;
    let rows = finished
        .into_iter()
        .map(|f| TrialRow {
            id: f.trial.id,
            name: f.trial.name,
            varied: f.trial.varied.into_iter().collect(),
            result: f.result,
        })
        .collect();
    Ok(Loaded {
        dir: dir.to_path_buf(),
        name: info.name,
        description: info.description,
        options: info.report,
        axes: info.axes,
        rows,
        planned: info.trials.len(),
        unreadable,
        program: info.program,
        method: info.method,
        space: info.space,
        early_terminate: info.early_terminate,
    })
}

/// The value a report ranks trials by, larger is better (a minimized metric is negated); a
/// built-in trial without the named metric is ranked by its test accuracy, and a non-finite
/// value (a diverged trial) ranks nowhere.
pub fn metric_of(r: &TrialRow, options: &ReportOptions) -> Option<f64> {
    let x = &r.result;
    let v = x
        .metric(&options.metric)
        .or_else(|| x.metrics.is_empty().then_some(x.test_accuracy).flatten())
        .filter(|v| v.is_finite())?;
    Some(match options.goal() {
        Goal::Maximize => v,
        Goal::Minimize => -v,
    })
}

/// Today's date in UTC (civil-from-days), without a date-time dependency.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// Writes the tables and both report formats into the results directory; returns report.html.
pub fn write(dir: &Path) -> Result<PathBuf> {
    let l = load(dir)?;
    if l.rows.is_empty() {
        return Err(Error::Input(format!(
            "{} holds no finished trial yet",
            dir.display()
        )));
    }
    let mut summary = tables::summary(&l)?;
    tables::write_parquet(&mut summary, &dir.join("summary.parquet"))?;
    tables::write_csv(&mut summary, &dir.join("summary.csv"))?;
    let mut epochs = tables::epochs(&l)?;
    tables::write_parquet(&mut epochs, &dir.join("epochs.parquet"))?;
    if let Some(mut g) = tables::by_setting(&l, &summary)? {
        tables::write_csv(&mut g, &dir.join("summary_by_setting.csv"))?;
    }
    export::write_named(&sections::all(&l), dir, "report")?;
    Ok(dir.join("report.html"))
}
