//! A trial's checkpoint on disk: `trials/<id>/checkpoint/` (what a program saves there, and
//! the built-in engine's `trial.ckpt`), and `trials/<id>/attempts`, how many times the trial
//! started since it last finished. A checkpoint belongs to the trial, not to a process: whoever
//! claims the trial next resumes from it.

use super::files::{create_dir, write_atomic};
use crate::error::{Error, IoContext, Result};
use crate::spec::CheckpointPolicy;
use std::fs;
use std::path::{Path, PathBuf};

/// The directory a trial's checkpoint lives in (`HYPERSWEEP_CHECKPOINT_DIR` for programs).
pub const CHECKPOINT_DIR: &str = "checkpoint";
/// The built-in engine's checkpoint file in it.
const ENGINE_FILE: &str = "trial.ckpt";
/// How many times the trial started since it last finished.
const ATTEMPTS: &str = "attempts";
/// The final weights a trial keeps with `checkpoint: {keep_final: true}`.
pub const FINAL_WEIGHTS: &str = "weights.mpk";

/// The first bytes of `trial.ckpt`, then a format version, the payload's length, the payload
/// and its CRC-32: a file from another program, another version or cut short is refused
/// before anything reads the payload.
const MAGIC: &[u8; 16] = b"hypersweep-ckpt\n";
/// Bumped whenever the engine's saved state changes shape.
pub const FORMAT: u32 = 1;

/// One attempt of one trial: where its checkpoint is, how many attempts came before it, and
/// when it writes one.
#[derive(Debug, Clone)]
pub struct TrialCheckpoint {
    /// `trials/<id>/checkpoint/`, created.
    pub dir: PathBuf,
    /// Attempts of this trial before this one since it last finished (0 the first time).
    pub restarts: u32,
    /// When the built-in engine writes one.
    pub policy: CheckpointPolicy,
}

impl TrialCheckpoint {
    /// Starts an attempt of the trial whose directory is `trial_dir`: counts it in `attempts`
    /// and creates the checkpoint directory. The caller holds the trial's claim, so no other
    /// process counts at the same time.
    pub fn start(trial_dir: &Path, policy: CheckpointPolicy) -> Result<TrialCheckpoint> {
        let dir = trial_dir.join(CHECKPOINT_DIR);
        create_dir(&dir)?;
        let path = trial_dir.join(ATTEMPTS);
        let restarts = fs::read_to_string(&path)
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
            .unwrap_or(0);
        write_atomic(&path, format!("{}\n", restarts + 1).as_bytes())?;
        Ok(TrialCheckpoint {
            dir,
            restarts,
            policy,
        })
    }

    /// The built-in engine's saved state, if a previous attempt left one. A file that cannot be
    /// used (damaged, from another version) is an error saying why; the trial then starts over.
    pub fn load(&self) -> Result<Option<Vec<u8>>> {
        let path = self.dir.join(ENGINE_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).at("read", &path),
        };
        open_sealed(&bytes)
            .map(Some)
            .map_err(|why| Error::Input(format!("{}: {why}", path.display())))
    }

    /// Saves the engine's state atomically: the previous checkpoint stays whole until the new
    /// one is complete.
    pub fn save(&self, payload: &[u8]) -> Result<()> {
        write_atomic(&self.dir.join(ENGINE_FILE), &seal(payload))
    }

    /// Where the final weights go when the policy keeps them.
    pub fn final_weights(&self) -> Option<PathBuf> {
        let keep = self.policy.enabled && self.policy.keep_final;
        keep.then(|| self.dir.with_file_name(FINAL_WEIGHTS))
    }
}

/// After a trial's result is written with a final status: its engine checkpoint and attempt
/// count go (a program's own files in `checkpoint/` stay: they are the user's), so that a
/// rerun of it (`--rerun-failed`) starts over.
pub fn finish(trial_dir: &Path) {
    let dir = trial_dir.join(CHECKPOINT_DIR);
    let _ = fs::remove_file(dir.join(ENGINE_FILE));
    let _ = fs::remove_dir(&dir);
    let _ = fs::remove_file(trial_dir.join(ATTEMPTS));
}

/// The payload behind its magic, format, length, and followed by its CRC-32.
fn seal(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 32);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&crc(payload).to_le_bytes());
    out
}

/// The payload of a sealed file, or why it cannot be trusted.
fn open_sealed(bytes: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let head = MAGIC.len() + 12;
    if bytes.len() < head + 4 || &bytes[..MAGIC.len()] != MAGIC {
        return Err("not a hypersweep checkpoint".into());
    }
    let word = |at: usize, n: usize| {
        let mut b = [0u8; 8];
        b[..n].copy_from_slice(&bytes[at..at + n]);
        u64::from_le_bytes(b)
    };
    let format = word(MAGIC.len(), 4);
    if format != u64::from(FORMAT) {
        return Err(format!(
            "written in checkpoint format {format} by another hypersweep (this one reads {FORMAT})"
        ));
    }
    let len = word(MAGIC.len() + 4, 8) as usize;
    if bytes.len() != head + len + 4 {
        return Err("cut short".into());
    }
    let payload = &bytes[head..head + len];
    if word(head + len, 4) != u64::from(crc(payload)) {
        return Err("damaged (its checksum does not match)".into());
    }
    Ok(payload.to_vec())
}

fn crc(bytes: &[u8]) -> u32 {
    let mut c = flate2::Crc::new();
    c.update(bytes);
    c.sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_count_and_a_damaged_file_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let policy = CheckpointPolicy::default();
        let first = TrialCheckpoint::start(d.path(), policy).unwrap();
        assert_eq!(first.restarts, 0);
        assert_eq!(first.load().unwrap(), None);
        first.save(b"state one").unwrap();
        let second = TrialCheckpoint::start(d.path(), policy).unwrap();
        assert_eq!(second.restarts, 1);
        assert_eq!(second.load().unwrap().unwrap(), b"state one");
        let path = second.dir.join(ENGINE_FILE);
        let mut bytes = fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 6] ^= 1;
        fs::write(&path, &bytes).unwrap();
        let e = second.load().unwrap_err().to_string();
        assert!(e.contains("trial.ckpt") && e.contains("checksum"), "{e}");
        fs::write(&path, &bytes[..n - 3]).unwrap();
        assert!(second.load().unwrap_err().to_string().contains("cut short"));
        finish(d.path());
        assert!(!second.dir.exists());
        assert_eq!(
            TrialCheckpoint::start(d.path(), policy).unwrap().restarts,
            0
        );
    }
}
