//! The one integration test crate: drives the binary on small sweeps and the library's
//! scheduler with a scripted engine. Tiny data, few epochs: the real studies run in sweeps/.

use assert_cmd::Command;
use hypersweep::app::{self, RunOutcome};
use hypersweep::cli::RunArgs;
use hypersweep::engine::{Device, Engine, EpochRow, Progress, Status, TrialResult};
use hypersweep::plan::Trial;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn bin() -> Command {
    Command::cargo_bin("hypersweep").unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

// ---------------------------------------------------------------- validate and plan

#[test]
fn validate_counts_the_study_trials() {
    for (file, n) in [
        ("sweeps/s2-batch-size.yaml", 5),
        ("sweeps/s2-train-size.yaml", 4),
        ("sweeps/s3-activation.yaml", 2),
        ("sweeps/s4-cnn.yaml", 1),
        ("sweeps/s5-scratch-mlp.yaml", 9),
        ("sweeps/s1-softmax-fcnn.yaml", 11),
        ("sweeps/quickstart.yaml", 4),
    ] {
        bin()
            .args(["validate", repo(file).to_str().unwrap()])
            .assert()
            .success()
            .stdout(format!("ok: {n} trial{}\n", if n == 1 { "" } else { "s" }));
    }
}

#[test]
fn plan_prints_varied_values_and_json_params() {
    let out = bin()
        .args(["plan", repo("sweeps/s2-batch-size.yaml").to_str().unwrap()])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("batch_size"), "{text}");
    assert!(text.contains("batch_size=1000"), "{text}");
    assert!(text.trim_end().ends_with("5 trials"), "{text}");
    let out = bin()
        .args([
            "plan",
            "--json",
            repo("sweeps/s2-batch-size.yaml").to_str().unwrap(),
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 5);
    assert_eq!(arr[2]["params"]["batch_size"], 100);
    assert_eq!(arr[2]["params"]["optimizer"]["learning_rate"], 0.01);
    assert_eq!(arr[2]["params"]["model"]["init"], "zeros");
    assert_eq!(arr[2]["id"].as_str().unwrap().len(), 12);
}

#[test]
fn help_and_version() {
    bin().arg("--version").assert().success();
    let out = bin()
        .args(["run", "--help"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let t = String::from_utf8(out).unwrap();
    for flag in [
        "--devices",
        "--per-device",
        "--fresh",
        "--rerun-failed",
        "--out",
        "--data-dir",
        "--quiet",
    ] {
        assert!(t.contains(flag), "run --help lacks {flag}");
    }
}

/// Each bad file: (yaml, substrings the error must contain).
const BAD: &[(&str, &[&str])] = &[
    ("", &["empty"]),
    ("- 1\n- 2\n", &["mapping"]),
    (
        "name: x\nfixed:\n  epochs: 1\ngrid:\n  optimizer.learnig_rate: [0.1]\n",
        &[
            "learnig_rate",
            ":5:",
            "did you mean `optimizer.learning_rate`",
        ],
    ),
    (
        "name: x\nfixd:\n  epochs: 1\n",
        &["fixd", ":2:", "did you mean `fixed`"],
    ),
    (
        "name: x\nfixed:\n  epoch: 1\n",
        &["epoch", "did you mean `epochs`", "line 3"],
    ),
    (
        "name: x\nfixed:\n  optimizer: {kind: sgd, learning_rate: 0}\n",
        &["optimizer.learning_rate", "above 0", ":3:"],
    ),
    (
        "name: x\nfixed:\n  optimizer: {kind: sgd, learning_rate: -1}\n",
        &["optimizer.learning_rate", "above 0"],
    ),
    (
        "name: x\nfixed:\n  batch_size: 0\n",
        &["batch_size", "at least 1", ":3:"],
    ),
    (
        "name: x\nfixed:\n  batch_size: ten\n",
        &["batch_size", "invalid type"],
    ),
    (
        "name: x\nfixed:\n  epochs: 1\ngrid:\n  batch_size: []\n",
        &["grid.batch_size", "no values"],
    ),
    (
        "name: x\nfixed:\n  epochs: 1\ngrid:\n  batch_size: 10\n",
        &["grid.batch_size", "list of values"],
    ),
    (
        "name: x\nfixed: {epochs: 1}\nzip:\n  batch_size: [1, 2]\n  optimizer.learning_rate: [0.1]\n",
        &["zip.optimizer.learning_rate", "equal lengths"],
    ),
    (
        "name: x\nfixed: {epochs: 1}\ntrials:\n  - name: a\n  - name: a\n",
        &["duplicate trial name `a`", "line 4"],
    ),
    (
        "name: x\ndata:\n  split: {train: 0.5, val: 0.2, test: 0.2}\nfixed: {epochs: 1}\n",
        &["data.split", "sum to 1"],
    ),
    (
        "name: x\nfixed:\n  model: {kind: mlp, hidden: [10], dropout: 1.0}\n",
        &["model.dropout", "[0, 1)"],
    ),
    (
        "name: x\nfixed:\n  model: {kind: mlp, hidden: [10], dropout: -0.1}\n",
        &["model.dropout"],
    ),
    (
        "name: x\ndata: {train_size: 0}\nfixed: {epochs: 1}\n",
        &["data.train_size", "at least 1"],
    ),
    (
        "name: x\nfixed:\n  model: {kind: transformer}\n",
        &["model.kind", "unknown variant `transformer`"],
    ),
    (
        "name: x\nfixed:\n  model: {kind: mlp, activaton: relu}\n",
        &["activaton", "did you mean `model.activation`"],
    ),
    (
        "name: x\nfixed:\n  optimizer: {kind: sgdd}\n",
        &["optimizer.kind", "sgdd"],
    ),
    (
        "name: x\nfixed:\n  schedule: {kind: cosine, gama: 0.1}\n",
        &["gama", "did you mean `schedule.gamma`"],
    ),
    (
        "name: x\nfixed:\n  model: {kind: mlp}\n",
        &["model.hidden", "at least one hidden width"],
    ),
    ("fixed: {epochs: 1}\n", &["missing `name`"]),
    (
        "name: ../evil\nfixed: {epochs: 1}\n",
        &["name", "directory"],
    ),
    (
        "name: x\nfixed: {epochs: 1}\nseeds: [1, 1]\n",
        &["seeds", "twice"],
    ),
    (
        "name: x\nfixed: {epochs: 1}\nseeds: one\n",
        &["seeds", "list of seeds"],
    ),
    (
        "name: x\nfixed: {epochs: 1}\nreport: {metrc: test_accuracy}\n",
        &["report", "metrc"],
    ),
    (
        "name: x\nfixed:\n  optimizer: {learning_rate: .nan}\n",
        &["not a finite number", ":3:"],
    ),
    (
        "name: x\nfixed: {epochs: 1}\nfixed: {epochs: 2}\n",
        &["duplicate key `fixed`"],
    ),
    ("name: x\nfixed:\n  epochs: [1\n", &["not valid YAML"]),
    (
        "name: x\nfixed: {early_stopping: {patience: 3}}\n",
        &["early_stopping", "validation split"],
    ),
    (
        "name: x\nfixed:\n  optimizer: {kind: adam, nesterov: true}\n",
        &["optimizer.nesterov"],
    ),
    (
        "name: x\nfixed: {epochs: 1}\ngrid:\n  model.kind: [linear, linear]\n",
        &["grid.model.kind", "twice"],
    ),
    (
        "name: x\nfixed: {model: {kind: cnn, channels: [8, 8, 8, 8, 8, 8], kernel: 5, padding: 0}}\n",
        &["model.channels", "shrink"],
    ),
];

#[test]
fn bad_files_name_the_key_and_exit_1() {
    let d = tempfile::tempdir().unwrap();
    assert!(BAD.len() >= 25);
    for (i, (yaml, wants)) in BAD.iter().enumerate() {
        let f = write(d.path(), &format!("bad{i}.yaml"), yaml);
        let out = bin()
            .args(["validate", f.to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "bad{i}: {yaml:?} gave {err}");
        assert!(
            err.contains(&format!("bad{i}.yaml")),
            "bad{i}: the error names no file: {err}"
        );
        for w in *wants {
            assert!(
                err.contains(w),
                "bad{i} {yaml:?}: `{w}` missing from: {err}"
            );
        }
    }
}

#[test]
fn hostile_inputs_do_not_panic() {
    let d = tempfile::tempdir().unwrap();
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let big = "#".repeat(50 << 20);
    let deep = "a: ".repeat(5000) + "1\n";
    let deep_flow = "[".repeat(100_000);
    for (name, bytes) in [
        ("garbage.yaml", garbage),
        ("big.yaml", big.into_bytes()),
        ("deep.yaml", deep.into_bytes()),
        ("deepflow.yaml", deep_flow.into_bytes()),
    ] {
        let p = d.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let out = bin()
            .args(["validate", p.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = bin()
        .args(["validate", "/nonexistent.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.yaml"));
}

// ---------------------------------------------------------------- scheduler with a scripted engine

/// Trains nothing: returns a fixed result after `sleep`, fails or panics on request, and
/// remembers the order and concurrency it saw.
#[derive(Default)]
struct Scripted {
    sleep_ms: u64,
    started: Mutex<Vec<String>>,
    running: AtomicUsize,
    max_running: AtomicUsize,
}

impl Engine for Scripted {
    fn run(
        &self,
        trial: &Trial,
        device: Device,
        _threads: usize,
        progress: &mut (dyn FnMut(Progress) + Send),
        cancel: &AtomicBool,
    ) -> Result<TrialResult, String> {
        self.started.lock().unwrap().push(trial.name.clone());
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        let _guard = Defer(|| {
            self.running.fetch_sub(1, Ordering::SeqCst);
        });
        let mut status = Status::Ok;
        let mut epochs = vec![];
        for e in 1..=trial.config.epochs {
            if cancel.load(Ordering::SeqCst) {
                status = Status::Interrupted;
                break;
            }
            std::thread::sleep(Duration::from_millis(self.sleep_ms));
            let row = EpochRow {
                epoch: e,
                train_loss: 1.0 / e as f64,
                train_accuracy: 0.5 + 0.01 * e as f64,
                val_accuracy: Some(0.5),
                lr: trial.config.optimizer.lr(),
                seconds: 0.01,
                ..Default::default()
            };
            progress(Progress::Epoch(row.clone()));
            epochs.push(row);
        }
        let lr = trial.config.optimizer.lr();
        if lr == 0.5 {
            return Err("scripted failure".into());
        }
        if lr == 0.25 {
            panic!("scripted panic");
        }
        Ok(TrialResult {
            id: trial.id.clone(),
            name: trial.name.clone(),
            status: Some(status),
            device: device.to_string(),
            epochs_run: epochs.len(),
            test_accuracy: Some(0.9 - lr / 10.0),
            test_loss: Some(0.3),
            train_accuracy: Some(0.95),
            confusion_matrix: vec![vec![1; 10]; 10],
            per_class_accuracy: vec![0.1; 10],
            epochs,
            ..Default::default()
        })
    }
}

struct Defer<F: FnMut()>(F);
impl<F: FnMut()> Drop for Defer<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

fn args(file: &Path, out: &Path) -> RunArgs {
    RunArgs {
        file: file.into(),
        out: out.into(),
        devices: "cpu:2".into(),
        per_device: 1,
        threads: Some(1),
        data_dir: None,
        rerun_failed: false,
        fresh: false,
        quiet: true,
        no_report: false,
    }
}

fn run_scripted(a: &RunArgs, e: Arc<Scripted>) -> RunOutcome {
    app::run_with(a, &Default::default(), e).unwrap()
}

const SIX: &str = "name: six\nfixed: {epochs: 2, data: {train_size: 100}}\ngrid:\n  optimizer.learning_rate: [0.1, 0.01, 0.001]\n  batch_size: [8, 16]\n";

#[test]
fn a_sweep_of_six_gives_six_results_and_resume_trains_nothing() {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "six.yaml", SIX);
    let out = d.path().join("results");
    let e = Arc::new(Scripted::default());
    let o = run_scripted(&args(&f, &out), e.clone());
    assert_eq!(o.failed, 0);
    assert_eq!(e.started.lock().unwrap().len(), 6);
    let trials: Vec<_> = std::fs::read_dir(out.join("six/trials")).unwrap().collect();
    assert_eq!(trials.len(), 6);
    for t in trials {
        let t = t.unwrap().path();
        for f in ["config.json", "epochs.csv", "result.json"] {
            assert!(t.join(f).exists(), "{} lacks {f}", t.display());
        }
    }
    // Rerun: nothing trains. Add a grid value: only the new trials train.
    let e2 = Arc::new(Scripted::default());
    run_scripted(&args(&f, &out), e2.clone());
    assert!(e2.started.lock().unwrap().is_empty());
    let f = write(d.path(), "six.yaml", &SIX.replace("[8, 16]", "[8, 16, 32]"));
    let e3 = Arc::new(Scripted::default());
    run_scripted(&args(&f, &out), e3.clone());
    let mut names = e3.started.lock().unwrap().clone();
    names.sort();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(
        names.iter().all(|n| n.contains("batch_size=32")),
        "{names:?}"
    );
    // A changed fixed value changes ids: old results stay on disk but are not reused.
    let f = write(d.path(), "six.yaml", &SIX.replace("epochs: 2", "epochs: 3"));
    let e4 = Arc::new(Scripted::default());
    run_scripted(&args(&f, &out), e4.clone());
    assert_eq!(e4.started.lock().unwrap().len(), 6);
    assert_eq!(
        std::fs::read_dir(out.join("six/trials")).unwrap().count(),
        15
    );
}

#[test]
fn concurrency_is_bounded_and_expensive_trials_start_first() {
    let d = tempfile::tempdir().unwrap();
    let f = write(
        d.path(),
        "c.yaml",
        "name: c\nfixed: {epochs: 2}\ngrid:\n  epochs: [1, 3, 2, 5, 4]\n",
    );
    let out = d.path().join("r");
    let e = Arc::new(Scripted {
        sleep_ms: 30,
        ..Default::default()
    });
    let mut a = args(&f, &out);
    a.devices = "cpu:2".into();
    run_scripted(&a, e.clone());
    assert_eq!(e.max_running.load(Ordering::SeqCst), 2);
    let started = e.started.lock().unwrap().clone();
    assert_eq!(started[0], "epochs=5", "{started:?}");
    assert_eq!(started[1], "epochs=4", "{started:?}");
}

#[test]
fn a_failing_or_panicking_trial_is_recorded_and_the_rest_go_on() {
    let d = tempfile::tempdir().unwrap();
    let f = write(
        d.path(),
        "f.yaml",
        "name: f\nfixed: {epochs: 1}\ngrid:\n  optimizer.learning_rate: [0.5, 0.25, 0.1, 0.01]\n",
    );
    let out = d.path().join("r");
    let e = Arc::new(Scripted::default());
    let o = run_scripted(&args(&f, &out), e.clone());
    assert_eq!(o.failed, 2);
    let store = hypersweep::store::Store::new(&out, "f");
    let all = store.load_all().unwrap();
    assert_eq!(all.len(), 4);
    let by = |lr: &str| {
        all.iter()
            .find(|(_, r)| r.name.ends_with(lr))
            .unwrap()
            .1
            .clone()
    };
    assert_eq!(by("=0.5").status, Some(Status::Failed));
    assert_eq!(by("=0.5").error.as_deref(), Some("scripted failure"));
    assert_eq!(by("=0.25").status, Some(Status::Failed));
    assert!(by("=0.25").error.unwrap().contains("scripted panic"));
    assert_eq!(by("=0.1").status, Some(Status::Ok));
    // Failed trials are kept on a rerun unless asked, then retried.
    let e2 = Arc::new(Scripted::default());
    run_scripted(&args(&f, &out), e2.clone());
    assert!(e2.started.lock().unwrap().is_empty());
    let mut a = args(&f, &out);
    a.rerun_failed = true;
    let e3 = Arc::new(Scripted::default());
    run_scripted(&a, e3.clone());
    assert_eq!(e3.started.lock().unwrap().len(), 2);
    // The report flags them.
    let md = std::fs::read_to_string(out.join("f/report.md")).unwrap();
    assert!(md.contains("failed: scripted failure"), "{md}");
}

#[test]
fn a_live_lock_stops_a_second_run_and_a_stale_one_is_taken_over() {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "l.yaml", "name: l\nfixed: {epochs: 1}\n");
    let out = d.path().join("r");
    std::fs::create_dir_all(out.join("l")).unwrap();
    std::fs::write(out.join("l/.lock"), "1\n0\n").unwrap();
    let err = app::run_with(
        &args(&f, &out),
        &Default::default(),
        Arc::new(Scripted::default()),
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("pid 1"), "{err}");
    assert!(err.downcast_ref::<app::UserError>().is_some());
    std::fs::write(out.join("l/.lock"), "999999999\n0\n").unwrap();
    run_scripted(&args(&f, &out), Arc::new(Scripted::default()));
    assert!(!out.join("l/.lock").exists());
}

#[test]
fn fresh_moves_old_results_aside() {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "fr.yaml", "name: fr\nfixed: {epochs: 1}\n");
    let out = d.path().join("r");
    run_scripted(&args(&f, &out), Arc::new(Scripted::default()));
    let mut a = args(&f, &out);
    a.fresh = true;
    let e = Arc::new(Scripted::default());
    run_scripted(&a, e.clone());
    assert_eq!(e.started.lock().unwrap().len(), 1);
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert!(names.iter().any(|n| n.starts_with("fr.old-")), "{names:?}");
}

#[test]
fn interrupts_stop_new_trials_then_running_ones() {
    use hypersweep::scheduler::{self, Cancel, Slot};
    let spec = hypersweep::spec::Spec::parse(
        "i.yaml",
        "name: i\nfixed: {epochs: 50}\ngrid:\n  seed: [1, 2, 3, 4]\n",
    )
    .unwrap();
    let plan = hypersweep::plan::expand(&spec).unwrap();
    let cancel = Arc::new(Cancel::default());
    let e = Arc::new(Scripted {
        sleep_ms: 10,
        ..Default::default()
    });
    let c = cancel.clone();
    let mut presses = 0;
    let results = scheduler::run(
        plan.trials.iter().map(|t| (t.clone(), 1.0)).collect(),
        e.clone(),
        &[Slot {
            device: Device::Cpu,
            threads: 1,
        }],
        cancel,
        |ev| {
            if let hypersweep::events::SweepEvent::TrialEpoch { row, .. } = ev
                && (row.epoch == 3 || row.epoch == 4)
                && presses < 2
            {
                presses += 1;
                c.press();
            }
        },
    );
    // One slot: the first trial was running; the first press kept others from starting, the
    // second interrupted the running one.
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].status, Some(Status::Interrupted));
    assert!(results[0].epochs_run < 50);
}

// ---------------------------------------------------------------- reports

#[test]
fn report_tables_and_sections_hold_the_results() {
    let d = tempfile::tempdir().unwrap();
    let f = write(
        d.path(),
        "rep.yaml",
        "name: rep\ndescription: scripted\nfixed: {epochs: 3}\ngrid:\n  optimizer.learning_rate: [0.1, 0.01]\nseeds: [1, 2]\nreport: {threshold: 0.52, threshold_metric: val_accuracy}\n",
    );
    let out = d.path().join("r");
    run_scripted(&args(&f, &out), Arc::new(Scripted::default()));
    let dir = out.join("rep");
    use polars::prelude::*;
    let df = ParquetReader::new(std::fs::File::open(dir.join("summary.parquet")).unwrap())
        .finish()
        .unwrap();
    assert_eq!(df.height(), 4);
    let schema = df.schema();
    assert_eq!(
        schema.get("optimizer.learning_rate"),
        Some(&DataType::Float64)
    );
    assert_eq!(schema.get("seed"), Some(&DataType::Int64));
    assert_eq!(schema.get("test_accuracy"), Some(&DataType::Float64));
    assert_eq!(schema.get("epochs_run"), Some(&DataType::Int64));
    assert_eq!(schema.get("status"), Some(&DataType::String));
    let col = df.column("test_accuracy").unwrap().f64().unwrap().clone();
    let acc: Vec<Option<f64>> = (0..col.len()).map(|i| col.get(i)).collect();
    assert!(
        acc.iter()
            .all(|a| a.is_some_and(|a| (a - 0.89).abs() < 0.02)),
        "{acc:?}"
    );
    // The first epoch at which val accuracy reaches 0.52: scripted val is 0.5, so never.
    let reach = df.column("epoch_reaching_threshold").unwrap();
    assert_eq!(reach.null_count(), 4);
    let ep = ParquetReader::new(std::fs::File::open(dir.join("epochs.parquet")).unwrap())
        .finish()
        .unwrap();
    assert_eq!(ep.height(), 12);
    let grouped = std::fs::read_to_string(dir.join("summary_by_setting.csv")).unwrap();
    assert!(
        grouped
            .lines()
            .next()
            .unwrap()
            .contains("test_accuracy_mean"),
        "{grouped}"
    );
    assert_eq!(grouped.lines().count(), 3);
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    for section in [
        "# Sweep `rep`",
        "## Results",
        "## Over seeds",
        "## Learning curves",
        "## Best trial",
        "Test accuracy vs optimizer.learning_rate",
    ] {
        let found = md.contains(section)
            || std::fs::read_dir(dir.join("plots")).unwrap().any(|p| {
                std::fs::read_to_string(p.unwrap().path())
                    .unwrap()
                    .contains(section)
            });
        assert!(found, "report lacks {section}:\n{md}");
    }
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("class=\"best\""));
    // Comparison of two sweeps.
    bin()
        .args([
            "report",
            dir.to_str().unwrap(),
            dir.to_str().unwrap(),
            "--out",
            d.path().to_str().unwrap(),
        ])
        .assert()
        .success();
    assert!(d.path().join("compare.html").exists());
}

// ---------------------------------------------------------------- the real engine, end to end

const TINY: &str = "name: tiny\ndata: {split: {official: true, val: 0.1}, train_size: 300, normalize: mnist}\nfixed:\n  model: {kind: mlp, hidden: [16]}\n  optimizer: {kind: sgd, learning_rate: 0.1}\n  batch_size: 32\n  epochs: 2\ngrid:\n  seed: [1, 2, 3, 4, 5, 6]\n";

#[test]
fn real_sweep_end_to_end_then_rerun_trains_nothing() {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "tiny.yaml", TINY);
    let out = d.path().join("results");
    let o = bin()
        .args([
            "run",
            f.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--devices",
            "cpu:2",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(o).unwrap();
    assert!(text.contains("6 to run"), "{text}");
    for id in std::fs::read_dir(out.join("tiny/trials")).unwrap() {
        let r: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(id.unwrap().path().join("result.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(r["status"], "ok");
        let acc = r["test_accuracy"].as_f64().unwrap();
        assert!((0.5..=1.0).contains(&acc), "{acc}");
        assert_eq!(r["device"], "cpu");
        assert_eq!(r["epochs_run"], 2);
    }
    assert!(out.join("tiny/summary.csv").exists() && out.join("tiny/report.html").exists());
    assert!(out.join("tiny/hypersweep.log").exists());
    let o = bin()
        .args(["run", f.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(o).unwrap();
    assert!(text.contains("6 already done, 0 to run"), "{text}");
    let st = bin()
        .args(["status", out.join("tiny").to_str().unwrap()])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let st = String::from_utf8(st).unwrap();
    assert!(
        st.contains("ok") && st.contains("6") && st.contains("best so far"),
        "{st}"
    );
}

#[test]
fn a_killed_run_resumes_without_retraining_finished_trials() {
    let d = tempfile::tempdir().unwrap();
    let f = write(
        d.path(),
        "k.yaml",
        &TINY
            .replace("name: tiny", "name: k")
            .replace(
                "[1, 2, 3, 4, 5, 6]",
                "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]",
            )
            // Long enough per trial that the kill lands mid-sweep on a fast machine too.
            .replace("epochs: 2", "epochs: 6"),
    );
    let out = d.path().join("results");
    let exe = assert_cmd::cargo::cargo_bin("hypersweep");
    let mut child = std::process::Command::new(&exe)
        .args([
            "run",
            f.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--devices",
            "cpu:1",
            "--quiet",
            "--no-report",
        ])
        .spawn()
        .unwrap();
    let trials = out.join("k/trials");
    let done = |p: &Path| -> Vec<(String, std::time::SystemTime)> {
        std::fs::read_dir(p)
            .map(|rd| {
                rd.filter_map(|e| {
                    let e = e.ok()?;
                    let m = std::fs::metadata(e.path().join("result.json")).ok()?;
                    Some((
                        e.file_name().to_string_lossy().to_string(),
                        m.modified().ok()?,
                    ))
                })
                .collect()
            })
            .unwrap_or_default()
    };
    let t0 = std::time::Instant::now();
    while done(&trials).len() < 3 {
        assert!(t0.elapsed() < Duration::from_secs(120), "no progress");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it was killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = done(&trials);
    assert!(before.len() < 12, "all trials finished before the kill");
    // The stale lock of the killed process is taken over; finished trials are not retrained.
    bin()
        .args([
            "run",
            f.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ])
        .assert()
        .success();
    let after = done(&trials);
    assert_eq!(after.len(), 12);
    for (id, mtime) in &before {
        let now = after.iter().find(|(i, _)| i == id).unwrap();
        assert_eq!(now.1, *mtime, "trial {id} was retrained");
    }
    for (id, _) in &after {
        let r: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(trials.join(id).join("result.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(r["status"], "ok");
    }
    let csv = std::fs::read_to_string(out.join("k/summary.csv")).unwrap();
    assert_eq!(csv.lines().count(), 13);
}

#[test]
fn missing_data_dir_is_a_user_error_before_training() {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "m.yaml", "name: m\nfixed: {epochs: 1}\n");
    let out = bin()
        .args([
            "run",
            f.to_str().unwrap(),
            "--out",
            d.path().join("r").to_str().unwrap(),
            "--data-dir",
            "/no/such/mnist",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/no/such/mnist"), "{err}");
    assert!(!d.path().join("r/m/trials").exists());
}

#[test]
fn asking_for_a_missing_gpu_is_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "g.yaml", "name: g\nfixed: {epochs: 1}\n");
    let out = bin()
        .args([
            "run",
            f.to_str().unwrap(),
            "--out",
            d.path().join("r").to_str().unwrap(),
            "--devices",
            "cuda:0",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // On a machine without a GPU the driver is missing; on one with a GPU this trains.
    if out.status.code() == Some(1) {
        assert!(
            err.contains("cuda:0") && (err.contains("libcuda") || err.contains("CUDA")),
            "{err}"
        );
    } else {
        assert_eq!(out.status.code(), Some(0), "{err}");
    }
}

// ---------------------------------------------------------------- studies and benchmark stay runnable

#[test]
fn every_study_file_trains_in_a_reduced_copy() {
    use hypersweep::engine::BurnEngine;
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo("sweeps"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 7, "{files:?}");
    for f in files {
        let spec = hypersweep::spec::Spec::load(&f).unwrap();
        let plan = hypersweep::plan::expand(&spec).unwrap();
        for mut t in plan.trials {
            // Two steps on at most 200 digits: enough to exercise every model, optimizer,
            // schedule, augmentation and early-stopping path the studies use.
            t.config.epochs = 2;
            t.config.steps_per_epoch = Some(2);
            t.config.data.train_size = Some(t.config.data.train_size.unwrap_or(200).min(200));
            let r = BurnEngine
                .run(&t, Device::Cpu, 1, &mut |_| {}, &AtomicBool::new(false))
                .unwrap_or_else(|e| panic!("{}: {}: {e}", f.display(), t.name));
            assert!(
                matches!(
                    r.status,
                    Some(Status::Ok | Status::Diverged | Status::StoppedEarly)
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
        .success()
        .get_output()
        .stdout
        .clone();
    let lines: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    for l in &lines {
        assert!(l["samples_per_second"].as_f64().unwrap() > 0.0, "{l}");
        assert_eq!(l["samples"], 120);
    }
}

#[test]
fn report_and_status_on_a_non_results_directory_are_user_errors() {
    let d = tempfile::tempdir().unwrap();
    for cmd in ["report", "status"] {
        let out = bin()
            .args([cmd, d.path().to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{cmd}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("not a results directory"),
            "{cmd}"
        );
    }
}
