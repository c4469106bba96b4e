//! The lock that keeps two runs off one results directory, and the one liveness check of a
//! process id that the lock, the running markers and `status` share.

use crate::error::{Error, IoContext, Result};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// True while a process with this id exists on this machine.
pub fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The pid recorded in the first line of a lock or marker file.
pub fn recorded_pid(path: &Path) -> Option<u32> {
    let text = fs::read_to_string(path).ok()?;
    text.lines().next()?.trim().parse().ok()
}

/// Holds `<dir>/.lock` while a run uses the directory; a lock left by a dead process is taken over.
pub struct Lock {
    path: PathBuf,
}

impl Lock {
    /// Takes the lock of `dir`, or says which live process holds it.
    pub fn acquire(dir: &Path) -> Result<Lock> {
        fs::create_dir_all(dir).at("create the directory", dir)?;
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
                    f.write_all(me.as_bytes()).at("write", &path)?;
                    return Ok(Lock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    match recorded_pid(&path) {
                        Some(pid) if pid != std::process::id() && process_alive(pid) => {
                            return Err(Error::Locked {
                                dir: dir.to_path_buf(),
                                pid,
                            });
                        }
                        _ => {
                            tracing::warn!(lock = %path.display(), "taking over a stale lock left by a process that is gone");
                            let _ = fs::remove_file(&path);
                        }
                    }
                }
                Err(e) => return Err(Error::io("create", &path, e)),
            }
        }
        Err(Error::Internal(format!(
            "cannot take the lock {}",
            path.display()
        )))
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
    fn lock_excludes_live_and_takes_over_dead() {
        let d = tempfile::tempdir().unwrap();
        drop(Lock::acquire(d.path()).unwrap());
        assert!(!d.path().join(".lock").exists());
        // pid 1 is always alive.
        fs::write(d.path().join(".lock"), "1\n0\n").unwrap();
        let e = Lock::acquire(d.path()).err().unwrap();
        assert!(matches!(e, Error::Locked { pid: 1, .. }), "{e}");
        fs::write(d.path().join(".lock"), "999999999\n0\n").unwrap();
        assert!(Lock::acquire(d.path()).is_ok());
    }
}
