//! Checkpoints and exact resume of built-in trials (issue #32) through the real binary and the
//! real engine: a run killed with kill -9, or stopped by SIGTERM mid-epoch, resumes its trial
//! from the checkpoint in the next run and ends with the numbers of an uninterrupted run.

use super::common::{Sweep, bin};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// One slot, one thread: the same summation order in every run, so resumed numbers are
/// bit-identical.
const FLAGS: &[&str] = &["--devices", "cpu", "--threads", "1", "-q"];

fn spawn(s: &Sweep) -> Child {
    std::process::Command::new(assert_cmd::cargo::cargo_bin("hypersweep"))
        .args([
            "run",
            s.file.to_str().unwrap(),
            "--out",
            s.out.to_str().unwrap(),
        ])
        .args(FLAGS)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn run(s: &Sweep) -> std::process::Output {
    let out = bin()
        .args([
            "run",
            s.file.to_str().unwrap(),
            "--out",
            s.out.to_str().unwrap(),
        ])
        .args(FLAGS)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The directory of the sweep's only trial.
fn trial_dir(s: &Sweep) -> PathBuf {
    let t0 = Instant::now();
    loop {
        if let Some(e) = std::fs::read_dir(s.dir().join("trials"))
            .ok()
            .and_then(|mut d| d.next())
        {
            return e.unwrap().path();
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "no trial started");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn result(dir: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("result.json")).unwrap()).unwrap()
}

/// What a resumed run must reproduce: the result's metrics and every epoch's numbers (the
/// epochs.csv columns but time and threads).
fn numbers(dir: &std::path::Path) -> (Vec<serde_json::Value>, Vec<String>) {
    let r = result(dir);
    let keys = [
        "status",
        "epochs_run",
        "test_loss",
        "test_accuracy",
        "train_loss",
        "best_val_loss",
        "best_val_accuracy",
        "best_epoch",
        "confusion_matrix",
        "step_losses",
    ];
    let csv = std::fs::read_to_string(dir.join("epochs.csv")).unwrap();
    let rows = csv
        .lines()
        .map(|l| l.split(',').take(8).collect::<Vec<_>>().join(","))
        .collect();
    (keys.iter().map(|k| r[k].clone()).collect(), rows)
}

/// Waits for the trial's first checkpoint, then kills the run with SIGKILL: nothing of the
/// trial is finished, and the next run resumes it from that checkpoint.
fn kill_after_first_checkpoint(s: &Sweep) -> PathBuf {
    let mut first = spawn(s);
    let dir = trial_dir(s);
    let ckpt = dir.join("checkpoint/trial.ckpt");
    let t0 = Instant::now();
    while !ckpt.exists() {
        assert!(t0.elapsed() < Duration::from_secs(120), "no checkpoint");
        assert!(first.try_wait().unwrap().is_none(), "the run ended first");
        std::thread::sleep(Duration::from_millis(5));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(
        !dir.join("result.json").exists(),
        "the trial finished first"
    );
    dir
}

fn killed_and_resumed_equals_uninterrupted(yaml: &str) {
    let whole = Sweep::new(yaml);
    run(&whole);
    let killed = Sweep::new(yaml);
    let dir = kill_after_first_checkpoint(&killed);
    run(&killed);
    let r = result(&dir);
    assert_eq!(r["restarts"], 1, "{r}");
    assert!(r["resumed_from_epoch"].as_u64().unwrap() >= 1, "{r}");
    assert!(
        !dir.join("checkpoint").exists(),
        "the checkpoint outlived the trial"
    );
    assert!(!dir.join("attempts").exists());
    assert_eq!(numbers(&dir), numbers(&trial_dir(&whole)));
}

#[test]
fn a_killed_mlp_resumes_with_the_numbers_of_an_uninterrupted_run() {
    killed_and_resumed_equals_uninterrupted(
        "name: mlp\ndata: {split: {official: true, val: 0.1}, train_size: 3000}\nfixed:\n  model: {kind: mlp, hidden: [256, 256], dropout: 0.2}\n  optimizer: {kind: adam, learning_rate: 0.001}\n  schedule: {kind: step, step_size: 1, gamma: 0.5}\n  batch_size: 16\n  epochs: 4\n  restore_best: true\n  log_steps: true\n  seed: 3\ncheckpoint: {every_epochs: 1}\n",
    );
}

#[test]
fn a_killed_cnn_resumes_with_the_numbers_of_an_uninterrupted_run() {
    killed_and_resumed_equals_uninterrupted(
        "name: cnn\ndata: {split: {official: true, val: 0.1}, train_size: 800}\nfixed:\n  model: {kind: cnn, hidden: [64]}\n  optimizer: {kind: sgd, learning_rate: 0.05, momentum: 0.9}\n  batch_size: 32\n  epochs: 3\n  augment: {rotate: 10}\n  seed: 4\ncheckpoint: {every_epochs: 1}\n",
    );
}

/// SIGTERM (what Slurm sends before it kills) mid-epoch: the trial writes its checkpoint at the
/// batch it stops on and the run exits well within the grace period; the next run goes on
/// from that batch and ends as an uninterrupted run does.
#[test]
fn sigterm_mid_epoch_checkpoints_at_that_batch_and_the_rerun_goes_on_from_it() {
    let yaml = "name: long\ndata: {train_size: 1000}\nfixed:\n  model: {kind: mlp, hidden: [256, 256], dropout: 0.1}\n  optimizer: {kind: sgd, learning_rate: 0.05}\n  batch_size: 32\n  steps_per_epoch: 2500\n  epochs: 2\n  seed: 9\ncheckpoint: off\n";
    let whole = Sweep::new(yaml);
    run(&whole);
    // `checkpoint: off` writes nothing: the stopped trial starts over, and still ends alike.
    let stopped = Sweep::new(&yaml.replace("checkpoint: off", "checkpoint: {every_minutes: 60}"));
    let mut child = spawn(&stopped);
    let dir = trial_dir(&stopped);
    // Epochs of about 1.5 s: 400 ms after the attempt started, the first is part-way.
    let t0 = Instant::now();
    while !dir.join("checkpoint").exists() {
        assert!(t0.elapsed() < Duration::from_secs(60), "no attempt started");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(400));
    assert!(child.try_wait().unwrap().is_none(), "the run ended first");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let t0 = Instant::now();
    let code = child.wait().unwrap().code();
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert_ne!(code, Some(0));
    assert_eq!(result(&dir)["status"], "interrupted");
    assert!(dir.join("checkpoint/trial.ckpt").exists());
    run(&stopped);
    let r = result(&dir);
    let note = r["notes"].to_string();
    assert!(note.contains("steps (attempt 2)"), "{note}");
    assert_eq!(numbers(&dir), numbers(&trial_dir(&whole)));
}

/// `checkpoint: {keep_final: true}` keeps the weights the test set used, as a burn record; the
/// checkpoint itself goes when the trial finishes.
#[test]
fn keep_final_keeps_the_weights_and_the_checkpoint_goes() {
    let s = Sweep::new(
        "name: keep\ndata: {train_size: 200}\nfixed:\n  model: {kind: mlp, hidden: [8]}\n  epochs: 2\ncheckpoint: {every_epochs: 1, keep_final: true}\n",
    );
    run(&s);
    let dir = trial_dir(&s);
    let weights = std::fs::metadata(dir.join("weights.mpk")).unwrap().len();
    // 784×8 + 8 + 8×10 + 10 floats, and the record's names.
    assert!(weights > 4 * 6370, "{weights} bytes");
    assert!(!dir.join("checkpoint").exists());
    assert!(result(&dir)["notes"].to_string().contains("weights.mpk"));
}
