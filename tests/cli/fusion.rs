//! Fused trials (`--fuse K`, issue #31) through the real binary and the real engine: members are
//! trials like any other (each its own result, trained once), claimed together and released
//! alone, so workers, kills and resumes hold as without fusion.

use super::common::{Sweep, bin, finished_per_trial, results_with_status};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// Tiny MLP trials that fuse: one shape, other learning rates and seeds.
const FUSABLE: &str = "name: fused\ndata: {train_size: 200}\nfixed:\n  model: {kind: mlp, hidden: [16], dropout: 0.1}\n  optimizer: {kind: sgd, momentum: 0.9}\n  batch_size: 20\n  epochs: 2\ngrid:\n  optimizer.learning_rate: [0.1, 0.03, 0.01]\nseeds: [1, 2, 3, 4]\n";

fn spawn(s: &Sweep, cmd: &str, flags: &[&str]) -> Child {
    let target = if cmd == "run" {
        s.file.clone()
    } else {
        s.dir()
    };
    let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("hypersweep"));
    c.args([cmd, target.to_str().unwrap()]);
    if cmd == "run" {
        c.args(["--out", s.out.to_str().unwrap()]);
    }
    c.args(flags)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// `hypersweep run` of the sweep with the real engine and `flags`, to its end.
fn run(s: &Sweep, flags: &[&str]) -> std::process::Output {
    bin()
        .args([
            "run",
            s.file.to_str().unwrap(),
            "--out",
            s.out.to_str().unwrap(),
        ])
        .args(flags)
        .output()
        .unwrap()
}

/// Each trial's stored result.
fn results(s: &Sweep) -> Vec<serde_json::Value> {
    let Ok(dir) = std::fs::read_dir(s.dir().join("trials")) else {
        return vec![];
    };
    dir.flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("result.json")).ok())
        .map(|t| serde_json::from_str(&t).unwrap())
        .collect()
}

#[test]
fn a_fused_run_gives_each_member_its_own_result_and_plan_shows_the_groups() {
    let s = Sweep::new(FUSABLE);
    let plan = bin()
        .args([
            "plan",
            s.file.to_str().unwrap(),
            "--fuse",
            "4",
            "--no-estimate",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(
        text.contains("3 groups, 3 of them fused (sizes 4, 4, 4)"),
        "{text}"
    );
    assert!(text.contains(" g3"), "{text}");
    let out = run(&s, &["--fuse", "4", "--quiet"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rs = results(&s);
    assert_eq!(rs.len(), 12);
    for r in &rs {
        assert_eq!(r["status"], "ok");
        assert_eq!(r["fused"]["size"], 4, "{}", r["name"]);
        let acc = r["test_accuracy"].as_f64().unwrap();
        assert!(acc > 0.15, "{}: {acc}", r["name"]);
    }
    let groups: std::collections::BTreeSet<String> =
        rs.iter().map(|r| r["fused"]["group"].to_string()).collect();
    assert_eq!(groups.len(), 3);
    let csv = std::fs::read_to_string(s.dir().join("summary.csv")).unwrap();
    assert_eq!(csv.lines().count(), 13);
}

#[test]
fn fuse_in_the_sweep_file_is_used_and_a_bad_value_names_the_key_and_line() {
    let s = Sweep::new(&format!("{FUSABLE}fuse: 6\n"));
    let out = run(&s, &["-q"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(results(&s).iter().all(|r| r["fused"]["size"] == 6));
    let bad = Sweep::new(&format!("{FUSABLE}fuse: 0\n"));
    let out = bin()
        .args(["validate", bad.file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("fuse") && err.contains(":11:") && err.contains("auto"),
        "{err}"
    );
}

/// Two runs started together on a fused sweep: each group's members are claimed together by
/// one of them, so 12 trials give 12 results, each trained once, and no claim is left.
#[test]
fn two_runs_share_a_fused_sweep_and_train_each_trial_once() {
    let s = Sweep::new(FUSABLE);
    for round in 0..4 {
        let _ = std::fs::remove_dir_all(&s.out);
        let flags = ["--fuse", "3", "--devices", "cpu:1", "-q", "--no-report"];
        let runs = [spawn(&s, "run", &flags), spawn(&s, "run", &flags)];
        for r in runs {
            let o = r.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(
                matches!(o.status.code(), Some(0 | 4)),
                "round {round}: {err}"
            );
        }
        assert_eq!(results_with_status(&s, "ok"), 12, "round {round}");
        let finished = finished_per_trial(&s);
        assert_eq!(finished.len(), 12, "round {round}: {finished:?}");
        assert!(
            finished.values().all(|&n| n == 1),
            "round {round}: {finished:?}"
        );
        let claims = std::fs::read_dir(s.dir().join("claims")).unwrap().count();
        assert_eq!(claims, 0, "round {round}: every claim released");
    }
}

/// A member that diverges leaves its group at once (its result written while the others
/// train); the run is killed (kill -9) mid-way; the rerun keeps what was finished, the diverged
/// member included, and trains the rest, each once.
#[test]
fn a_killed_fused_run_resumes_without_retraining_finished_members() {
    let s = Sweep::new(
        "name: killed\ndata: {train_size: 2000}\nfixed:\n  model: {kind: mlp, hidden: [256, 256]}\n  optimizer: {kind: sgd}\n  batch_size: 20\n  epochs: 6\ngrid:\n  optimizer.learning_rate: [1.0e30, 0.1, 0.05, 0.01]\nseeds: [1, 2]\n",
    );
    let mut first = spawn(&s, "run", &["--fuse", "4", "--devices", "cpu:1", "-q"]);
    let t0 = Instant::now();
    while results(&s).is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(120), "no member ended");
        assert!(
            first.try_wait().unwrap().is_none(),
            "the run ended before the kill"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let before = results(&s);
    assert!(before.len() < 8, "every trial ended before the kill");
    assert!(
        before.iter().all(|r| r["status"] == "diverged"),
        "only the diverged members had ended: {before:?}"
    );
    let out = run(&s, &["--fuse", "4", "-q"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = results(&s);
    assert_eq!(after.len(), 8);
    for r in &before {
        let now = after.iter().find(|a| a["id"] == r["id"]).unwrap();
        assert_eq!(now, r, "a finished member was trained again");
    }
    assert_eq!(after.iter().filter(|r| r["status"] == "ok").count(), 6);
    let finished = finished_per_trial(&s);
    assert!(finished.values().all(|&n| n == 1), "{finished:?}");
}

/// Hyperband prunes members of a fused group like trials alone: a pruned member ends
/// `pruned` with its note, the others go on to their last epoch.
#[test]
fn hyperband_prunes_members_of_a_fused_group() {
    let s = Sweep::new(
        "name: prune\ndata: {train_size: 300, split: {train: 0.7, val: 0.1, test: 0.2}}\nfixed:\n  model: {kind: mlp, hidden: [16]}\n  optimizer: {kind: sgd}\n  batch_size: 30\n  epochs: 9\ngrid:\n  optimizer.learning_rate: [0.2, 0.00001, 0.000001, 0.0000001]\nearly_terminate: {type: hyperband, metric: val_accuracy, min_epochs: 1, eta: 3}\n",
    );
    let out = run(&s, &["--fuse", "4", "--devices", "cpu:1", "-q"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rs = results(&s);
    assert_eq!(rs.len(), 4);
    let pruned: Vec<_> = rs.iter().filter(|r| r["status"] == "pruned").collect();
    assert!(!pruned.is_empty(), "{rs:?}");
    for r in &pruned {
        assert!(r["epochs_run"].as_u64().unwrap() < 9, "{r}");
        assert_eq!(r["fused"]["size"], 4);
    }
    let best = rs
        .iter()
        .find(|r| r["name"].as_str().unwrap().contains("0.2"))
        .unwrap();
    assert_eq!(best["status"], "ok", "{best}");
    assert_eq!(best["epochs_run"], 9);
}
