//! Claims: which process trains which trial, so that any number of `run` and `worker` processes
//! (on one machine, or on several sharing the results directory) train each trial once.
//!
//! A claim is the file `claims/<id>.<generation>.json`, created with create-exclusive (`O_EXCL`,
//! atomic on local file systems and on NFSv3+): of all processes trying to create the same
//! generation, exactly one succeeds. The file appears whole (written aside, then hard-linked into
//! place), so an empty or unreadable claim is damaged, never one being written. A claim is live
//! while its heartbeat (the file's modification time, refreshed by the holder) is recent and, on
//! the holder's own host, the process that wrote it still runs: the same pid *and* the same start
//! time on the same boot, since a container's pid 1 after a restart, or a reused pid, is alive
//! but is not that process. A stale claim is never deleted by the taker: it is superseded by creating the next
//! generation, which again only one process can do, so a takeover has no rename race.
//! `result.json` stays the only proof that a trial is done; the holder deletes its claim after
//! writing it (or when the trial is interrupted).

use super::files::{create_dir, create_whole};
use super::lock::{boot_id, host_name, process_alive, process_start};
use crate::error::Result;
use crate::trial::TrialId;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// What a claim file says about its holder.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claim {
    /// The trial.
    pub id: TrialId,
    /// Its name, for `status`.
    pub name: String,
    /// The machine of the holder.
    pub host: String,
    /// The holder's process id on that machine.
    pub pid: u32,
    /// When the holder started (clock ticks after boot), to tell it from a later process that
    /// got the same pid; absent in claims of older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_start: Option<u64>,
    /// The holder machine's boot id: a start time means something only within one boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<String>,
    /// Where the trial trains.
    pub device: String,
    /// Seconds since the epoch when the claim was made.
    pub started: u64,
    /// `SLURM_JOB_ID` of the holder, under Slurm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm_job: Option<String>,
    /// `SLURM_ARRAY_TASK_ID` of the holder, in a job array.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm_task: Option<String>,
}

/// A claim found on disk and whether its holder still works on it.
#[derive(Debug, Clone)]
pub struct Found {
    /// The claim (`None` when its file could not be read yet: being written, or damaged).
    pub claim: Option<Claim>,
    /// Its generation.
    pub generation: u64,
    /// True while its heartbeat is recent and (on this host) the process that wrote it runs.
    pub live: bool,
    /// Seconds since the last heartbeat.
    pub age: f64,
}

/// Seconds without a heartbeat after which a claim is stale, unless `HYPERSWEEP_CLAIM_TIMEOUT`
/// says otherwise.
pub const DEFAULT_STALE_SECS: f64 = 120.0;

/// Seconds an unreadable claim counts as live: where hard links are refused (`create_whole`)
/// a claim is created and then written, so a reader may find it empty for a moment. Older than
/// this, it is damaged (a write that failed on a full disk) and holds nothing.
const UNREADABLE_GRACE_SECS: f64 = 5.0;

/// This process's claims in one results directory.
pub struct Claims {
    dir: PathBuf,
    host: String,
    stale_after: f64,
    held: Mutex<HashMap<TrialId, PathBuf>>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Claim {
    /// True while the process that wrote this claim runs on this machine: its pid exists with
    /// the start time and boot the claim recorded (a claim of an older version has neither, and
    /// is judged by its pid and heartbeat).
    fn holder_runs(&self) -> bool {
        let same_boot = match (&self.boot, boot_id()) {
            (Some(theirs), Some(ours)) => theirs == ours,
            _ => true,
        };
        let same_start = self.pid_start.is_none() || process_start(self.pid) == self.pid_start;
        process_alive(self.pid) && same_boot && same_start
    }
}

impl Claims {
    /// The claims of the results directory `results`.
    pub fn new(results: &Path) -> Claims {
        let stale_after = std::env::var("HYPERSWEEP_CLAIM_TIMEOUT")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_STALE_SECS);
        Claims {
            dir: results.join("claims"),
            host: host_name(),
            stale_after,
            held: Mutex::new(HashMap::new()),
        }
    }

    /// How often the holder refreshes its heartbeat: a sixth of the stale timeout.
    pub fn heartbeat_every(&self) -> Duration {
        Duration::from_secs_f64((self.stale_after / 6.0).max(0.05))
    }

    /// Every claim file of trial `id`, by generation.
    fn generations(&self, id: &TrialId) -> Vec<(u64, PathBuf)> {
        let prefix = format!("{id}.");
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return vec![];
        };
        let mut out: Vec<(u64, PathBuf)> = entries
            .filter_map(std::result::Result::ok)
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                let g = name
                    .strip_prefix(&prefix)?
                    .strip_suffix(".json")?
                    .parse()
                    .ok()?;
                Some((g, e.path()))
            })
            .collect();
        out.sort();
        out
    }

    /// Reads one claim file and judges it.
    fn judge(&self, generation: u64, path: &Path) -> Option<Found> {
        let meta = fs::metadata(path).ok()?;
        let age = meta
            .modified()
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .map_or(0.0, |d| d.as_secs_f64());
        let claim: Option<Claim> = fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        let live = match &claim {
            Some(c) => age < self.stale_after && (c.host != self.host || c.holder_runs()),
            None => age < UNREADABLE_GRACE_SECS,
        };
        Some(Found {
            claim,
            generation,
            live,
            age,
        })
    }

    /// The newest claim of a trial, if any.
    pub fn current(&self, id: &TrialId) -> Option<Found> {
        let (g, path) = self.generations(id).pop()?;
        self.judge(g, &path)
    }

    /// Claims trial `id` for this process, unless a live claim exists or another process wins
    /// the race for the next generation. True when this process now holds it.
    pub fn try_claim(&self, id: &TrialId, name: &str, device: &str) -> Result<bool> {
        create_dir(&self.dir)?;
        let generation = match self.current(id) {
            Some(f) if f.live => return Ok(false),
            Some(f) => f.generation + 1,
            None => 1,
        };
        let path = self.dir.join(format!("{id}.{generation}.json"));
        let pid = std::process::id();
        let claim = Claim {
            id: id.clone(),
            name: name.into(),
            host: self.host.clone(),
            pid,
            pid_start: process_start(pid),
            boot: boot_id().map(String::from),
            device: device.into(),
            started: now_secs(),
            slurm_job: std::env::var("SLURM_ARRAY_JOB_ID")
                .or_else(|_| std::env::var("SLURM_JOB_ID"))
                .ok(),
            slurm_task: std::env::var("SLURM_ARRAY_TASK_ID").ok(),
        };
        if !create_whole(&path, serde_json::to_string(&claim)?.as_bytes())? {
            return Ok(false);
        }
        self.held.lock().expect("claims").insert(id.clone(), path);
        Ok(true)
    }

    /// How many trials this process holds now.
    pub fn held_here(&self) -> usize {
        self.held.lock().expect("claims").len()
    }

    /// Gives up this process's claim of `id`, and the stale generations before it.
    pub fn release(&self, id: &TrialId) {
        let Some(mine) = self.held.lock().expect("claims").remove(id) else {
            return;
        };
        for (_, path) in self.generations(id) {
            let _ = fs::remove_file(&path);
            if path == mine {
                break;
            }
        }
    }

    /// Refreshes the heartbeat of every claim this process holds.
    pub fn heartbeat(&self) {
        let held: Vec<PathBuf> = self
            .held
            .lock()
            .expect("claims")
            .values()
            .cloned()
            .collect();
        for path in held {
            if let Ok(f) = fs::File::options().write(true).open(&path) {
                let _ = f.set_modified(SystemTime::now());
            }
        }
    }

    /// Every trial's newest claim, live or stale.
    pub fn all(&self) -> Vec<Found> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return vec![];
        };
        let mut newest: HashMap<String, (u64, PathBuf)> = HashMap::new();
        for e in entries.filter_map(std::result::Result::ok) {
            let name = e.file_name().to_string_lossy().to_string();
            let Some((id, g)) = name
                .strip_suffix(".json")
                .and_then(|s| s.rsplit_once('.'))
                .and_then(|(id, g)| Some((id.to_string(), g.parse::<u64>().ok()?)))
            else {
                continue;
            };
            let slot = newest.entry(id).or_insert((0, PathBuf::new()));
            if g >= slot.0 {
                *slot = (g, e.path());
            }
        }
        newest
            .into_values()
            .filter_map(|(g, p)| self.judge(g, &p))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_claim_per_trial_and_a_dead_holder_is_superseded() {
        let d = tempfile::tempdir().unwrap();
        let a = Claims::new(d.path());
        let b = Claims::new(d.path());
        let id = TrialId("abc".into());
        assert!(a.try_claim(&id, "t", "cpu").unwrap());
        assert!(!b.try_claim(&id, "t", "cpu").unwrap(), "a live claim holds");
        // A claim left by a process that is gone (same host) is stale: the next generation wins.
        let dead = Claim {
            pid: 999_999_999,
            ..serde_json::from_str(&fs::read_to_string(d.path().join("claims/abc.1.json")).unwrap())
                .unwrap()
        };
        fs::write(
            d.path().join("claims/abc.1.json"),
            serde_json::to_string(&dead).unwrap(),
        )
        .unwrap();
        assert!(b.try_claim(&id, "t", "cpu").unwrap());
        assert_eq!(b.current(&id).unwrap().generation, 2);
        b.release(&id);
        assert!(
            b.current(&id).is_none(),
            "release removes the claim and the stale one"
        );
    }

    #[test]
    fn another_hosts_claim_is_live_until_its_heartbeat_is_old() {
        let d = tempfile::tempdir().unwrap();
        let c = Claims::new(d.path());
        fs::create_dir_all(d.path().join("claims")).unwrap();
        let other = Claim {
            id: TrialId("x".into()),
            name: "x".into(),
            host: "elsewhere".into(),
            pid: 1,
            pid_start: None,
            boot: None,
            device: "cpu".into(),
            started: 0,
            slurm_job: None,
            slurm_task: None,
        };
        let p = d.path().join("claims/x.1.json");
        fs::write(&p, serde_json::to_string(&other).unwrap()).unwrap();
        assert!(c.current(&other.id).unwrap().live);
        let old = SystemTime::now() - Duration::from_secs_f64(DEFAULT_STALE_SECS + 5.0);
        fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert!(!c.current(&other.id).unwrap().live);
        assert!(c.try_claim(&other.id, "x", "cpu").unwrap());
    }

    /// Rewrites trial `x`'s claim (generation 1) with `edit`, its heartbeat `age` seconds ago.
    fn forge(dir: &Path, age: f64, edit: impl FnOnce(&mut Claim)) -> Claims {
        let c = Claims::new(dir);
        let id = TrialId("x".into());
        assert!(c.try_claim(&id, "x", "cpu").unwrap());
        let path = dir.join("claims/x.1.json");
        let mut claim: Claim = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        edit(&mut claim);
        fs::write(&path, serde_json::to_string(&claim).unwrap()).unwrap();
        let when = SystemTime::now() - Duration::from_secs_f64(age);
        let f = fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(when).unwrap();
        c
    }

    #[test]
    fn a_live_pid_that_is_not_the_writer_holds_nothing() {
        let id = TrialId("x".into());
        // A container's pid 1 after a restart (or a reused pid): alive, started at another time.
        let d = tempfile::tempdir().unwrap();
        let c = forge(d.path(), 0.0, |c| {
            c.pid = 1;
            c.pid_start = process_start(1).map(|s| s + 1);
        });
        assert!(!c.current(&id).unwrap().live, "another start time");
        // The same process on another boot of the machine.
        let d = tempfile::tempdir().unwrap();
        let c = forge(d.path(), 0.0, |c| c.boot = Some("another-boot".into()));
        assert!(!c.current(&id).unwrap().live, "another boot");
        // The writer itself, heartbeat fresh: live.
        let d = tempfile::tempdir().unwrap();
        let c = forge(d.path(), 0.0, |_| {});
        assert!(c.current(&id).unwrap().live);
    }

    #[test]
    fn a_claim_whose_heartbeat_is_old_is_stale_even_if_its_pid_runs() {
        // A forged claim: pid 1 (always alive), no start time, heartbeat two days old.
        let d = tempfile::tempdir().unwrap();
        let c = forge(d.path(), 2.0 * 86_400.0, |c| {
            c.pid = 1;
            c.pid_start = None;
            c.boot = None;
        });
        let id = TrialId("x".into());
        assert!(!c.current(&id).unwrap().live);
        assert!(Claims::new(d.path()).try_claim(&id, "x", "cpu").unwrap());
    }

    #[test]
    fn an_empty_claim_holds_nothing_once_it_is_a_few_seconds_old() {
        // What a write that failed on a full disk left behind (before claims appeared whole).
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("claims")).unwrap();
        let path = d.path().join("claims/x.1.json");
        fs::write(&path, "").unwrap();
        let c = Claims::new(d.path());
        let id = TrialId("x".into());
        assert!(c.current(&id).unwrap().live, "perhaps being written");
        let old = SystemTime::now() - Duration::from_secs_f64(UNREADABLE_GRACE_SECS + 1.0);
        let f = fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(old).unwrap();
        assert!(!c.current(&id).unwrap().live, "damaged");
        assert!(c.try_claim(&id, "x", "cpu").unwrap());
        assert_eq!(c.current(&id).unwrap().generation, 2);
        assert_eq!(
            fs::read_dir(d.path().join("claims")).unwrap().count(),
            2,
            "no temporary left"
        );
    }
}
