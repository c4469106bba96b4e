//! The lock a process holds while it records the plan of a results directory (or moves it aside
//! with `--fresh`), and who a process is (host, boot, pid and start time), which claims and temporaries check.
//!
//! The lock is an advisory `flock` on `<dir>/.lock`, held for moments, not for the run (trials
//! are shared through claims, `claims.rs`). The kernel drops it when the process exits, however
//! it exits (kill -9 included), so there is no stale lock to take over.

use crate::error::{IoContext, Result};
use std::fs;
use std::os::fd::AsRawFd;
use std::path::Path;

/// True while a process with this id exists on this machine.
pub fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// When process `pid` started, in clock ticks after boot (`/proc/<pid>/stat`, field 22): with
/// the boot's id it tells a process from a later one given the same id. A container's pid 1
/// after a restart, or a reused pid, is alive but is not the process that wrote a claim.
pub fn process_start(pid: u32) -> Option<u64> {
    stat_field(pid, 22)?.parse().ok()
}

/// The process group of `pid` (`/proc/<pid>/stat`, field 5).
pub fn process_group(pid: u32) -> Option<i32> {
    stat_field(pid, 5)?.parse().ok()
}

/// Field `n` (1-based, as proc(5) numbers them, `n` > 2) of `/proc/<pid>/stat`.
fn stat_field(pid: u32, n: usize) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces or parentheses itself.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(n - 3).map(String::from)
}

/// This machine's name (from the kernel; `localhost` if unknown).
pub fn host_name() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The id of this boot of the machine (`/proc/sys/kernel/random/boot_id`), read once.
pub fn boot_id() -> Option<&'static str> {
    static BOOT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    BOOT.get_or_init(|| {
        fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    })
    .as_deref()
}

/// Holds the lock of a results directory until dropped.
pub struct Lock {
    file: fs::File,
}

impl Lock {
    /// Takes the lock of `dir` (creating the directory), waiting while another process holds
    /// it: for the short moments a process records the plan.
    pub fn wait(dir: &Path) -> Result<Lock> {
        fs::create_dir_all(dir).at("create the directory", dir)?;
        let path = dir.join(".lock");
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .at("open the lock", &path)?;
        // SAFETY: flock on a file descriptor we own; no memory is shared with the kernel.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error()).at("lock", &path);
        }
        Ok(Lock { file })
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Closing the file releases the flock; the unlock is explicit for readers of this code.
        // SAFETY: as in `wait`.
        unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_UN) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_start_time_is_its_own_and_stays_the_same() {
        let me = std::process::id();
        let start = process_start(me).expect("this process has a start time");
        assert_eq!(process_start(me), Some(start));
        let child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let theirs = process_start(child.id()).expect("the child's start time");
        assert!(theirs >= start);
        let mut child = child;
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(process_start(child.id()), None, "gone");
        assert!(boot_id().is_some());
    }

    #[test]
    fn a_held_lock_makes_the_next_taker_wait() {
        let d = tempfile::tempdir().unwrap();
        let l = Lock::wait(d.path()).unwrap();
        let path = d.path().to_path_buf();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _second = Lock::wait(&path).unwrap();
            tx.send(()).unwrap();
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(200))
                .is_err()
        );
        drop(l);
        assert!(rx.recv_timeout(std::time::Duration::from_secs(5)).is_ok());
    }
}
