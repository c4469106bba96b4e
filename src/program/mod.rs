//! The user's program as a trial: the second implementation of `Engine` beside the built-in
//! burn one. It fills the command's placeholders, runs it in the sweep file's directory with
//! the trial's environment, follows the metrics it appends, and turns its exit into a status.

mod attempts;
pub mod child;
pub mod leftovers;
pub mod metrics;
pub mod patterns;
mod tail;

use crate::engine::{Device, Engine, Progress, TrialContext};
use crate::error::{Error, IoContext, Result};
use crate::spec::Program;
use crate::store::{Store, create_dir, write_atomic};
use crate::trial::{Status, Trial, TrialKind, TrialResult};
use child::{Ended, Limits};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tail::Tail;

/// Thread-count variables set to the slot's thread budget (the user's `env` may override them).
const THREAD_VARS: &[&str] = &[
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "RAYON_NUM_THREADS",
];

/// Runs program trials of one sweep; each trial's files live in its directory of the store.
pub struct ProgramRunner {
    program: Program,
    store: Store,
}

impl ProgramRunner {
    /// A runner for the sweep's program, writing into the trial directories of `store`.
    pub fn new(program: Program, store: &Store) -> ProgramRunner {
        ProgramRunner {
            program,
            store: store.clone(),
        }
    }

    /// The child's command: argv with placeholders filled, working directory, environment.
    fn command(&self, trial: &Trial, dir: &Path, ctx: &TrialContext<'_>) -> Result<Command> {
        let TrialKind::Program(p) = &trial.config else {
            return Err(Error::Internal(format!(
                "trial `{}` is not a program trial",
                trial.name
            )));
        };
        let dir_text = dir.display().to_string();
        let argv =
            crate::spec::placeholders::fill(&p.command, &p.params, trial.id.as_str(), &dir_text)
                .map_err(Error::Trial)?;
        let params = dir.join("params.json");
        write_atomic(&params, serde_json::to_string_pretty(&p.params)?.as_bytes())?;
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .current_dir(&self.program.workdir)
            .env("HYPERSWEEP_TRIAL_ID", trial.id.as_str())
            .env("HYPERSWEEP_TRIAL_DIR", dir)
            .env("HYPERSWEEP_PARAMS", &params)
            .env("HYPERSWEEP_METRICS", dir.join(METRICS_FILE))
            .env("HYPERSWEEP_DEVICE", program_device(ctx.device))
            .env(
                "HYPERSWEEP_CHECKPOINT_DIR",
                dir.join(crate::store::CHECKPOINT_DIR),
            )
            .env(
                "HYPERSWEEP_RESTARTS",
                ctx.checkpoint.map_or(0, |c| c.restarts).to_string(),
            );
        if let Some(visible) = visible_device(ctx.device) {
            cmd.env("CUDA_VISIBLE_DEVICES", visible);
        }
        for var in THREAD_VARS {
            cmd.env(var, ctx.threads.now().to_string());
        }
        // Python buffers a piped stdout in blocks: its lines would reach us late and out of
        // order with stderr's (patterns read both), and live progress would stall.
        cmd.env("PYTHONUNBUFFERED", "1");
        cmd.envs(&self.program.env);
        Ok(cmd)
    }
}

/// Checks, before any trial is spent, what every trial of the sweep needs: the directory the
/// program runs in (the sweep file's: a node without that mount, or a moved results directory,
/// would otherwise fail every trial with a misleading "cannot start") and the program itself.
pub fn check_can_start(program: &Program) -> Result<()> {
    let dir = Path::new(&program.workdir);
    if !dir.is_dir() {
        return Err(Error::Input(format!(
            "{}: the program's working directory (the sweep file's directory when the sweep was \
             recorded) does not exist on this machine; run from where the sweep file is, or \
             mount it at the same path",
            dir.display()
        )));
    }
    let Some(first) = program.command.first().filter(|a| !a.contains('{')) else {
        return Ok(());
    };
    if !command_exists(first, dir, program.env.get("PATH")) {
        return Err(Error::Input(format!(
            "program.command: `{first}` is not an executable file (searched {}); install it, \
             write its full path, or make it executable (chmod +x)",
            if first.contains('/') {
                format!("from {}", dir.display())
            } else {
                "the PATH".to_string()
            }
        )));
    }
    Ok(())
}

/// Whether `name` can be run from `dir`: a path (relative to `dir`) to an executable file, or
/// an executable file in one of the PATH's directories.
fn command_exists(name: &str, dir: &Path, path: Option<&String>) -> bool {
    if name.contains('/') {
        return executable(&dir.join(name));
    }
    let path = path
        .cloned()
        .or_else(|| std::env::var("PATH").ok())
        .unwrap_or_default();
    std::env::split_paths(&path).any(|d| executable(&dir.join(d).join(name)))
}

/// A file with an execute permission bit (what `execve` needs; a script also needs its `#!`).
fn executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// What a program is told to train on, in the words PyTorch takes (`torch.device(...)`): `cpu`,
/// `cuda` (its one visible GPU, `cuda:0` inside the program) or `wgpu`.
fn program_device(device: Device) -> &'static str {
    match device {
        Device::Cpu => "cpu",
        Device::Cuda(_) => "cuda",
        Device::Wgpu => "wgpu",
    }
}

/// The GPU a program sees: `cuda:N` is the N-th GPU this process sees, which under Slurm (or a
/// user's own `CUDA_VISIBLE_DEVICES=2,3`) is the N-th entry of that list, not the card numbered
/// N; on CPU, none; on `wgpu`, the variable is left as it is (wgpu does not read it).
fn visible_device(device: Device) -> Option<String> {
    Some(match device {
        Device::Wgpu => return None,
        Device::Cpu => String::new(),
        Device::Cuda(i) => std::env::var("CUDA_VISIBLE_DEVICES")
            .ok()
            .and_then(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .nth(i)
                    .map(String::from)
            })
            .unwrap_or_else(|| i.to_string()),
    })
}

/// How long a program killed by a stopping signal waits for this process to be told to stop as
/// well: Slurm (and a terminal's Ctrl-C, and `kill -- -PGID`) signal every process at once, and
/// the program may die before our handler runs.
const STOPPED_TOGETHER: Duration = Duration::from_secs(2);

/// True when the program died of SIGTERM, SIGINT, SIGHUP or SIGUSR1 and this process was told to
/// stop too (within `STOPPED_TOGETHER`): the trial was interrupted, not failed, and is trained
/// again by whichever process resumes the sweep.
fn stopped_with_us(ended: Ended, cancel: &AtomicBool) -> bool {
    let Ended::Signalled(sig) = ended else {
        return false;
    };
    if ![libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGUSR1].contains(&sig) {
        return false;
    }
    let t0 = Instant::now();
    while t0.elapsed() < STOPPED_TOGETHER {
        if cancel.load(Ordering::SeqCst) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// The file a program appends its metric rows to, in its trial directory.
pub const METRICS_FILE: &str = "metrics.jsonl";

impl Engine for ProgramRunner {
    fn run(&self, trial: &Trial, ctx: &mut TrialContext<'_>) -> Result<TrialResult> {
        let t0 = Instant::now();
        // The program runs in the sweep file's directory: a relative results root (`--out
        // results`, the default) would name files it cannot find from there.
        let dir = self.store.trial_dir(&trial.id);
        let dir = std::path::absolute(&dir).at("resolve", &dir)?;
        create_dir(&dir)?;
        // A rerun starts from an empty metrics file; a restarted attempt keeps what the earlier
        // ones reported (the checkpoint contract), a fresh one does not.
        let metrics_path = dir.join(METRICS_FILE);
        let earlier = match ctx.checkpoint {
            Some(c) if c.restarts > 0 => {
                attempts::earlier_rows(&self.store, &trial.id, &metrics_path)
            }
            _ => vec![],
        };
        std::fs::File::create(&metrics_path).at("create", &metrics_path)?;
        create_dir(&dir.join(crate::store::CHECKPOINT_DIR))?;
        // Whoever held this trial before us is gone; so must be what its program started.
        leftovers::end(&dir);
        let cmd = self.command(trial, &dir, ctx)?;
        let marker = format!("HYPERSWEEP_TRIAL_DIR={}", dir.display());
        let program = cmd.get_program().to_string_lossy().to_string();
        let mut tail = Tail::new(metrics_path);
        let (cancel, stop_now) = (ctx.cancel, ctx.stop_now);
        let progress = &mut *ctx.progress;
        let mut tick = || {
            for row in tail.read_new() {
                progress(Progress::Metrics(row));
            }
        };
        let patterns = patterns::Patterns::new(&self.program.patterns).map_err(Error::Internal)?;
        let outcome = child::run(
            cmd,
            &dir,
            &marker,
            patterns,
            Limits {
                timeout: self.program.timeout.map(Duration::from_secs_f64),
                grace: Duration::from_secs_f64(self.program.grace),
                stop: &|| cancel.load(Ordering::Relaxed),
                stop_now: &|| stop_now.load(Ordering::Relaxed),
                tick: &mut tick,
            },
        )
        .map_err(|e| Error::Trial(format!("cannot start `{program}`: {e}")))?;
        tail.finish();
        let mut outcome = outcome;
        if stopped_with_us(outcome.ended, cancel) {
            outcome.ended = Ended::Stopped;
        }
        Ok(self.result(outcome, tail, t0.elapsed().as_secs_f64(), earlier))
    }
}

impl ProgramRunner {
    /// The trial's result from how the program ended and the metrics it reported.
    /// The rows of the trial's earlier attempts, `earlier`, come first (the checkpoint contract).
    fn result(
        &self,
        outcome: child::Outcome,
        tail: Tail,
        seconds: f64,
        earlier: Vec<crate::trial::MetricRow>,
    ) -> TrialResult {
        let (from_file, mut notes) = tail.into_curve();
        notes.extend(outcome.pattern_notes.iter().cloned());
        let ended = outcome.ended;
        let tail_text = outcome.stderr_tail.join("\n");
        let curve = if from_file.is_empty() {
            outcome.stdout_rows
        } else {
            if !outcome.stdout_rows.is_empty() {
                notes.push(format!(
                    "metrics read from {METRICS_FILE}; the name=value lines and patterns of its output were ignored"
                ));
            }
            from_file
        };
        let last = curve.last().clone();
        let metric = self.program.metric.as_deref();
        let non_finite = metric.is_some_and(|m| curve.had_non_finite(m));
        let (rows, thinned) = curve.into_rows();
        notes.extend(thinned);
        let (status, error, exit_code) = self.ending(ended, &tail_text, non_finite);
        let mut r = TrialResult {
            status,
            error,
            exit_code,
            epochs_run: last.get("epoch").map_or(0, |e| e.max(0.0) as usize),
            train_seconds: seconds,
            total_seconds: seconds,
            notes,
            metrics: last,
            rows,
            ..Default::default()
        };
        attempts::take_up(earlier, &mut r);
        if let Some(m) = metric
            && !r.metrics.contains_key(m)
        {
            r.notes.push(format!("the program never reported `{m}`"));
        }
        r
    }

    /// Status, error text and exit code of an ending.
    fn ending(
        &self,
        ended: Ended,
        stderr_tail: &str,
        non_finite: bool,
    ) -> (Status, Option<String>, Option<i32>) {
        let tail = if stderr_tail.is_empty() {
            String::new()
        } else {
            format!("; last lines of stderr:\n{stderr_tail}")
        };
        match ended {
            Ended::Exited(0) if non_finite => (Status::Diverged, None, Some(0)),
            Ended::Exited(0) => (Status::Ok, None, Some(0)),
            Ended::Exited(code) => (
                Status::Failed,
                Some(format!("exit code {code}{tail}")),
                Some(code),
            ),
            Ended::Signalled(sig) => (
                Status::Failed,
                Some(format!("killed by {}{tail}", child::signal_name(sig))),
                None,
            ),
            Ended::TimedOut => (
                Status::Failed,
                Some(format!(
                    "timeout: still running after {}, its process group was killed{tail}",
                    crate::format::duration(self.program.timeout.unwrap_or_default())
                )),
                None,
            ),
            Ended::Stopped => (Status::Interrupted, None, None),
        }
    }
}
