//! The results directory: layout, atomic writes (temporary name, then rename; result.json last,
//! so its presence means the trial is complete), resume, and the lock that keeps two runs apart.

use crate::engine::{EpochRow, TrialResult};
use crate::plan::{Plan, Trial, value_text};
use anyhow::{Context, Result, bail};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct Store {
    pub dir: PathBuf,
}

/// Writes a file so that readers see either the old content or the whole new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!(
        "{}.tmp-{}",
        path.extension().and_then(|e| e.to_str()).unwrap_or(""),
        std::process::id()
    ));
    {
        let mut f =
            fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)
        .with_context(|| format!("cannot rename {} into place", tmp.display()))?;
    Ok(())
}

/// Quotes a CSV field when it holds a comma, quote or newline.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn opt(v: Option<f64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

pub const EPOCH_HEADER: &str =
    "epoch,train_loss,train_accuracy,val_loss,val_accuracy,test_loss,test_accuracy,lr,seconds";

pub fn epochs_csv(rows: &[EpochRow]) -> String {
    let mut s = format!("{EPOCH_HEADER}\n");
    for r in rows {
        s += &format!(
            "{},{},{},{},{},{},{},{},{}\n",
            r.epoch,
            r.train_loss,
            r.train_accuracy,
            opt(r.val_loss),
            opt(r.val_accuracy),
            opt(r.test_loss),
            opt(r.test_accuracy),
            r.lr,
            r.seconds
        );
    }
    s
}

pub fn parse_epochs_csv(text: &str) -> Result<Vec<EpochRow>> {
    let mut rows = vec![];
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 9 {
            bail!("line {}: expected 9 fields, found {}", i + 1, f.len());
        }
        let num = |s: &str| -> Result<f64> {
            s.parse::<f64>()
                .with_context(|| format!("line {}: `{s}` is not a number", i + 1))
        };
        let o = |s: &str| -> Result<Option<f64>> {
            if s.is_empty() {
                Ok(None)
            } else {
                num(s).map(Some)
            }
        };
        rows.push(EpochRow {
            epoch: f[0]
                .parse()
                .with_context(|| format!("line {}: bad epoch", i + 1))?,
            train_loss: num(f[1])?,
            train_accuracy: num(f[2])?,
            val_loss: o(f[3])?,
            val_accuracy: o(f[4])?,
            test_loss: o(f[5])?,
            test_accuracy: o(f[6])?,
            lr: num(f[7])?,
            seconds: num(f[8])?,
        });
    }
    Ok(rows)
}

impl Store {
    pub fn new(root: &Path, sweep: &str) -> Store {
        Store {
            dir: root.join(sweep),
        }
    }

    /// An existing results directory (one holding the `plan.csv` that `run` writes first).
    pub fn open(dir: &Path) -> Result<Store> {
        if !dir.join("plan.csv").is_file() {
            return Err(crate::app::UserError(format!(
                "{} is not a results directory (no plan.csv): run the sweep first",
                dir.display()
            ))
            .into());
        }
        Ok(Store {
            dir: dir.to_path_buf(),
        })
    }

    pub fn trial_dir(&self, id: &str) -> PathBuf {
        self.dir.join("trials").join(id)
    }

    /// Moves an existing results directory aside (never deletes), for `--fresh`.
    pub fn move_aside(&self) -> Result<Option<PathBuf>> {
        if !self.dir.exists() {
            return Ok(None);
        }
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let name = self
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let target = self.dir.with_file_name(format!("{name}.old-{stamp}"));
        fs::rename(&self.dir, &target)
            .with_context(|| format!("cannot move {} aside", self.dir.display()))?;
        Ok(Some(target))
    }

    /// Writes the provenance files: the sweep file as run and the plan.
    pub fn write_plan(&self, source: &str, plan: &Plan) -> Result<()> {
        fs::create_dir_all(self.dir.join("trials"))
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        write_atomic(&self.dir.join("sweep.yaml"), source.as_bytes())?;
        write_atomic(&self.dir.join("plan.csv"), plan_csv(plan).as_bytes())?;
        Ok(())
    }

    /// Saves a finished trial: config, epochs, then result.json last.
    pub fn write_trial(&self, trial: &Trial, result: &TrialResult) -> Result<()> {
        let dir = self.trial_dir(&trial.id);
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
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
        write_atomic(
            &dir.join("epochs.csv"),
            epochs_csv(&result.epochs).as_bytes(),
        )?;
        write_atomic(
            &dir.join("result.json"),
            serde_json::to_string_pretty(result)?.as_bytes(),
        )?;
        Ok(())
    }

    /// The stored result of a trial with its epochs, if it completed writing.
    pub fn load(&self, id: &str) -> Result<Option<TrialResult>> {
        let dir = self.trial_dir(id);
        let path = dir.join("result.json");
        if !path.exists() {
            return Ok(None);
        }
        let text = fs::read_to_string(&path)?;
        let mut r: TrialResult = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid result", path.display()))?;
        if let Ok(epochs) = fs::read_to_string(dir.join("epochs.csv")) {
            r.epochs = parse_epochs_csv(&epochs)
                .with_context(|| format!("{}", dir.join("epochs.csv").display()))?;
        }
        Ok(Some(r))
    }

    /// Every stored result, with the trial's config.json, in directory order.
    pub fn load_all(&self) -> Result<Vec<(serde_json::Value, TrialResult)>> {
        let mut out = vec![];
        let trials = self.dir.join("trials");
        if !trials.is_dir() {
            return Ok(out);
        }
        let mut entries: Vec<_> = fs::read_dir(&trials)?.filter_map(|e| e.ok()).collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let id = e.file_name().to_string_lossy().to_string();
            if let Some(r) = self.load(&id)? {
                let cfg = fs::read_to_string(e.path().join("config.json"))
                    .ok()
                    .and_then(|t| serde_json::from_str(&t).ok())
                    .unwrap_or(serde_json::Value::Null);
                out.push((cfg, r));
            }
        }
        Ok(out)
    }
}

pub fn plan_csv(plan: &Plan) -> String {
    let mut s = String::from("id,name");
    for a in &plan.axes {
        s += &format!(",{}", csv_field(a));
    }
    s.push('\n');
    for t in &plan.trials {
        s += &format!("{},{}", t.id, csv_field(&t.name));
        for a in &plan.axes {
            let v = t
                .varied
                .iter()
                .find(|(k, _)| k == a)
                .map(|(_, v)| value_text(v))
                .unwrap_or_default();
            s += &format!(",{}", csv_field(&v));
        }
        s.push('\n');
    }
    s
}

/// Holds `<dir>/.lock` while a run uses the directory; a lock left by a dead process is taken over.
pub struct Lock {
    path: PathBuf,
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

impl Lock {
    pub fn acquire(dir: &Path) -> Result<Lock> {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join(".lock");
        let me = format!(
            "{}\n{}\n",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        );
        for _ in 0..2 {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    f.write_all(me.as_bytes())?;
                    return Ok(Lock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let text = fs::read_to_string(&path).unwrap_or_default();
                    let pid: Option<u32> = text.lines().next().and_then(|l| l.trim().parse().ok());
                    match pid {
                        Some(pid) if pid != std::process::id() && alive(pid) => bail!(
                            "another `hypersweep run` (pid {pid}) is using {}; wait for it to finish or stop it (kill {pid})",
                            dir.display()
                        ),
                        _ => {
                            tracing::warn!(lock = %path.display(), "taking over a stale lock left by a process that is gone");
                            let _ = fs::remove_file(&path);
                        }
                    }
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot create {}", path.display()));
                }
            }
        }
        bail!("cannot take the lock {}", path.display())
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_round_trip() {
        let rows = vec![
            EpochRow {
                epoch: 1,
                train_loss: 0.5,
                train_accuracy: 0.8,
                val_loss: Some(0.4),
                val_accuracy: None,
                test_loss: None,
                test_accuracy: Some(0.9),
                lr: 0.01,
                seconds: 1.5,
            };
            2
        ];
        assert_eq!(parse_epochs_csv(&epochs_csv(&rows)).unwrap(), rows);
    }

    #[test]
    fn lock_excludes_live_and_takes_over_dead() {
        let d = tempfile::tempdir().unwrap();
        let l = Lock::acquire(d.path()).unwrap();
        // Our own pid counts as a stale holder for a second acquire in-process only via a live
        // foreign pid: pid 1 is always alive.
        drop(l);
        fs::write(d.path().join(".lock"), "1\n0\n").unwrap();
        let e = Lock::acquire(d.path()).err().unwrap().to_string();
        assert!(e.contains("pid 1"), "{e}");
        fs::write(d.path().join(".lock"), "999999999\n0\n").unwrap();
        assert!(Lock::acquire(d.path()).is_ok());
    }
}
