//! Reading sweep files: `validate` and `plan` on the studies, help text, and bad or hostile
//! files that must give a clear error (exit 1, naming the file, line and key).

use super::common::{bin, repo, write};

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
    // A results directory of its own: the repository's results/ holds this study finished.
    let fresh = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["plan", repo("sweeps/s2-batch-size.yaml").to_str().unwrap()])
        .arg("--out")
        .arg(fresh.path())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("batch_size"), "{text}");
    assert!(text.contains("batch_size=1000"), "{text}");
    assert!(text.contains("\n5 trials\n"), "{text}");
    assert!(text.contains("\nestimate: 5 trials, "), "{text}");
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
        &[
            "batch_size",
            "expected a whole number ≥ 0, found the string \"ten\"",
            ":3:",
        ],
    ),
    (
        "name: x\nfixed:\n  epochs: \"10\"\n",
        &[
            "epochs",
            "expected a whole number ≥ 0, found the string \"10\"",
            ":3:",
        ],
    ),
    (
        "name: x\nfixed:\n  epochs: -1\n",
        &["epochs", "expected a whole number ≥ 0, found -1"],
    ),
    (
        "name: x\nfixed:\n  optimizer: {learning_rate: fast}\n",
        &[
            "optimizer.learning_rate",
            "expected a number, found the string \"fast\"",
        ],
    ),
    (
        "name: x\nfixed: {epochs: 1}\nearly_terminate: {type: hyperband, eta: 2.5}\n",
        &[
            "early_terminate.eta",
            "expected a whole number ≥ 0, found 2.5",
        ],
    ),
    (
        "name: x\nmethod: random\ncount: \"10\"\nspace:\n  model.dropout: {distribution: uniform, min: 0.0, max: 0.1}\n",
        &["count", "found the string \"10\"", ":3:"],
    ),
    (
        "name: x\nprogram: {command: [echo, \"{trial_dir}\"]}\nfixed: {epochs: 1}\ngrid:\n  trial_dir: [a, b]\n",
        &[
            "grid.trial_dir",
            ":5:",
            "reserved name",
            "`{trial_dir}` is the trial's own directory",
        ],
    ),
    (
        "name: x\nprogram: {command: [echo]}\nfixed:\n  trial_id: 3\n",
        &["fixed.trial_id", ":4:", "reserved name", "(line 4)"],
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
        "name: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\nfixed: {epochs: 1}\n",
        &["name", "at most 100 characters", ":1:"],
    ),
    (
        "name: x\nfixed:\n  optimizer: {learning_rate: 0.1}\n  optimizer.learning_rate: 0.01\n",
        &["optimizer.learning_rate", "set twice", "line 3", "line 4"],
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
        // The user wrote YAML: no message names a Rust type.
        let words: Vec<&str> = err.split(|c: char| !c.is_alphanumeric()).collect();
        for rust in [
            "usize", "u64", "u32", "u8", "i64", "i32", "f64", "f32", "struct",
        ] {
            assert!(
                !words.contains(&rust),
                "bad{i} {yaml:?}: `{rust}` in: {err}"
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

#[test]
fn a_usage_error_exits_1_not_2() {
    let out = bin().args(["validate"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let out = bin().args(["frobnicate"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_numeric_looking_name_names_the_results_directory_as_written() {
    // `1.50` is the number 1.5 to YAML; the directory must still be `1.50/`, and a named
    // trial `007` keeps its zeros.
    let s = super::common::Sweep::new(
        "name: 1.50\nfixed: {epochs: 1}\ntrials:\n  - name: 007\n  - name: 1e3\n    seed: 2\n",
    );
    assert_eq!(s.name, "1.50");
    s.cli("run", &["--quiet", "--no-report"]).assert().success();
    assert!(
        s.dir().is_dir(),
        "no results directory {}",
        s.dir().display()
    );
    assert!(!s.out.join("1.5").exists());
    let plan = bin()
        .args(["plan", s.file.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(text.contains("007") && text.contains("1e3"), "{text}");
}
