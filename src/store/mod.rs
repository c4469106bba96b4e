//! The results directory, owned by one type: the planned sweep (`plan.json`, with the report
//! options and description, so no reader re-parses the YAML), finished results, running
//! markers, the lock, and every write through one atomic, fsynced path. `result.json` is written
//! last, so its presence means the trial is complete.

mod checkpoint;
mod claims;
mod epochs;
mod files;
mod live;
mod lock;

pub use checkpoint::{CHECKPOINT_DIR, FINAL_WEIGHTS, TrialCheckpoint};
pub use claims::{Claim, Claims, Found};
pub use epochs::{EPOCH_HEADER, epochs_csv, parse_epochs_csv, parse_rows_csv, rows_csv};
pub use files::{create_dir, csv_field, move_aside, write_atomic};
pub use live::{LIVE_FILE, LiveRead, epoch_metrics};
pub use lock::{Lock, boot_id, host_name, process_alive, process_group};

use crate::error::{Error, IoContext, Result};
use crate::plan::Plan;
use crate::spec::{EarlyTerminate, Method, Param, Program, ReportOptions, Spec};
use crate::trial::value_text;
use crate::trial::{Trial, TrialId, TrialResult};
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};

/// What `run` records about the sweep beside its trials: everything `report` and `status` need.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SweepInfo {
    /// The sweep's name (its directory name).
    pub name: String,
    /// The sweep's description, for the report.
    pub description: String,
    /// How the report is shaped.
    pub report: ReportOptions,
    /// The varied keys in display order.
    pub axes: Vec<String>,
    /// Every planned trial, in plan order.
    pub trials: Vec<Trial>,
    /// The sweep's program (its timeout, environment, working directory), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<Program>,
    /// How the trials were chosen (absent for a grid).
    #[serde(default, skip_serializing_if = "is_grid")]
    pub method: Method,
    /// The sampled keys and their distributions (empty for a grid).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub space: Vec<Param>,
    /// Trials to sample (random, tpe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
    /// The seed of every draw and proposal (random, tpe).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub search_seed: u64,
    /// The rule that stops weak trials early, when the sweep has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_terminate: Option<EarlyTerminate>,
    /// The sweep file's `fuse:`, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuse: Option<crate::spec::Fuse>,
    /// The sweep file's `checkpoint:`, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<crate::spec::CheckpointPolicy>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_grid(m: &Method) -> bool {
    *m == Method::Grid
}

impl SweepInfo {
    /// The record of a plan and the sweep file it came from.
    pub fn new(plan: &Plan, spec: &Spec) -> SweepInfo {
        SweepInfo {
            name: plan.name.clone(),
            description: spec.description.clone(),
            report: spec.report.clone(),
            axes: plan.axes.clone(),
            trials: plan.trials.clone(),
            program: spec.program.clone(),
            method: spec.search.method,
            space: spec.search.space.clone(),
            count: spec.search.count.map(|c| c.0),
            search_seed: spec.search.seed(),
            early_terminate: spec.early_terminate.clone(),
            fuse: spec.fuse,
            checkpoint: spec.checkpoint,
        }
    }
}

/// A planned trial with its stored result.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The trial as planned.
    pub trial: Trial,
    /// What it produced, epochs included.
    pub result: TrialResult,
}

/// The results directory of one sweep.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

const PLAN_JSON: &str = "plan.json";
/// The file of a TPE sweep's recorded proposals, one trial a line, in order.
pub const PROPOSALS: &str = "proposals.jsonl";

impl Store {
    /// The results directory of sweep `sweep` under `root` (it may not exist yet).
    pub fn new(root: &Path, sweep: &str) -> Store {
        Store {
            dir: root.join(sweep),
        }
    }

    /// An existing results directory: one holding the `plan.json` that `run` writes first.
    pub fn open(dir: &Path) -> Result<Store> {
        if !dir.join(PLAN_JSON).is_file() {
            let why = if dir.is_file() {
                "it is a file, not a directory: give the sweep's results directory, results/NAME"
            } else if !dir.is_dir() {
                "it does not exist"
            } else if dir.join("plan.csv").is_file() {
                "it was written by an older hypersweep: run the sweep again to update it; finished trials are kept"
            } else if dir.join("summary.csv").is_file() {
                "only its summary and report are here, as committed to git without the per-trial files: run the sweep to train it again"
            } else {
                "no plan.json: run the sweep first"
            };
            return Err(Error::NotResults {
                path: dir.to_path_buf(),
                why: why.into(),
            });
        }
        Ok(Store {
            dir: dir.to_path_buf(),
        })
    }

    /// The directory itself.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where one trial's files live.
    pub fn trial_dir(&self, id: &TrialId) -> PathBuf {
        self.dir.join("trials").join(id.as_str())
    }

    /// Starts an attempt of a trial this process holds: counted in its `attempts`, with its
    /// checkpoint directory and the sweep's policy.
    pub fn start_attempt(
        &self,
        id: &TrialId,
        policy: crate::spec::CheckpointPolicy,
    ) -> Result<TrialCheckpoint> {
        TrialCheckpoint::start(&self.trial_dir(id), policy)
    }

    /// After a trial's result was written: unless it was interrupted (it resumes from its
    /// checkpoint), its checkpoint and attempt count go.
    pub fn end_attempt(&self, id: &TrialId, status: crate::trial::Status) {
        if status != crate::trial::Status::Interrupted {
            checkpoint::finish(&self.trial_dir(id));
        }
    }

    /// Moves an existing results directory aside (never deletes), for `--fresh`.
    pub fn move_aside(&self) -> Result<Option<PathBuf>> {
        if !self.dir.exists() {
            return Ok(None);
        }
        let target = files::move_aside(&self.dir)?;
        Ok(Some(target))
    }

    /// Writes the provenance files: the sweep file as run, the plan as a table (plan.csv, for
    /// people) and as the record every reader uses (plan.json).
    pub fn write_plan(&self, source: &str, info: &SweepInfo) -> Result<()> {
        create_dir(&self.dir.join("trials"))?;
        // Called under the run lock: temporaries of killed writers can go now.
        files::remove_stale_tmp(&self.dir);
        write_atomic(&self.dir.join("sweep.yaml"), source.as_bytes())?;
        write_atomic(&self.dir.join("plan.csv"), plan_csv(info).as_bytes())?;
        let json = serde_json::to_string_pretty(info)?;
        write_atomic(&self.dir.join(PLAN_JSON), json.as_bytes())
    }

    /// The recorded plan as written: a TPE sweep's planned trials without its proposals.
    pub fn read_planned(&self) -> Result<SweepInfo> {
        let path = self.dir.join(PLAN_JSON);
        let text = fs::read_to_string(&path).at("read", &path)?;
        serde_json::from_str(&text).map_err(|e| Error::NotResults {
            path: self.dir.clone(),
            why: format!("{} is damaged: {e}", path.display()),
        })
    }

    /// The recorded sweep; a TPE sweep's trials are the planned ones followed by every
    /// recorded proposal.
    pub fn read_plan(&self) -> Result<SweepInfo> {
        let mut info = self.read_planned()?;
        if info.method == Method::Tpe {
            let proposed = self.read_proposals();
            info.trials
                .retain(|t| !proposed.iter().any(|p| p.id == t.id));
            info.trials.extend(proposed);
        }
        Ok(info)
    }

    /// A TPE sweep's recorded proposals, in order; a line that cannot be read is skipped with a
    /// warning.
    pub fn read_proposals(&self) -> Vec<Trial> {
        let Ok(text) = fs::read_to_string(self.dir.join(PROPOSALS)) else {
            return vec![];
        };
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .filter_map(|l| match serde_json::from_str(l) {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::warn!("skipping a damaged line of {PROPOSALS}: {e}");
                    None
                }
            })
            .collect()
    }

    /// Records the proposals, in order (the caller holds the directory's lock).
    pub fn write_proposals<'a>(&self, trials: impl Iterator<Item = &'a Trial>) -> Result<()> {
        let mut text = String::new();
        for t in trials {
            text += &serde_json::to_string(t)?;
            text.push('\n');
        }
        write_atomic(&self.dir.join(PROPOSALS), text.as_bytes())
    }

    /// Saves a finished trial: config, epochs, then result.json last.
    pub fn write_trial(&self, trial: &Trial, result: &TrialResult) -> Result<()> {
        let dir = self.trial_dir(&trial.id);
        create_dir(&dir)?;
        let config = serde_json::json!({
            "id": trial.id,
            "name": trial.name,
            "varied": trial.varied.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<serde_json::Map<_, _>>(),
            "config": trial.config,
        });
        write_atomic(
            &dir.join("config.json"),
            serde_json::to_string_pretty(&config)?.as_bytes(),
        )?;
        let epochs = if result.rows.is_empty() {
            epochs_csv(&result.epochs)
        } else {
            rows_csv(&result.rows)
        };
        write_atomic(&dir.join("epochs.csv"), epochs.as_bytes())?;
        write_atomic(
            &dir.join("result.json"),
            serde_json::to_string_pretty(result)?.as_bytes(),
        )?;
        // The rows of the attempt in progress are in epochs.csv now.
        let _ = fs::remove_file(dir.join(LIVE_FILE));
        Ok(())
    }

    /// Adds a row to a running trial's live file (what `serve` shows while it trains). The view
    /// is not the record: a row that cannot be written is logged and the trial goes on.
    pub fn live_row(&self, id: &TrialId, row: &crate::trial::MetricRow) {
        let dir = self.trial_dir(id);
        if let Err(e) = create_dir(&dir).and_then(|()| live::append(&dir, row)) {
            tracing::debug!("no live row for trial {id}: {e}");
        }
    }

    /// A trial's live rows after `offset` (see `LiveRead`).
    pub fn read_live(&self, id: &TrialId, offset: u64) -> Result<LiveRead> {
        live::read_from(&self.trial_dir(id).join(LIVE_FILE), offset)
    }

    /// The end of one of a trial's output files (`stdout.log`, `stderr.log`), at most `max`
    /// bytes; `None` when it is missing or a link out of the results directory.
    pub fn output_tail(&self, id: &TrialId, file: &str, max: u64) -> Option<String> {
        live::tail(&self.dir, &self.trial_dir(id).join(file), max)
    }

    /// The stored result of a trial with its epochs, if it completed writing. A result that
    /// cannot be read is an error naming its file.
    pub fn load(&self, id: &TrialId) -> Result<Option<TrialResult>> {
        let dir = self.trial_dir(id);
        let path = dir.join("result.json");
        if !path.exists() {
            return Ok(None);
        }
        let text = fs::read_to_string(&path).at("read", &path)?;
        let mut r: TrialResult = serde_json::from_str(&text)
            .map_err(|e| Error::Input(format!("{} is not a valid result: {e}", path.display())))?;
        let epochs = dir.join("epochs.csv");
        if let Ok(text) = fs::read_to_string(&epochs) {
            let bad = |e: String| Error::Input(format!("{}: {e}", epochs.display()));
            if text.lines().next() == Some(EPOCH_HEADER) {
                r.epochs = parse_epochs_csv(&text).map_err(bad)?;
            } else {
                r.rows = parse_rows_csv(&text).map_err(bad)?;
            }
        }
        Ok(Some(r))
    }

    /// The recorded sweep with every readable result: what `status` and `report` read.
    pub fn read_sweep(&self) -> Result<(SweepInfo, Vec<Finished>, Vec<String>)> {
        let info = self.read_plan()?;
        let (finished, unreadable) = self.load_finished(&info);
        Ok((info, finished, unreadable))
    }

    /// Every planned trial that has a readable result, in plan order. A result that cannot be
    /// read is skipped with a warning and its trial listed in the second value.
    pub fn load_finished(&self, info: &SweepInfo) -> (Vec<Finished>, Vec<String>) {
        let mut done = vec![];
        let mut unreadable = vec![];
        for t in &info.trials {
            match self.load(&t.id) {
                Ok(Some(result)) => done.push(Finished {
                    trial: t.clone(),
                    result,
                }),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!("skipping trial `{}`: {e}", t.name);
                    unreadable.push(e.to_string());
                }
            }
        }
        (done, unreadable)
    }

    /// The newest claim of every trial that has one: who trains what, and stale claims.
    pub fn claims(&self) -> Vec<Found> {
        Claims::new(&self.dir).all()
    }
}

/// plan.csv: one row per trial, its id, name and varied values.
fn plan_csv(info: &SweepInfo) -> String {
    let mut s = String::from("id,name");
    for a in &info.axes {
        s += &format!(",{}", csv_field(a));
    }
    s.push('\n');
    for t in &info.trials {
        s += &format!("{},{}", t.id, csv_field(&t.name));
        for a in &info.axes {
            let v = t.varied_value(a).map(value_text).unwrap_or_default();
            s += &format!(",{}", csv_field(&v));
        }
        s.push('\n');
    }
    s
}
