//! The cost estimate: `plan` prints each trial's estimated time and a summary line (from a short
//! probe, or from the finished trials of the results directory), checks the sweep before it
//! probes, and `status` gives an ETA for the trials left. No assertion on a measured time.

use super::common::{Sweep, scripted_bin};

const TWO: &str =
    "name: est\nfixed: {epochs: 2, data: {train_size: 200}}\ngrid:\n  batch_size: [10, 50]\n";
const SIX: &str = "name: six\nfixed: {epochs: 2, data: {train_size: 100}}\ngrid:\n  optimizer.learning_rate: [0.1, 0.01, 0.001]\n  batch_size: [8, 16]\n";

fn stdout(c: &mut assert_cmd::Command) -> String {
    let out = c.assert().success();
    String::from_utf8_lossy(&out.get_output().stdout).to_string()
}

/// The binary with the real engine, so that `plan` probes.
fn real_plan(s: &Sweep, extra: &[&str]) -> assert_cmd::Command {
    let mut c = super::common::bin();
    c.args([
        "plan",
        s.file.to_str().unwrap(),
        "--out",
        s.out.to_str().unwrap(),
    ]);
    c.args(extra);
    c
}

#[test]
fn plan_prints_an_estimate_from_a_probe_on_this_machine() {
    let s = Sweep::new(TWO);
    let text = stdout(&mut real_plan(
        &s,
        &["--devices", "cpu:2", "--threads", "1"],
    ));
    let header = text.lines().next().unwrap();
    assert!(header.contains("estimate"), "{text}");
    assert!(text.contains("2 trials\n"), "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("estimate: 2 trials"))
        .unwrap_or_else(|| panic!("no estimate line: {text}"));
    for part in [
        "FLOP",
        "on cpu (2 slots × 1 thread)",
        "the longest trial ~",
        "probe of 2 shapes on this machine",
        "linear",
        "GFLOP/s per trial",
    ] {
        assert!(line.contains(part), "`{part}` missing: {line}");
    }
    // JSON: each trial's work and time.
    let json = stdout(&mut real_plan(&s, &["--json", "--devices", "cpu:1"]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    for t in v.as_array().unwrap() {
        assert!(t["estimate"]["flop"].as_f64().unwrap() > 0.0, "{t}");
        assert!(t["estimate"]["seconds"].as_f64().unwrap() > 0.0, "{t}");
        assert_eq!(t["estimate"]["done"], false);
    }
}

#[test]
fn plan_without_an_estimate_is_the_bare_table() {
    let s = Sweep::new(TWO);
    let text = stdout(&mut real_plan(&s, &["--no-estimate"]));
    assert!(!text.contains("estimate"), "{text}");
    assert!(text.trim_end().ends_with("2 trials"), "{text}");
}

#[test]
fn plan_checks_devices_and_data_before_probing() {
    let s = Sweep::new(TWO);
    let out = real_plan(&s, &["--devices", "gpu:0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown device"),
        "{out:?}"
    );
    let s = Sweep::new(&TWO.replace("train_size: 200", "train_size: 9000"));
    let out = real_plan(&s, &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

#[test]
fn plan_skips_done_trials_and_takes_speeds_from_finished_ones() {
    let s = Sweep::new(SIX);
    s.cli("run", &["--devices", "cpu:2", "--quiet", "--no-report"])
        .assert()
        .success();
    // The scripted engine never probes: before a run, no speed is known.
    let fresh = Sweep::new(SIX);
    let text = stdout(&mut fresh.cli("plan", &[]));
    assert!(text.contains("time unknown on cpu"), "{text}");
    let text = stdout(&mut s.cli("plan", &[]));
    assert!(
        text.contains("estimate: nothing to train, all 6 trials are done"),
        "{text}"
    );
    let done = text.lines().filter(|l| l.ends_with("  done")).count();
    assert_eq!(done, 6, "{text}");
    // Two results gone: those two are estimated from the four finished ones.
    let trials = s.dir().join("trials");
    for entry in std::fs::read_dir(&trials).unwrap().take(2) {
        std::fs::remove_file(entry.unwrap().path().join("result.json")).unwrap();
    }
    let text = stdout(&mut s.cli("plan", &["--devices", "cpu:1"]));
    let line = text.lines().find(|l| l.starts_with("estimate:")).unwrap();
    assert!(line.contains("2 trials to train (4 done)"), "{line}");
    assert!(line.contains("on cpu (1 slot × "), "{line}");
    assert!(line.contains("4 finished trials in "), "{line}");
}

#[test]
fn status_gives_an_eta_for_a_half_finished_sweep() {
    let s = Sweep::new(SIX);
    s.cli("run", &["--devices", "cpu:2", "--quiet", "--no-report"])
        .assert()
        .success();
    let trials = s.dir().join("trials");
    for entry in std::fs::read_dir(&trials).unwrap().take(3) {
        std::fs::remove_file(entry.unwrap().path().join("result.json")).unwrap();
    }
    let text = stdout(scripted_bin().args(["status", s.dir().to_str().unwrap()]));
    let eta = text
        .lines()
        .find(|l| l.trim_start().starts_with("eta"))
        .unwrap_or_else(|| panic!("no eta: {text}"));
    assert!(eta.contains("3 of 6 left"), "{eta}");
    assert!(eta.contains("nothing running now"), "{eta}");
    assert!(eta.contains("speeds from 3 finished trials"), "{eta}");
    // A finished sweep has no ETA.
    let s = Sweep::new(SIX);
    s.cli("run", &["--quiet", "--no-report"]).assert().success();
    let text = stdout(scripted_bin().args(["status", s.dir().to_str().unwrap()]));
    assert!(!text.contains("eta"), "{text}");
}
