//! The user's program as a trial: the second implementation of `Engine` beside the built-in
//! burn one. It fills the command's placeholders, runs it in the sweep file's directory with
//! the trial's environment, follows the metrics it appends, and turns its exit into a status.

pub mod child;
pub mod command;
pub mod leftovers;
pub mod metrics;

use crate::engine::{Device, Engine, Progress, TrialContext};
use crate::error::{Error, IoContext, Result};
use crate::spec::Program;
use crate::store::{Store, create_dir, write_atomic};
use crate::trial::{MetricRow, Status, Trial, TrialKind, TrialResult};
use child::{Ended, Limits};
use metrics::Curve;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

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
        let argv = command::fill(&p.command, &p.params, trial.id.as_str(), &dir_text)
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
            .env("HYPERSWEEP_DEVICE", program_device(ctx.device));
        if let Some(visible) = visible_device(ctx.device) {
            cmd.env("CUDA_VISIBLE_DEVICES", visible);
        }
        for var in THREAD_VARS {
            cmd.env(var, ctx.threads.now().to_string());
        }
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
            "program.command: `{first}` is not found (searched {}); install it, or write its full path",
            if first.contains('/') {
                format!("from {}", dir.display())
            } else {
                "the PATH".to_string()
            }
        )));
    }
    Ok(())
}

/// Whether `name` can be run from `dir`: a path (relative to `dir`) to a file, or a file in one
/// of the PATH's directories.
fn command_exists(name: &str, dir: &Path, path: Option<&String>) -> bool {
    if name.contains('/') {
        return dir.join(name).is_file();
    }
    let path = path
        .cloned()
        .or_else(|| std::env::var("PATH").ok())
        .unwrap_or_default();
    std::env::split_paths(&path).any(|d| dir.join(d).join(name).is_file())
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
        let dir = self.store.trial_dir(&trial.id);
        create_dir(&dir)?;
        // A rerun starts from an empty metrics file, not the last attempt's rows.
        let metrics_path = dir.join(METRICS_FILE);
        std::fs::File::create(&metrics_path).at("create", &metrics_path)?;
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
        let outcome = child::run(
            cmd,
            &dir,
            &marker,
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
        Ok(self.result(outcome, tail, t0.elapsed().as_secs_f64()))
    }
}

impl ProgramRunner {
    /// The trial's result from how the program ended and the metrics it reported.
    fn result(&self, outcome: child::Outcome, tail: Tail, seconds: f64) -> TrialResult {
        let (from_file, mut notes) = tail.into_curve();
        let ended = outcome.ended;
        let tail_text = outcome.stderr_tail.join("\n");
        let curve = if from_file.is_empty() {
            outcome.stdout_rows
        } else {
            if !outcome.stdout_rows.is_empty() {
                notes.push(format!(
                    "metrics read from {METRICS_FILE}; the name=value lines of its output were ignored"
                ));
            }
            from_file
        };
        let last = curve.last().clone();
        let metric = self.program.metric.as_deref();
        let non_finite = metric.is_some_and(|m| curve.had_non_finite(m));
        if let Some(m) = metric
            && !last.contains_key(m)
        {
            notes.push(format!("the program never reported `{m}`"));
        }
        let (rows, thinned) = curve.into_rows();
        notes.extend(thinned);
        let (status, error, exit_code) = self.ending(ended, &tail_text, non_finite);
        TrialResult {
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
        }
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

/// Follows a metrics file as the program appends to it: complete lines only, rows capped and
/// thinned by `Curve`. A program may also rewrite the file (`open(path, "w")` each epoch): a
/// file shorter than what was read, or whose first bytes changed, is a new version, read from
/// its start. A version that begins with the previous version's first row repeats its history
/// and replaces it; any other version's rows come after the earlier ones.
struct Tail {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
    /// The first bytes of the current version (up to `HEAD`), to tell a rewrite from growth.
    head: Vec<u8>,
    /// Rows of the versions before the current one, and of the current one.
    earlier: Curve,
    current: Curve,
    /// The current version's first row.
    first: Option<MetricRow>,
    /// The previous version, until the current one's first row says whether it repeats it.
    replaced: Option<(Curve, Option<MetricRow>)>,
    /// Rows of a repeating version that were already reported as progress.
    replayed: usize,
    rewrites: usize,
    skipped: usize,
}

/// Bytes at the start of a metrics file compared at every read to notice a rewrite.
const HEAD: usize = 4096;
/// Bytes read from a metrics file at once.
const CHUNK: u64 = 16 << 20;

impl Tail {
    fn new(path: PathBuf) -> Tail {
        Tail {
            path,
            offset: 0,
            partial: vec![],
            head: vec![],
            earlier: Curve::default(),
            current: Curve::default(),
            first: None,
            replaced: None,
            replayed: 0,
            rewrites: 0,
            skipped: 0,
        }
    }

    /// Rows reported since the last call (at most one chunk's worth).
    fn read_new(&mut self) -> Vec<MetricRow> {
        self.read_chunk().unwrap_or_default()
    }

    /// The next chunk's rows; `None` when there was nothing new to read.
    fn read_chunk(&mut self) -> Option<Vec<MetricRow>> {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = std::fs::File::open(&self.path).ok()?;
        let len = f.metadata().ok()?.len();
        if len < self.offset || !self.same_head(&mut f) {
            self.new_version();
        }
        if len <= self.offset {
            return None;
        }
        let mut bytes = vec![];
        f.seek(SeekFrom::Start(self.offset)).ok()?;
        f.take(CHUNK).read_to_end(&mut bytes).ok()?;
        if bytes.is_empty() {
            return None;
        }
        if self.offset < HEAD as u64 {
            let room = HEAD - self.head.len();
            self.head.extend_from_slice(&bytes[..room.min(bytes.len())]);
        }
        self.offset += bytes.len() as u64;
        self.partial.extend_from_slice(&bytes);
        if self.partial.len() > MAX_LINE && !self.partial.contains(&b'\n') {
            // One line this long is not a metrics row; drop it rather than hold it.
            self.partial.clear();
            self.skipped += 1;
        }
        let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return Some(vec![]);
        };
        let complete: Vec<u8> = self.partial.drain(..=end).collect();
        Some(self.take(&complete))
    }

    /// True when the file still starts with the bytes read from its start.
    fn same_head(&self, f: &mut std::fs::File) -> bool {
        use std::os::unix::fs::FileExt;
        if self.head.is_empty() {
            return true;
        }
        let mut now = vec![0u8; self.head.len()];
        f.read_exact_at(&mut now, 0).is_ok() && now == self.head
    }

    /// The file was rewritten: what was read so far is the previous version.
    fn new_version(&mut self) {
        self.rewrites += 1;
        self.offset = 0;
        self.partial.clear();
        self.head.clear();
        let previous = (std::mem::take(&mut self.current), self.first.take());
        // A version that never got a first row is kept as it was.
        if let Some((older, _)) = self.replaced.replace(previous) {
            self.earlier.append(older);
        }
    }

    /// After the program ended: the file to its end, a last line without its newline included.
    fn finish(&mut self) {
        while self.read_chunk().is_some() {}
        let rest = std::mem::take(&mut self.partial);
        self.take(&rest);
        if let Some((previous, _)) = self.replaced.take() {
            // The last version stayed empty: the earlier rows are all there is.
            self.earlier.append(previous);
        }
    }

    /// Adds complete lines to the current version; gives the rows not reported before.
    fn take(&mut self, bytes: &[u8]) -> Vec<MetricRow> {
        let (mut new, skipped) = metrics::file_rows(&String::from_utf8_lossy(bytes));
        self.skipped += skipped;
        if self.first.is_none()
            && let Some(first) = new.first()
        {
            self.first = Some(first.clone());
            if let Some((previous, previous_first)) = self.replaced.take() {
                if previous_first.as_ref() == Some(first) {
                    self.replayed = previous.len();
                } else {
                    self.earlier.append(previous);
                }
            }
        }
        for row in &new {
            self.current.push(row.clone());
        }
        let replayed = self.replayed.min(new.len());
        self.replayed -= replayed;
        new.drain(..replayed);
        new
    }

    /// Every row read, in order, and the notes on how the file was read.
    fn into_curve(self) -> (Curve, Vec<String>) {
        let mut notes = vec![];
        if self.rewrites > 0 {
            notes.push(format!(
                "{METRICS_FILE} was rewritten {} time(s) while the program ran (opened for \
                 writing, not appending): every version was read; one that began with the \
                 previous version's first row replaced it, others were added after it; a \
                 version replaced within 50 ms of being written may be missed: append instead",
                self.rewrites
            ));
        }
        if self.skipped > 0 {
            notes.push(format!(
                "{} line(s) of {METRICS_FILE} were not JSON objects and were skipped",
                self.skipped
            ));
        }
        let mut curve = self.earlier;
        curve.append(self.current);
        (curve, notes)
    }
}

/// Bytes of one metrics line at most.
const MAX_LINE: usize = 1 << 20;

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn row(epoch: u32) -> String {
        format!(
            "{{\"epoch\": {epoch}, \"loss\": {}}}\n",
            1.0 / f64::from(epoch)
        )
    }

    fn epochs(tail: Tail) -> (Vec<f64>, Vec<String>) {
        let (curve, notes) = tail.into_curve();
        let (rows, _) = curve.into_rows();
        (rows.iter().map(|r| r["epoch"]).collect(), notes)
    }

    #[test]
    fn a_file_rewritten_with_its_last_row_only_gives_every_version() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("m.jsonl");
        let mut tail = Tail::new(path.clone());
        let mut reported = vec![];
        // Epoch 10's row is longer than epoch 9's: the file grew, yet it was rewritten.
        for e in [1, 2, 9, 10] {
            std::fs::write(&path, row(e)).unwrap();
            reported.extend(tail.read_new().iter().map(|r| r["epoch"]));
        }
        tail.finish();
        assert_eq!(reported, [1.0, 2.0, 9.0, 10.0]);
        let (epochs, notes) = epochs(tail);
        assert_eq!(epochs, [1.0, 2.0, 9.0, 10.0]);
        assert!(notes[0].contains("rewritten 3 time(s)"), "{notes:?}");
    }

    #[test]
    fn a_file_rewritten_with_its_whole_history_replaces_the_earlier_version() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("m.jsonl");
        let mut tail = Tail::new(path.clone());
        let mut reported = vec![];
        let mut text = String::new();
        for e in 1..=4 {
            text += &row(e);
            // Truncated first, as `open(path, "w")` does, and read while empty once.
            std::fs::write(&path, "").unwrap();
            reported.extend(tail.read_new().iter().map(|r| r["epoch"]));
            std::fs::write(&path, &text).unwrap();
            reported.extend(tail.read_new().iter().map(|r| r["epoch"]));
        }
        tail.finish();
        assert_eq!(reported, [1.0, 2.0, 3.0, 4.0], "each row reported once");
        assert_eq!(epochs(tail).0, [1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn a_burst_larger_than_a_read_is_read_to_its_end_after_the_program_exits() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("m.jsonl");
        let mut tail = Tail::new(path.clone());
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let pad = "x".repeat(200);
        let n = (CHUNK as usize / 200) * 2 + 7;
        for i in 0..n {
            writeln!(f, "{{\"step\": {i}, \"pad\": \"{pad}\"}}").unwrap();
        }
        // The last line has no newline: a program may end without one.
        write!(f, "{{\"step\": {n}}}").unwrap();
        drop(f);
        tail.read_new();
        tail.finish();
        let (curve, notes) = tail.into_curve();
        assert_eq!(curve.len(), n + 1);
        assert_eq!(curve.last()["step"], n as f64);
        assert!(notes.is_empty(), "{notes:?}");
    }
}
