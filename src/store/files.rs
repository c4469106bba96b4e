//! The one way hypersweep writes a file: to a temporary name in the same directory, fsynced,
//! then renamed into place, so a reader (or a rerun after kill -9) sees the old content or the
//! whole new one, never half a file. Also the CSV text helpers every table shares.

use crate::error::{IoContext, Result};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The suffix of temporary files, followed by the writer's pid and host (`.tmp-123@node7`):
/// processes on several machines may share a results directory, and a pid means something
/// only on its own machine.
const TMP_MARK: &str = ".tmp-";

/// This machine's name, read once.
fn this_host() -> &'static str {
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST.get_or_init(super::lock::host_name)
}

fn tmp_path(path: &Path) -> PathBuf {
    // Threads of one process may write the same file at once: each write has its own name.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    path.with_file_name(format!(
        "{name}.{n}{TMP_MARK}{}@{}",
        std::process::id(),
        this_host()
    ))
}

/// `bytes` written and fsynced to a temporary name beside `path`, which is returned; nothing is
/// left behind when that fails.
fn write_tmp(path: &Path, bytes: &[u8]) -> Result<PathBuf> {
    let tmp = tmp_path(path);
    let written = (|| {
        let mut f = fs::File::create(&tmp).at("create", &tmp)?;
        f.write_all(bytes).at("write", &tmp)?;
        f.sync_all().at("sync", &tmp)
    })();
    match written {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Writes a file so that readers see either the old content or the whole new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = write_tmp(path, bytes)?;
    fs::rename(&tmp, path).at("rename into place", path)?;
    // The rename itself is durable only once the directory is synced.
    if let Some(parent) = path.parent()
        && let Ok(d) = fs::File::open(parent)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Creates `path` with `bytes` unless it exists, atomically, whole: the content is written to a
/// temporary file first and hard-linked into place (a link, like `O_EXCL`, fails if the name
/// exists, on NFS too), so no reader ever sees the file empty or half written, and a write that
/// fails (disk full) leaves nothing behind. Returns false when `path` already existed. On a file
/// system without hard links the file is created with `O_EXCL` and then written, and removed
/// again if the write fails.
pub fn create_whole(path: &Path, bytes: &[u8]) -> Result<bool> {
    let tmp = write_tmp(path, bytes)?;
    let linked = match fs::hard_link(&tmp, path) {
        Ok(()) => Ok(Some(true)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(Some(false)),
        Err(e)
            if e.raw_os_error() == Some(libc::EPERM)
                || e.kind() == std::io::ErrorKind::Unsupported =>
        {
            Ok(None)
        }
        Err(e) => Err(e).at("create", path),
    };
    let _ = fs::remove_file(&tmp);
    match linked? {
        Some(created) => Ok(created),
        None => create_new_unlinked(path, bytes),
    }
}

/// `create_whole` where hard links are refused: create-exclusive, then write.
fn create_new_unlinked(path: &Path, bytes: &[u8]) -> Result<bool> {
    let mut f = match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(e).at("create", path),
    };
    if let Err(e) = f.write_all(bytes).and_then(|()| f.sync_all()) {
        let _ = fs::remove_file(path);
        return Err(e).at("write", path);
    }
    Ok(true)
}

/// Removes the temporary files that killed writers left under `dir` (it and its
/// subdirectories, `trials/<id>/` included): a `*.tmp-<pid>` whose process is gone. A live
/// writer's files are left alone.
pub fn remove_stale_tmp(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.filter_map(std::result::Result::ok) {
        let path = e.path();
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_stale_tmp(&path);
            continue;
        }
        let name = e.file_name().to_string_lossy().to_string();
        // `<pid>@<host>`, or a bare pid from an older hypersweep (this machine's).
        let writer = name.rsplit_once(TMP_MARK).and_then(|(_, w)| {
            let (pid, host) = w.split_once('@').unwrap_or((w, this_host()));
            Some((pid.parse::<u32>().ok()?, host == this_host()))
        });
        if writer.is_some_and(|(pid, here)| here && !super::lock::process_alive(pid)) {
            let _ = fs::remove_file(path);
        }
    }
}

/// Moves `path` (a file or a directory) aside to `<path>.old-<unix seconds>`, never over
/// anything: a second move within the same second gets `.old-<seconds>-2`, and so on. Returns
/// where it went.
pub fn move_aside(path: &Path) -> Result<PathBuf> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let target = (1..)
        .map(|n| match n {
            1 => path.with_file_name(format!("{name}.old-{secs}")),
            n => path.with_file_name(format!("{name}.old-{secs}-{n}")),
        })
        .find(|t| fs::symlink_metadata(t).is_err())
        .expect("a free name");
    fs::rename(path, &target).at("move aside", path)?;
    Ok(target)
}

/// Creates a directory and its parents.
pub fn create_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).at("create the directory", dir)
}

/// Quotes a CSV field when it holds a comma, quote or newline.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn temporaries_of_dead_writers_are_removed_and_live_ones_kept() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("trials").join("abc");
        fs::create_dir_all(&t).unwrap();
        fs::write(t.join("result.json.tmp-999999999"), "half").unwrap();
        let dead_here = format!("plan.csv.tmp-999999999@{}", this_host());
        fs::write(d.path().join(&dead_here), "half").unwrap();
        let mine = format!("result.json.tmp-{}@{}", std::process::id(), this_host());
        fs::write(t.join(&mine), "writing").unwrap();
        // Another machine's writer: its pid means nothing here, so it is left alone.
        let elsewhere = "epochs.csv.tmp-999999999@some-other-node".to_string();
        fs::write(t.join(&elsewhere), "writing").unwrap();
        fs::write(t.join("result.json"), "{}").unwrap();
        remove_stale_tmp(d.path());
        let mut left: Vec<String> = fs::read_dir(&t)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        left.sort();
        assert_eq!(left, vec![elsewhere, "result.json".to_string(), mine]);
        assert!(!d.path().join(dead_here).exists());
    }

    #[test]
    fn a_whole_file_is_created_once_and_leaves_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.json");
        assert!(create_whole(&p, b"first").unwrap());
        assert!(!create_whole(&p, b"second").unwrap(), "it exists");
        assert_eq!(fs::read(&p).unwrap(), b"first");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(csv_field("a"), "a");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
