//! The lock that keeps two runs off one results directory, and the one liveness check of a
//! process id that the lock, the running markers and `status` share.
//!
//! The lock is an advisory `flock` on `<dir>/.lock`, held for the life of the run. The kernel
//! drops it when the process exits, however it exits (kill -9 included), so there is no stale
//! lock to take over and no race between two processes taking one over at once. The file
//! stays; it records the pid of the last holder for messages.

use crate::error::{Error, IoContext, Result};
use std::fs;
use std::io::{Seek, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

/// True while a process with this id exists on this machine.
pub fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The pid recorded in the first line of a lock or marker file.
pub fn recorded_pid(path: &Path) -> Option<u32> {
    let text = fs::read_to_string(path).ok()?;
    text.lines().next()?.trim().parse().ok()
}

/// Holds the run lock of a results directory until dropped.
pub struct Lock {
    file: fs::File,
}

/// Tries to take an exclusive flock without waiting; false when another holder has it.
fn try_flock(file: &fs::File) -> std::io::Result<bool> {
    // SAFETY: flock on a file descriptor we own; no memory is shared with the kernel.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

fn open_lock_file(path: &Path) -> Result<fs::File> {
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .at("open the lock", path)
}

impl Lock {
    /// Takes the lock of `dir` (creating the directory), or says which live process holds it.
    pub fn acquire(dir: &Path) -> Result<Lock> {
        fs::create_dir_all(dir).at("create the directory", dir)?;
        let path = dir.join(".lock");
        let mut file = open_lock_file(&path)?;
        if !try_flock(&file).at("lock", &path)? {
            return Err(Error::Locked {
                dir: dir.to_path_buf(),
                pid: recorded_pid(&path).unwrap_or(0),
            });
        }
        let me = format!(
            "{}\n{}\n",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        );
        file.set_len(0).at("write", &path)?;
        file.rewind().at("write", &path)?;
        file.write_all(me.as_bytes()).at("write", &path)?;
        Ok(Lock { file })
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Closing the file releases the flock; the unlock is explicit for readers of this code.
        // SAFETY: as in try_flock.
        unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// Who holds the lock of `dir`: the recorded pid and whether a live process holds it now.
pub fn holder(dir: &Path) -> Option<(u32, bool)> {
    let path = dir.join(".lock");
    let pid = recorded_pid(&path)?;
    let file = fs::File::open(&path).ok()?;
    let held = match try_flock(&file) {
        Ok(true) => {
            // SAFETY: as in try_flock.
            unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
            false
        }
        Ok(false) => true,
        Err(_) => process_alive(pid),
    };
    Some((pid, held))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_excludes_and_a_released_one_is_free() {
        let d = tempfile::tempdir().unwrap();
        let l = Lock::acquire(d.path()).unwrap();
        assert_eq!(holder(d.path()), Some((std::process::id(), true)));
        let e = Lock::acquire(d.path()).err().unwrap();
        assert!(
            matches!(e, Error::Locked { pid, .. } if pid == std::process::id()),
            "{e}"
        );
        drop(l);
        assert_eq!(holder(d.path()), Some((std::process::id(), false)));
        // A file left by a dead process is no lock at all.
        fs::write(d.path().join(".lock"), "999999999\n0\n").unwrap();
        assert!(Lock::acquire(d.path()).is_ok());
    }
}
