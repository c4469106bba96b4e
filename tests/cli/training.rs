//! Trials that really train (the burn engine end to end, every study file reduced, the bench),
//! and the promises around training: a killed run resumes without retraining, data and device
//! problems are errors before anything trains.

use super::common::{Sweep, bin, repo};
use hypersweep::engine::{BurnEngine, Device, Engine, TrialContext};
use hypersweep::trial::Status;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant, SystemTime};

const TINY: &str = "name: tiny\ndata: {split: {official: true, val: 0.1}, train_size: 300, normalize: mnist}\nfixed:\n  model: {kind: mlp, hidden: [16]}\n  optimizer: {kind: sgd, learning_rate: 0.1}\n  batch_size: 32\n  epochs: 2\ngrid:\n  seed: [1, 2, 3, 4]\n";

fn result_json(trial_dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(trial_dir.join("result.json")).unwrap()).unwrap()
}

#[test]
fn real_sweep_end_to_end() {
    let s = Sweep::new(TINY);
    let mut c = bin();
    c.args([
        "run",
        s.file.to_str().unwrap(),
        "--out",
        s.out.to_str().unwrap(),
        "--devices",
        "cpu:2",
    ]);
    c.assert().success();
    for t in std::fs::read_dir(s.dir().join("trials")).unwrap() {
        let r = result_json(&t.unwrap().path());
        assert_eq!(r["status"], "ok");
        let acc = r["test_accuracy"].as_f64().unwrap();
        assert!((0.5..=1.0).contains(&acc), "{acc}");
        assert_eq!(r["device"], "cpu");
        assert_eq!(r["epochs_run"], 2);
    }
    for f in ["summary.csv", "report.html", "hypersweep.log", "plan.json"] {
        assert!(s.dir().join(f).exists(), "no {f}");
    }
}

/// Trial ids with a result.json, and when it was written.
fn done(trials: &Path) -> Vec<(String, SystemTime)> {
    let Ok(rd) = std::fs::read_dir(trials) else {
        return vec![];
    };
    rd.filter_map(|e| {
        let e = e.ok()?;
        let m = std::fs::metadata(e.path().join("result.json")).ok()?;
        Some((
            e.file_name().to_string_lossy().to_string(),
            m.modified().ok()?,
        ))
    })
    .collect()
}

#[test]
fn a_killed_run_resumes_without_retraining_finished_trials() {
    let s = Sweep::new(
        "name: k\nfixed: {epochs: 4}\ngrid:\n  seed: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]\n",
    );
    let mut child = s.spawn_scripted_run(25);
    let trials = s.dir().join("trials");
    let t0 = Instant::now();
    while done(&trials).len() < 3 {
        assert!(t0.elapsed() < Duration::from_secs(60), "no progress");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it was killed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = done(&trials);
    assert!(before.len() < 12, "all trials finished before the kill");
    // The stale lock of the killed process is taken over; finished trials are not retrained.
    s.cli("run", &["--quiet"]).assert().success();
    let after = done(&trials);
    assert_eq!(after.len(), 12);
    for (id, mtime) in &before {
        let now = after.iter().find(|(i, _)| i == id).unwrap();
        assert_eq!(now.1, *mtime, "trial {id} was retrained");
    }
    for (id, _) in &after {
        assert_eq!(result_json(&trials.join(id))["status"], "ok");
    }
    let csv = std::fs::read_to_string(s.dir().join("summary.csv")).unwrap();
    assert_eq!(csv.lines().count(), 13);
}

#[test]
fn missing_data_dir_is_a_user_error_before_training() {
    let s = Sweep::new("name: m\nfixed: {epochs: 1}\n");
    let out = s
        .cli("run", &["--data-dir", "/no/such/mnist"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/no/such/mnist"), "{err}");
    assert!(!s.dir().join("trials").exists());
}

#[test]
fn asking_for_a_missing_gpu_is_a_clear_error() {
    let s = Sweep::new("name: g\nfixed: {epochs: 1}\n");
    let out = s.cli("run", &["--devices", "cuda:0"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // On a machine without a GPU the driver is missing; on one with a GPU this trains.
    if out.status.code() == Some(1) {
        assert!(
            err.contains("cuda:0") && (err.contains("libcuda") || err.contains("CUDA")),
            "{err}"
        );
        // Only the error: no panic message from the driver bindings before it.
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(!err.contains("panic"), "{err}");
    } else {
        assert_eq!(out.status.code(), Some(0), "{err}");
    }
}

#[test]
fn wgpu_without_a_vulkan_driver_is_a_clear_error() {
    let s = Sweep::new("name: g\nfixed: {epochs: 1}\n");
    let out = s
        .cli("run", &["--devices", "wgpu"])
        .env("VK_ICD_FILENAMES", "/no/such/icd.json")
        .env("VK_DRIVER_FILES", "/no/such/icd.json")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--devices wgpu") && err.contains("mesa-vulkan-drivers"),
        "{err}"
    );
    assert!(!s.dir().join("trials").exists());
}

/// Whether Debian's `dataset-fashion-mnist` is installed; `HYPERSWEEP_REQUIRE_FASHION=1` (set by
/// `.ci/run`) makes its absence a failure instead of a skip.
fn fashion_installed() -> bool {
    let there = std::path::Path::new(hypersweep::data::FASHION_DIR).is_dir();
    assert!(
        there || std::env::var("HYPERSWEEP_REQUIRE_FASHION").is_err(),
        "HYPERSWEEP_REQUIRE_FASHION is set but {} is missing",
        hypersweep::data::FASHION_DIR
    );
    there
}

/// Writes the four official IDX files of a tiny ten-class set: class c lights rows 2c+4 and
/// 2c+5 (plus noise), which a linear model tells apart in a few steps.
fn write_tiny_idx(dir: &std::path::Path) {
    let mut noise = 12345u32;
    let mut part = |n: u32, images: &str, labels: &str| {
        let mut im = vec![0, 0, 8, 3];
        for d in [n, 28, 28] {
            im.extend(d.to_be_bytes());
        }
        let mut lb = vec![0, 0, 8, 1];
        lb.extend(n.to_be_bytes());
        for i in 0..n {
            let c = (i % 10) as usize;
            lb.push(c as u8);
            for p in 0..784 {
                noise = noise.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let lit = p / 28 == 2 * c + 4 || p / 28 == 2 * c + 5;
                im.push(if lit { 200 } else { (noise >> 27) as u8 * 8 });
            }
        }
        std::fs::write(dir.join(images), im).unwrap();
        std::fs::write(dir.join(labels), lb).unwrap();
    };
    part(300, "train-images-idx3-ubyte", "train-labels-idx1-ubyte");
    part(100, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte");
}

#[test]
fn a_fashion_mnist_report_names_the_classes_and_never_says_digits() {
    let s = Sweep::new("name: f\n");
    let data = s.tmp.path().join("fashion");
    std::fs::create_dir(&data).unwrap();
    write_tiny_idx(&data);
    s.rewrite(&format!(
        "name: f\ndata: {{source: fashion-mnist, path: {}}}\nfixed: {{epochs: 3, model: {{kind: linear}}, optimizer: {{kind: sgd, learning_rate: 0.1}}}}\n",
        data.display()
    ));
    let out = bin()
        .args([
            "run",
            s.file.to_str().unwrap(),
            "--out",
            s.out.to_str().unwrap(),
        ])
        .args(["--quiet"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let md = std::fs::read_to_string(s.dir().join("report.md")).unwrap();
    let html = std::fs::read_to_string(s.dir().join("report.html")).unwrap();
    assert!(md.contains("Fashion-MNIST from"), "{md}");
    for class in ["T-shirt/top", "Ankle boot"] {
        assert!(md.contains(class), "per-class table: {class}\n{md}");
        assert!(html.contains(class), "confusion matrix: {class}");
    }
    for text in [&md, &html] {
        assert!(
            !text.to_lowercase().contains("digit"),
            "a report of clothes says digits"
        );
    }
}

#[test]
fn fashion_mnist_not_installed_is_an_error_saying_what_to_install() {
    let s = Sweep::new(
        "name: f\ndata: {source: fashion-mnist, path: /no/such/fashion}\nfixed: {epochs: 1}\n",
    );
    let out = bin()
        .args([
            "run",
            s.file.to_str().unwrap(),
            "--out",
            s.out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("/no/such/fashion") && err.contains("apt-get install dataset-fashion-mnist"),
        "{err}"
    );
}

#[test]
fn every_study_file_trains_in_a_reduced_copy() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo("sweeps"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 7, "{files:?}");
    let cancel = AtomicBool::new(false);
    for f in files {
        let spec = hypersweep::spec::Spec::load(&f).unwrap();
        let plan = hypersweep::plan::expand(&spec).unwrap();
        for mut t in plan.trials {
            // Two steps on at most 200 digits: enough to exercise every model, optimizer,
            // schedule, augmentation and early-stopping path the studies use.
            let hypersweep::trial::TrialKind::Builtin(c) = &mut t.config else {
                continue;
            };
            if c.data.source == "fashion-mnist" && !fashion_installed() {
                eprintln!("skipped {}: Fashion-MNIST is not installed", f.display());
                continue;
            }
            c.epochs = 2;
            c.steps_per_epoch = Some(2);
            c.data.train_size = Some(c.data.train_size.unwrap_or(200).min(200));
            let mut ctx = TrialContext {
                device: Device::Cpu,
                threads: hypersweep::cores::Threads::fixed(1),
                progress: &mut |_| {},
                cancel: &cancel,
                stop_now: &hypersweep::engine::NEVER,
                checkpoint: None,
            };
            let r = BurnEngine
                .run(&t, &mut ctx)
                .unwrap_or_else(|e| panic!("{}: {}: {e}", f.display(), t.name));
            assert!(
                matches!(
                    r.status,
                    Status::Ok | Status::Diverged | Status::StoppedEarly
                ),
                "{}: {}: {:?}",
                f.display(),
                t.name,
                r.status
            );
            assert_eq!(r.confusion_matrix.len(), 10, "{}: {}", f.display(), t.name);
        }
    }
}

#[test]
fn bench_smoke_prints_one_line_per_model() {
    let out = bin()
        .args([
            "bench",
            "--models",
            "linear,mlp,cnn",
            "--epochs",
            "1",
            "--train-size",
            "120",
            "--threads",
            "1",
        ])
        .assert()
        .success();
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.get_output().stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    for l in &lines {
        assert!(l["samples_per_second"].as_f64().unwrap() > 0.0, "{l}");
        assert_eq!(l["samples"], 120);
    }
}
