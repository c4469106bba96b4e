//! One child process in its own process group: its output streamed to files (never held in
//! memory), a timeout, a stop request, and a group kill (SIGTERM, a grace period, SIGKILL) so
//! that nothing it started outlives the trial.

use super::leftovers;
use super::metrics::{Curve, StdoutRows};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How a child's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// It exited with this code.
    Exited(i32),
    /// A signal killed it (not one we sent).
    Signalled(i32),
    /// It ran past the timeout and was killed.
    TimedOut,
    /// A stop was requested and it was killed.
    Stopped,
}

/// What a finished child left: how it ended, the last lines of its stderr, and the metric rows
/// printed on its stdout.
pub struct Outcome {
    /// How it ended.
    pub ended: Ended,
    /// Up to `TAIL_LINES` last lines of standard error.
    pub stderr_tail: Vec<String>,
    /// Rows from standard output's `name=value` lines and from the patterns (both streams).
    pub stdout_rows: Curve,
    /// A note for each pattern that never matched.
    pub pattern_notes: Vec<String>,
}

/// Lines of stderr kept for the error message.
const TAIL_LINES: usize = 20;
/// Characters of one line looked at (for metrics and the stderr tail); the files keep it all
/// (up to `LOG_CAP`).
const LINE_CAP: usize = 4096;
/// The most bytes of a program's stdout or stderr kept in its log file: 64 MiB.
const LOG_CAP: u64 = 64 << 20;
/// How often the child is polled for exit, timeout and stop, at most; polls start at 1 ms and
/// double, so a program that ends at once costs no more than a few milliseconds of waiting.
const POLL: Duration = Duration::from_millis(50);

/// What the supervisor watches while the child runs.
pub struct Limits<'a> {
    /// Kill after this long.
    pub timeout: Option<Duration>,
    /// Between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// True once the trial must stop.
    pub stop: &'a dyn Fn() -> bool,
    /// True once it must stop without waiting out `grace`.
    pub stop_now: &'a dyn Fn() -> bool,
    /// Called at every poll (progress).
    pub tick: &'a mut dyn FnMut(),
}

/// Runs `cmd` in a new process group with stdout and stderr streamed to `stdout.log` and
/// `stderr.log` in `dir`, until it exits, times out or is stopped. While it runs, `dir` names
/// its group, whose members carry `marker` in their environment (`leftovers`). Fails only when
/// it cannot start or its log files cannot be created.
pub fn run(
    mut cmd: Command,
    dir: &Path,
    marker: &str,
    patterns: super::patterns::Patterns,
    mut limits: Limits<'_>,
) -> io::Result<Outcome> {
    let out_file = File::create(dir.join("stdout.log"))?;
    let err_file = File::create(dir.join("stderr.log"))?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            // The child dies with us even on SIGKILL, which no handler of ours can see.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    leftovers::record(dir, child.id(), marker);
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let tx_out = tx.clone();
    // Both streams feed one set of rows: the patterns apply to stderr too, in arrival order.
    let shared = Arc::new(Mutex::new(StdoutRows::with_patterns(patterns)));
    let (rows, err_rows) = (shared.clone(), shared.clone());
    std::thread::spawn(move || {
        stream(stdout, out_file, LOG_CAP, |l| {
            rows.lock().expect("rows").line(l);
        });
        let _ = tx_out.send(Stream::Out);
    });
    std::thread::spawn(move || {
        let mut tail = VecDeque::new();
        stream(stderr, err_file, LOG_CAP, |l| {
            err_rows.lock().expect("rows").error_line(l);
            if l.trim().is_empty() {
                return;
            }
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(l.chars().take(500).collect::<String>());
        });
        let _ = tx.send(Stream::Err(tail.into()));
    });
    let ended = supervise(&mut child, &mut limits)?;
    // Whatever the program left running in its group goes with it.
    kill_group(&child, libc::SIGKILL);
    leftovers::clear(dir);
    let mut stderr_tail = vec![];
    // A grandchild that left the group may hold the pipes open: do not wait for it forever.
    for _ in 0..2 {
        match rx.recv_timeout(Duration::from_secs(2)) {
            Ok(Stream::Out) => {}
            Ok(Stream::Err(tail)) => stderr_tail = tail,
            Err(_) => break,
        }
    }
    let rows = std::mem::take(&mut *shared.lock().expect("rows"));
    let pattern_notes = rows.patterns().unmatched_notes();
    let stdout_rows = rows.finish();
    Ok(Outcome {
        ended,
        stderr_tail,
        stdout_rows,
        pattern_notes,
    })
}

enum Stream {
    Out,
    Err(Vec<String>),
}

/// Copies a pipe to a file chunk by chunk, handing each complete line (cut at `LINE_CAP`) to
/// `on_line`. Memory stays bounded whatever the program prints, and so does the file: past
/// `cap` bytes the output is still read (for metrics, and so the program never blocks) but not
/// kept, and the file ends with a line saying how much was left out.
fn stream(mut pipe: impl Read, file: File, cap: u64, mut on_line: impl FnMut(&str)) {
    let mut file = BufWriter::new(file);
    let mut buf = vec![0u8; 64 * 1024];
    let mut line: Vec<u8> = vec![];
    let mut after_cr = false;
    let (mut kept, mut dropped) = (0u64, 0u64);
    loop {
        let n = match pipe.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let keep = n.min(usize::try_from(cap - kept).unwrap_or(usize::MAX));
        let _ = file.write_all(&buf[..keep]);
        kept += keep as u64;
        dropped += (n - keep) as u64;
        for &b in &buf[..n] {
            // A carriage return ends a line too: progress bars (tqdm) redraw with it; "\r\n"
            // is one end.
            let second_half = b == b'\n' && after_cr;
            after_cr = b == b'\r';
            if second_half {
                continue;
            }
            if b == b'\n' || b == b'\r' {
                on_line(&String::from_utf8_lossy(&line));
                line.clear();
            } else if line.len() < LINE_CAP {
                line.push(b);
            }
        }
    }
    if !line.is_empty() {
        on_line(&String::from_utf8_lossy(&line));
    }
    if dropped > 0 {
        let _ = writeln!(
            file,
            "\n[hypersweep: the output went on for {dropped} more bytes, not kept: the log \
             stops at {cap} bytes]"
        );
    }
    let _ = file.flush();
}

/// Waits for the child, killing its group on timeout or stop.
fn supervise(child: &mut Child, limits: &mut Limits<'_>) -> io::Result<Ended> {
    let start = Instant::now();
    let mut nap = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(match (status.code(), status.signal()) {
                (Some(code), _) => Ended::Exited(code),
                (None, Some(sig)) => Ended::Signalled(sig),
                (None, None) => Ended::Exited(-1),
            });
        }
        if (limits.stop)() {
            terminate(child, limits)?;
            return Ok(Ended::Stopped);
        }
        if limits.timeout.is_some_and(|t| start.elapsed() >= t) {
            terminate(child, limits)?;
            return Ok(Ended::TimedOut);
        }
        (limits.tick)();
        std::thread::sleep(nap);
        nap = (nap * 2).min(POLL);
    }
}

/// SIGTERM to the whole group, then SIGKILL once `grace` has passed (or at once when told to
/// stop now); reaps the child.
fn terminate(child: &mut Child, limits: &Limits<'_>) -> io::Result<()> {
    kill_group(child, libc::SIGTERM);
    let start = Instant::now();
    while start.elapsed() < limits.grace && !(limits.stop_now)() {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        std::thread::sleep(POLL);
    }
    kill_group(child, libc::SIGKILL);
    child.wait().map(|_| ())
}

fn kill_group(child: &Child, signal: i32) {
    let Ok(pgid) = i32::try_from(child.id()) else {
        return;
    };
    // SAFETY: kill has no memory effects; a group that is gone gives ESRCH, which is fine.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

/// A signal's usual name (`SIGKILL`), or its number.
pub fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGXCPU => "SIGXCPU",
        _ => return format!("signal {sig}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Past the cap the log keeps nothing more but says how much it left out, and every line
    /// still reaches the metrics reader.
    #[test]
    fn a_log_stops_at_its_cap_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stdout.log");
        let output: String = (0..1000).map(|i| format!("step={i}\n")).collect();
        let mut lines = 0;
        stream(output.as_bytes(), File::create(&path).unwrap(), 100, |_| {
            lines += 1;
        });
        assert_eq!(lines, 1000);
        let log = std::fs::read_to_string(&path).unwrap();
        assert!(log.starts_with(&output[..100]), "{log}");
        let more = output.len() - 100;
        assert!(
            log.ends_with(&format!(
                "[hypersweep: the output went on for {more} more bytes, not kept: the log stops at 100 bytes]\n"
            )),
            "{log}"
        );
        // Under the cap, the log is the output.
        stream(
            output.as_bytes(),
            File::create(&path).unwrap(),
            1 << 20,
            |_| {},
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), output);
    }
}
