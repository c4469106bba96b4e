//! A small builder so each test is a few lines: a sweep file in a temporary directory, its
//! results root beside it, and ways to run it in-process (with a scripted engine) or through
//! the binary (scripted with `HYPERSWEEP_ENGINE=scripted`, or the real burn engine).

use assert_cmd::Command;
use hypersweep::app::{self, RunOutcome};
use hypersweep::cli::{RunArgs, TrainArgs};
use hypersweep::engine::scripted::Scripted;
use hypersweep::store::Store;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The binary, training with the real engine.
pub fn bin() -> Command {
    Command::cargo_bin("hypersweep").unwrap()
}

/// The binary, training with the scripted engine (milliseconds per trial).
pub fn scripted_bin() -> Command {
    let mut c = bin();
    c.env("HYPERSWEEP_ENGINE", "scripted");
    c
}

/// A path inside the repository.
pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A sweep file in its own temporary directory, with results under `<tmp>/results`.
pub struct Sweep {
    pub tmp: tempfile::TempDir,
    pub file: PathBuf,
    pub out: PathBuf,
    pub name: String,
}

impl Sweep {
    /// A sweep from its YAML; `name:` is read from the text.
    pub fn new(yaml: &str) -> Sweep {
        let tmp = tempfile::tempdir().unwrap();
        let name = yaml
            .lines()
            .find_map(|l| l.strip_prefix("name: "))
            .unwrap_or("sweep")
            .trim()
            .to_string();
        let file = write(tmp.path(), "sweep.yaml", yaml);
        let out = tmp.path().join("results");
        Sweep {
            tmp,
            file,
            out,
            name,
        }
    }

    /// Replaces the sweep file's text (same name).
    pub fn rewrite(&self, yaml: &str) {
        std::fs::write(&self.file, yaml).unwrap();
    }

    /// results/<name>.
    pub fn dir(&self) -> PathBuf {
        self.out.join(&self.name)
    }

    /// The store of the results directory.
    pub fn store(&self) -> Store {
        Store::new(&self.out, &self.name)
    }

    /// `run` arguments: two CPU slots of one thread, quiet.
    pub fn args(&self) -> RunArgs {
        RunArgs {
            file: self.file.clone(),
            out: self.out.clone(),
            data_dir: None,
            fresh: false,
            serve: None,
            train: TrainArgs {
                slots: hypersweep::cli::SlotArgs {
                    devices: "cpu:2".into(),
                    per_device: 1,
                    threads: Some(1),
                    fuse: None,
                },
                rerun_failed: false,
                quiet: true,
                no_report: false,
            },
        }
    }

    /// Runs in-process with `engine`; returns the outcome (panics on an error).
    pub fn run(&self, engine: &Arc<Scripted>) -> RunOutcome {
        self.run_with(engine, |_| {})
    }

    /// Runs in-process with `engine` after `edit` changes the arguments.
    pub fn run_with(&self, engine: &Arc<Scripted>, edit: impl FnOnce(&mut RunArgs)) -> RunOutcome {
        self.try_run(engine, edit).unwrap()
    }

    /// Runs in-process and returns the error, if any.
    pub fn try_run(
        &self,
        engine: &Arc<Scripted>,
        edit: impl FnOnce(&mut RunArgs),
    ) -> hypersweep::Result<RunOutcome> {
        let mut a = self.args();
        edit(&mut a);
        let engine: Arc<dyn hypersweep::engine::Engine> = engine.clone();
        app::run_with(&a, &Default::default(), &engine)
    }

    /// `hypersweep run` of this sweep as a child process on the scripted engine (`epoch_ms`
    /// per epoch, one CPU slot, quiet, no report), its output captured.
    pub fn spawn_scripted_run(&self, epoch_ms: u64) -> std::process::Child {
        self.spawn_scripted(epoch_ms, &["--devices", "cpu:1", "--quiet", "--no-report"])
    }

    /// `hypersweep run` of this sweep as a child process on the scripted engine (`epoch_ms`
    /// per epoch) with the given flags, its output captured.
    pub fn spawn_scripted(&self, epoch_ms: u64, flags: &[&str]) -> std::process::Child {
        let mut args = vec![
            "run",
            self.file.to_str().unwrap(),
            "--out",
            self.out.to_str().unwrap(),
        ];
        args.extend(flags);
        spawn_scripted_command(&args, epoch_ms)
    }

    /// `hypersweep worker results/<name>` as a child process, like `spawn_scripted_run`.
    pub fn spawn_scripted_worker(&self, epoch_ms: u64) -> std::process::Child {
        let dir = self.dir();
        spawn_scripted_command(
            &[
                "worker",
                dir.to_str().unwrap(),
                "--devices",
                "cpu:1",
                "--quiet",
                "--no-report",
            ],
            epoch_ms,
        )
    }

    /// `hypersweep <cmd> <sweep file> --out <results>` on the scripted binary, plus `extra`.
    pub fn cli(&self, cmd: &str, extra: &[&str]) -> Command {
        let mut c = scripted_bin();
        c.args([
            cmd,
            self.file.to_str().unwrap(),
            "--out",
            self.out.to_str().unwrap(),
        ]);
        c.args(extra);
        c
    }
}

/// A fresh scripted engine sleeping `epoch_ms` per epoch.
pub fn scripted(epoch_ms: u64) -> Arc<Scripted> {
    Arc::new(Scripted::new(epoch_ms))
}

/// `hypersweep validate` of `text` written to `dir/name`: exit code, stdout, stderr.
pub fn validate(dir: &Path, name: &str, text: &str) -> (Option<i32>, String, String) {
    let f = write(dir, name, text);
    let out = scripted_bin()
        .args(["validate", f.to_str().unwrap()])
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).to_string();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// A hypersweep command as a child process on the scripted engine, its output captured.
fn spawn_scripted_command(args: &[&str], epoch_ms: u64) -> std::process::Child {
    std::process::Command::new(assert_cmd::cargo::cargo_bin("hypersweep"))
        .args(args)
        .env("HYPERSWEEP_ENGINE", "scripted")
        .env("HYPERSWEEP_SCRIPTED_EPOCH_MS", epoch_ms.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// How many trials of the sweep have a stored result with this status.
pub fn results_with_status(s: &Sweep, status: &str) -> usize {
    let needle = format!("\"status\": \"{status}\"");
    std::fs::read_dir(s.dir().join("trials"))
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    std::fs::read_to_string(e.path().join("result.json"))
                        .is_ok_and(|t| t.contains(&needle))
                })
                .count()
        })
        .unwrap_or(0)
}

/// How many times each trial is logged as finished in the sweep's shared log.
pub fn finished_per_trial(s: &Sweep) -> std::collections::BTreeMap<String, usize> {
    let log = std::fs::read_to_string(s.dir().join("hypersweep.log")).unwrap();
    let mut counts = std::collections::BTreeMap::new();
    for line in log.lines().filter(|l| l.contains("trial finished")) {
        let id = line.split("id=").nth(1).unwrap().split(' ').next().unwrap();
        *counts.entry(id.to_string()).or_default() += 1;
    }
    counts
}
