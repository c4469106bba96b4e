//! What a killed hypersweep leaves running: a program's own children (DataLoader workers,
//! torchrun ranks) stay in its process group when hypersweep dies of SIGKILL, which no handler
//! sees; the program itself dies with us (`PR_SET_PDEATHSIG`), its children do not. While a
//! program runs, its trial directory names its group; the next process to train the trial, or
//! to start on the sweep while the trial's claim is stale, kills what is left of that group.

use crate::store::{Claims, Store, boot_id, host_name, process_group};
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::Path;

/// The file in a trial directory naming its running program's process group.
pub const GROUP_FILE: &str = "process-group.json";

/// Which group, where, and how to recognise its members.
#[derive(Serialize, Deserialize)]
struct Group {
    host: String,
    boot: Option<String>,
    pgid: i32,
    /// An entry of the environment every process of the group inherited from hypersweep
    /// (`HYPERSWEEP_TRIAL_DIR=…`): a group id can be reused once its last member is gone, and
    /// a reused one belongs to someone else.
    marker: String,
}

/// Records that the program started as `pgid` with `marker` in its environment.
pub fn record(trial_dir: &Path, pgid: u32, marker: &str) {
    let group = Group {
        host: host_name(),
        boot: boot_id().map(String::from),
        pgid: pgid as i32,
        marker: marker.to_string(),
    };
    if let Ok(text) = serde_json::to_string(&group) {
        // Best effort: without the record a leftover cannot be found, the trial still runs.
        let _ = crate::store::write_atomic(&trial_dir.join(GROUP_FILE), text.as_bytes());
    }
}

/// The program and its group have ended.
pub fn clear(trial_dir: &Path) {
    let _ = fs::remove_file(trial_dir.join(GROUP_FILE));
}

/// Kills what is left of the group a trial directory names, when it is on this machine and
/// still holds a process with the marker; gives the number of such processes found. Call it
/// only when nobody live holds the trial.
pub fn end(trial_dir: &Path) -> usize {
    let Some(group) = fs::read_to_string(trial_dir.join(GROUP_FILE))
        .ok()
        .and_then(|t| serde_json::from_str::<Group>(&t).ok())
    else {
        return 0;
    };
    if group.host != host_name() || group.boot.as_deref() != boot_id() {
        return 0;
    }
    let members = marked_members(group.pgid, &group.marker);
    if members > 0 {
        // SAFETY: kill has no memory effects. The group is ours: a group id is not reused while
        // any member lives, and a member carries our marker.
        unsafe { libc::kill(-group.pgid, libc::SIGKILL) };
        tracing::warn!(
            "killed {members} process(es) left running by a stopped hypersweep in group {} ({})",
            group.pgid,
            trial_dir.display()
        );
    }
    clear(trial_dir);
    members
}

/// Ends what the programs of trials with a stale claim (their holder is gone) left running on
/// this machine: before a process starts on a sweep, since those leftovers hold cores or a GPU
/// that the new trials need, however late in the queue their own trial comes.
pub fn end_stale(store: &Store) {
    let host = host_name();
    for found in Claims::new(store.dir()).all() {
        if let Some(claim) = found.claim.filter(|c| !found.live && c.host == host) {
            end(&store.trial_dir(&claim.id));
        }
    }
}

/// How many processes of group `pgid` carry `marker` in their environment.
fn marked_members(pgid: i32, marker: &str) -> usize {
    let Ok(entries) = fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(std::result::Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| process_group(*pid) == Some(pgid))
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == marker.as_bytes()))
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    fn alive(pid: u32) -> bool {
        fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
    }

    #[test]
    fn only_a_group_whose_members_carry_the_marker_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        let marker = format!("HYPERSWEEP_TRIAL_DIR={}", dir.path().display());
        let spawn = |env: &str| {
            let (k, v) = env.split_once('=').unwrap();
            Command::new("sleep")
                .arg("30")
                .env(k, v)
                .process_group(0)
                .spawn()
                .unwrap()
        };
        // A group without the marker (a reused group id) is left alone.
        let mut stranger = spawn("OTHER=1");
        record(dir.path(), stranger.id(), &marker);
        assert_eq!(end(dir.path()), 0);
        assert!(alive(stranger.id()));
        assert!(!dir.path().join(GROUP_FILE).exists(), "the record is spent");
        stranger.kill().unwrap();
        stranger.wait().unwrap();
        // Ours is killed, whole.
        let mut ours = spawn(&marker);
        record(dir.path(), ours.id(), &marker);
        assert_eq!(end(dir.path()), 1);
        ours.wait().unwrap();
        // Nothing recorded: nothing to do.
        assert_eq!(end(dir.path()), 0);
    }
}
