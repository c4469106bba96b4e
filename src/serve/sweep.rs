//! One sweep as the live view knows it, kept up to date from its results directory through the
//! store alone: the plan, each trial's result, the claims of running trials and the rows they
//! add to their live files. A refresh reads a file only when its size or modification time
//! changed, and a live file only past where it stopped, so its cost follows what changed. Each
//! change bumps the version; a page asks for what changed since the version it has.

use crate::store::{Finished, LiveRead, Store, SweepInfo};
use crate::trial::{MetricRow, Trial, TrialResult};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

/// A file's size and modification time: it changed when these did.
type Stamp = Option<(u64, SystemTime)>;

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()?))
}

/// Who trains a trial now, from its live claim.
#[derive(Debug, Clone, PartialEq)]
pub struct Running {
    /// The device it trains on.
    pub device: String,
    /// The machine (and Slurm task) training it.
    pub host: String,
    /// When it was claimed, seconds since the Unix epoch.
    pub started: u64,
}

/// One planned trial and what is known of it.
pub struct TrialView {
    /// The trial as planned.
    pub trial: Trial,
    /// Its stored result's place in `View::finished`.
    pub result: Option<usize>,
    result_stamp: Stamp,
    /// Why its result cannot be read, when it cannot.
    pub damaged: Option<String>,
    /// The rows of its attempt in progress (or of one that stopped without a result).
    pub live: Vec<MetricRow>,
    live_offset: u64,
    /// Lines of its live file that could not be read.
    pub live_damaged: usize,
    /// Set while a live claim holds it.
    pub running: Option<Running>,
    /// The version at which it last changed.
    pub changed: u64,
}

/// What the view knows of a sweep.
pub struct View {
    /// The recorded sweep (its trials are in `trials`).
    pub info: SweepInfo,
    /// Every planned trial, in plan order.
    pub trials: Vec<TrialView>,
    index: HashMap<String, usize>,
    /// The readable results, for the ETA and the report.
    pub finished: Vec<Finished>,
    /// Bumped by every change.
    pub version: u64,
    /// The version from which a page must reload everything (the plan changed).
    pub reset: u64,
    /// The time-left line, as `status` gives it.
    pub eta: String,
    eta_at: Option<Instant>,
    plan_stamp: (Stamp, Stamp),
    /// Why the plan could not be read at the last refresh, if it could not.
    pub plan_error: Option<String>,
}

/// The ETA is recomputed at most this often (it reads every claim and result speed).
const ETA_EVERY: Duration = Duration::from_secs(2);

impl View {
    /// Reads a sweep's directory for the first time.
    pub fn load(store: &Store, eta: super::Eta) -> std::result::Result<View, String> {
        let info = read_plan(store)?;
        let mut v = View {
            info,
            trials: vec![],
            index: HashMap::new(),
            finished: vec![],
            version: 1,
            reset: 1,
            eta: String::new(),
            eta_at: None,
            plan_stamp: (None, None),
            plan_error: None,
        };
        v.refresh(store, eta);
        Ok(v)
    }

    /// Reads what changed; returns whether anything did.
    pub fn refresh(&mut self, store: &Store, eta: super::Eta) -> bool {
        let before = self.version;
        let next = self.version + 1;
        self.refresh_plan(store, next);
        let claims = running_claims(store);
        for i in 0..self.trials.len() {
            self.refresh_trial(store, i, &claims, next);
        }
        if self.trials.iter().any(|t| t.changed == next) {
            self.version = next;
        }
        let changed = self.version != before;
        if changed || self.eta_at.is_none_or(|t| t.elapsed() >= ETA_EVERY) {
            self.eta = eta(store, &self.info, &self.finished);
            self.eta_at = Some(Instant::now());
        }
        changed
    }

    /// Rereads the plan when plan.json or a TPE sweep's proposals changed; trials already known
    /// keep what was read of them.
    fn refresh_plan(&mut self, store: &Store, next: u64) {
        let dir = store.dir();
        let now = (
            stamp(&dir.join("plan.json")),
            stamp(&dir.join(crate::store::PROPOSALS)),
        );
        if now == self.plan_stamp {
            return;
        }
        // Remembered even when the read fails, so the next change (the file back) is read.
        self.plan_stamp = now;
        let info = match read_plan(store) {
            Ok(info) => info,
            Err(e) => {
                self.plan_error = Some(e);
                return;
            }
        };
        self.plan_error = None;
        let mut old: HashMap<String, TrialView> = self
            .trials
            .drain(..)
            .map(|t| (t.trial.id.to_string(), t))
            .collect();
        for t in &info.trials {
            let view = old.remove(t.id.as_str()).unwrap_or_else(|| TrialView {
                trial: t.clone(),
                result: None,
                result_stamp: None,
                damaged: None,
                live: vec![],
                live_offset: 0,
                live_damaged: 0,
                running: None,
                changed: next,
            });
            self.trials.push(TrialView {
                trial: t.clone(),
                changed: next,
                ..view
            });
        }
        self.index = (self.trials.iter().enumerate())
            .map(|(i, t)| (t.trial.id.to_string(), i))
            .collect();
        self.info = info;
        self.version = next;
        self.reset = next;
    }

    fn refresh_trial(
        &mut self,
        store: &Store,
        i: usize,
        claims: &HashMap<String, Running>,
        next: u64,
    ) {
        let id = self.trials[i].trial.id.clone();
        let running = claims.get(id.as_str()).cloned();
        let was_running = self.trials[i].running.is_some();
        if self.trials[i].running != running {
            self.trials[i].running = running;
            self.trials[i].changed = next;
        }
        let path = store.trial_dir(&id).join("result.json");
        let now = stamp(&path);
        if now != self.trials[i].result_stamp {
            self.trials[i].result_stamp = now;
            self.trials[i].changed = next;
            self.read_result(store, i, &path);
        }
        // The live file of a running trial, and once more when it stops or on the first read.
        let t = &self.trials[i];
        let live = store.trial_dir(&id).join(crate::store::LIVE_FILE);
        if (t.running.is_some() || was_running || t.changed == next) && inside(store.dir(), &live) {
            match store.read_live(&id, t.live_offset) {
                Ok(read) => self.take_live(i, read, next),
                Err(e) => tracing::debug!("live rows of {id}: {e}"),
            }
        }
    }

    /// Reads trial `i`'s result (at `path`), unless it is a link out of the directory.
    fn read_result(&mut self, store: &Store, i: usize, path: &Path) {
        let t = &mut self.trials[i];
        let loaded = match inside(store.dir(), path) {
            true => store.load(&t.trial.id).map_err(|e| e.to_string()),
            false => Err(format!("{}: {OUTSIDE}", path.display())),
        };
        t.damaged = None;
        let result: Option<TrialResult> = match loaded {
            Ok(r) => r,
            Err(e) => {
                t.damaged = Some(e);
                None
            }
        };
        match (result, t.result) {
            (Some(r), Some(k)) => self.finished[k].result = r,
            (Some(r), None) => {
                t.result = Some(self.finished.len());
                self.finished.push(Finished {
                    trial: t.trial.clone(),
                    result: r,
                });
            }
            (None, Some(k)) => {
                // Gone (moved aside for a rerun) or damaged.
                t.result = None;
                self.finished.remove(k);
                for other in &mut self.trials {
                    other.result = other.result.map(|j| if j > k { j - 1 } else { j });
                }
            }
            (None, None) => {}
        }
    }

    fn take_live(&mut self, i: usize, read: LiveRead, next: u64) {
        let t = &mut self.trials[i];
        if read.restarted {
            t.live.clear();
            t.live_damaged = 0;
        }
        let grew = !read.rows.is_empty() || read.restarted || read.damaged > 0;
        t.live_offset = read.offset;
        t.live_damaged += read.damaged;
        for row in read.rows {
            take_over(&mut t.live, row);
        }
        if grew {
            t.changed = next;
        }
    }

    /// The time left in words (`status` pads its label into a column; a page needs the words).
    pub fn eta_words(&self) -> String {
        self.eta.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// A trial's view by id.
    pub fn trial(&self, id: &str) -> Option<&TrialView> {
        self.index.get(id).map(|i| &self.trials[*i])
    }

    /// A trial's stored result.
    pub fn result(&self, t: &TrialView) -> Option<&TrialResult> {
        t.result.map(|k| &self.finished[k].result)
    }

    /// The rows a trial's curves draw: its stored epochs (or a program's rows), with the live
    /// rows of the attempt in progress taking over from the first epoch they report.
    pub fn rows(&self, t: &TrialView) -> Vec<MetricRow> {
        let mut rows: Vec<MetricRow> = match self.result(t) {
            Some(r) if r.rows.is_empty() => {
                r.epochs.iter().map(crate::store::epoch_metrics).collect()
            }
            Some(r) => r.rows.clone(),
            None => vec![],
        };
        if t.running.is_some() || self.result(t).is_none() {
            for row in &t.live {
                take_over(&mut rows, row.clone());
            }
        }
        rows
    }
}

/// Why a file is not read.
const OUTSIDE: &str = "a link out of the results directory, not read";

/// Whether `path` (when it exists) lies inside `dir` once links are followed: the view reads
/// nothing outside the directories it was given.
pub fn inside(dir: &Path, path: &Path) -> bool {
    match (dir.canonicalize(), path.canonicalize()) {
        (Ok(d), Ok(p)) => p.starts_with(d),
        (Ok(_), Err(_)) => !path.is_symlink(),
        (Err(_), _) => false,
    }
}

/// The recorded plan, unless plan.json is a link out of the directory.
fn read_plan(store: &Store) -> std::result::Result<SweepInfo, String> {
    let plan = store.dir().join("plan.json");
    if !inside(store.dir(), &plan) {
        return Err(format!("{}: {OUTSIDE}", plan.display()));
    }
    store.read_plan().map_err(|e| e.to_string())
}

/// Adds a row; one that reports an epoch (or step) already seen starts again from there, as a
/// resumed or restarted attempt does.
fn take_over(rows: &mut Vec<MetricRow>, row: MetricRow) {
    let at = |r: &MetricRow| r.get("epoch").or_else(|| r.get("step")).copied();
    if let Some(p) = at(&row)
        && let Some(k) = rows.iter().position(|r| at(r).is_some_and(|q| q >= p))
    {
        rows.truncate(k);
    }
    rows.push(row);
}

/// The live claims, by trial id.
fn running_claims(store: &Store) -> HashMap<String, Running> {
    store
        .claims()
        .into_iter()
        .filter(|f| f.live)
        .filter_map(|f| f.claim)
        .map(|c| {
            let host = match (&c.slurm_job, &c.slurm_task) {
                (Some(j), Some(t)) => format!("{} (Slurm {j}_{t})", c.host),
                (Some(j), None) => format!("{} (Slurm {j})", c.host),
                _ => c.host.clone(),
            };
            let run = Running {
                device: c.device.clone(),
                host,
                started: c.started,
            };
            (c.id.to_string(), run)
        })
        .collect()
}

/// A number for JSON: non-finite values become null.
pub fn num(v: Option<f64>) -> Value {
    v.filter(|x| x.is_finite())
        .map_or(Value::Null, |x| json!(x))
}
