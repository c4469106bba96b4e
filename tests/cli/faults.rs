//! Faults and hostile input, each found by probing the binary (issue #14): every test here
//! failed before its fix. Two processes racing for one results directory, bad bytes in a sweep
//! file, errors that must point at the right line, huge grids, absurd resource flags, diverged
//! and damaged results.

use super::common::{Sweep, scripted, scripted_bin, validate};
use std::time::{Duration, Instant};

/// The number in "N trained" of a `--quiet` run's line.
fn trained(stdout: &str) -> usize {
    stdout
        .split(": ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn two_processes_at_one_stale_lock_train_each_trial_once() {
    let s = Sweep::new("name: race\nfixed: {epochs: 2}\ngrid:\n  seed: [1, 2, 3, 4]\n");
    for round in 0..25 {
        let _ = std::fs::remove_dir_all(&s.out);
        std::fs::create_dir_all(s.dir()).unwrap();
        // Left by a process that is gone.
        std::fs::write(s.dir().join(".lock"), "999999999\n0\n").unwrap();
        let (a, b) = (s.spawn_scripted_run(15), s.spawn_scripted_run(15));
        let outs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
        let mut total = 0;
        for o in &outs {
            let out = String::from_utf8_lossy(&o.stdout);
            let err = String::from_utf8_lossy(&o.stderr);
            match o.status.code() {
                Some(0) => total += trained(&out),
                // The other process held the last trials: named, and not complete here.
                Some(4) if err.contains("held by pid") => total += trained(&out),
                c => panic!("round {round}: exit {c:?}: {err}"),
            }
        }
        assert_eq!(
            total, 4,
            "round {round}: trials trained {total} times in all"
        );
    }
}

#[test]
fn control_bytes_are_refused_with_their_position_and_a_bom_is_accepted() {
    let d = tempfile::tempdir().unwrap();
    let three = "name: nul\nfixed: {epochs: 1}\n# a comment \0 here\ngrid:\n  seed: [1, 2, 3]\n";
    let (code, _, err) = validate(d.path(), "nul.yaml", three);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("nul.yaml:3:13") && err.contains("U+0000"),
        "{err}"
    );
    let bom = format!("\u{feff}{}", three.replace(" \0 ", " "));
    let ok = (Some(0), "ok: 3 trials\n".to_string(), String::new());
    assert_eq!(validate(d.path(), "bom.yaml", &bom), ok);
}

#[test]
fn a_bad_value_in_the_grid_is_reported_at_the_grid() {
    let d = tempfile::tempdir().unwrap();
    let grid = "name: g\nfixed: {batch_size: 8}\ngrid:\n  batch_size: [0, 1]\n";
    let (_, _, err) = validate(d.path(), "g.yaml", grid);
    assert!(
        err.contains("g.yaml:4:") && err.contains("(in grid)"),
        "{err}"
    );
    let trials = "name: t\nfixed: {epochs: 3}\ntrials:\n  - name: a\n    epochs: 0\n";
    let (_, _, err) = validate(d.path(), "t.yaml", trials);
    assert!(err.contains("t.yaml:5:") && err.contains("trials"), "{err}");
}

#[test]
fn a_huge_grid_is_counted_and_refused_and_a_large_one_plans_fast() {
    let d = tempfile::tempdir().unwrap();
    let axis = |n: usize| (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(", ");
    let huge = format!(
        "name: h\nfixed: {{epochs: 1}}\ngrid:\n  seed: [{}]\n  epochs: [{}]\n  batch_size: [{}]\n",
        axis(1000),
        axis(100),
        (1..=1000)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let (code, _, err) = validate(d.path(), "h.yaml", &huge);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("100000000 trials"), "{err}");
    let large = format!(
        "name: l\nfixed: {{epochs: 1}}\ngrid:\n  seed: [{}]\n  batch_size: [{}]\n",
        axis(1000),
        (1..=100)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    // Expansion was quadratic (67 s for this file); it is linear now (1.2 s, measured by hand).
    let ok = (Some(0), "ok: 100000 trials\n".to_string(), String::new());
    assert_eq!(validate(d.path(), "l.yaml", &large), ok);
}

#[test]
fn absurd_resource_flags_are_refused_before_anything_is_locked() {
    for flags in [["--devices", "cpu:100000"], ["--threads", "100000"]] {
        let s = Sweep::new("name: r\nfixed: {epochs: 1}\n");
        let out = s.cli("run", &flags).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{flags:?}: {err}");
        assert!(err.contains("this machine has"), "{flags:?}: {err}");
        assert!(!s.dir().exists(), "{flags:?} created the results directory");
    }
}

#[test]
fn a_damaged_result_is_skipped_with_its_file_named_and_the_rest_stay_readable() {
    let s = Sweep::new("name: dmg\nfixed: {epochs: 1}\ngrid:\n  seed: [1, 2, 3]\n");
    s.run(&scripted(0));
    let trials = s.dir().join("trials");
    let first = std::fs::read_dir(&trials)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(first.join("result.json"), "{ not json").unwrap();
    let st = scripted_bin()
        .args(["status", s.dir().to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&st.stdout);
    assert_eq!(
        st.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    assert!(
        text.contains("ok             2") && text.contains("result.json"),
        "{text}"
    );
    scripted_bin()
        .args(["report", s.dir().to_str().unwrap()])
        .assert()
        .success();
    let md = std::fs::read_to_string(s.dir().join("report.md")).unwrap();
    assert!(md.contains("skipped an unreadable result"), "{md}");
    // run trains the damaged trial again and leaves the others.
    let e = scripted(0);
    s.run(&e);
    assert_eq!(e.started_count(), 1);
}

#[test]
fn an_unwritable_results_root_is_a_user_error_naming_the_path() {
    // /sys refuses new directories even to root, as a read-only mount or a full disk would.
    let s = Sweep::new("name: ro\nfixed: {epochs: 1}\n");
    let out = scripted_bin()
        .args([
            "run",
            s.file.to_str().unwrap(),
            "--out",
            "/sys/hypersweep-results",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("/sys/hypersweep-results/ro") && err.contains("cannot create"),
        "{err}"
    );
}

#[test]
fn a_diverged_trial_with_logged_steps_keeps_the_sweep_readable() {
    // Non-finite step losses are written as null; they used to make every later run, status
    // and report on the directory fail with "internal error".
    let s = Sweep::new(
        "name: div\ndata: {train_size: 200}\nfixed:\n  model: {kind: mlp, hidden: [16]}\n  optimizer: {kind: sgd, learning_rate: 1.0e10}\n  batch_size: 20\n  epochs: 2\n  log_steps: true\ngrid:\n  seed: [1, 2]\n",
    );
    let mut run = super::common::bin();
    run.args([
        "run",
        s.file.to_str().unwrap(),
        "--out",
        s.out.to_str().unwrap(),
        "--quiet",
    ]);
    run.assert().success();
    let st = scripted_bin()
        .args(["status", s.dir().to_str().unwrap()])
        .assert()
        .success();
    let text = String::from_utf8_lossy(&st.get_output().stdout).to_string();
    assert!(text.contains("diverged       2"), "{text}");
    s.cli("run", &["--quiet"]).assert().success();
    scripted_bin()
        .args(["report", s.dir().to_str().unwrap()])
        .assert()
        .success();
}

#[test]
fn log_steps_over_a_huge_number_of_steps_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let yaml = "name: s\nfixed: {steps_per_epoch: 100000000, epochs: 1, log_steps: true}\n";
    let (code, _, err) = validate(d.path(), "s.yaml", yaml);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("log_steps") && err.contains("s.yaml:2:"),
        "{err}"
    );
}

/// Sends `signal` to `child`.
fn send(child: &std::process::Child, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill(2) has no memory effects; the pid is our own child, not yet waited for.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
}

/// The ids of the trials claimed (being trained), once there are `n` of them.
fn wait_running(s: &Sweep, n: usize, child: &mut std::process::Child) -> Vec<String> {
    let t0 = Instant::now();
    loop {
        let ids: Vec<String> = std::fs::read_dir(s.dir().join("claims"))
            .map(|rd| {
                rd.filter_map(|e| {
                    let name = e.ok()?.file_name();
                    let (id, _generation) =
                        name.to_str()?.strip_suffix(".json")?.rsplit_once('.')?;
                    Some(id.to_string())
                })
                .collect()
            })
            .unwrap_or_default();
        if ids.len() >= n {
            return ids;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "no trial started");
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits for `child` to exit; kills it and fails when it takes longer than `within`.
fn wait_exit(child: &mut std::process::Child, within: Duration) -> std::process::ExitStatus {
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if t0.elapsed() > within {
            let _ = child.kill();
            panic!("the run was still going {within:?} after the signal");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The stored result of trial `id`.
fn result_of(s: &Sweep, id: &str) -> serde_json::Value {
    let p = s.dir().join("trials").join(id).join("result.json");
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

/// Trials with a stored result.
fn finished(s: &Sweep) -> usize {
    std::fs::read_dir(s.dir().join("trials"))
        .map(|rd| {
            rd.filter(|e| e.as_ref().unwrap().path().join("result.json").exists())
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn one_sigterm_stops_running_trials_at_once_and_a_rerun_trains_them() {
    // Two slots; each trial runs 100 epochs of 100 ms, the third waits for a slot.
    let s = Sweep::new("name: term\nfixed: {epochs: 100}\ngrid:\n  seed: [1, 2, 3]\n");
    let mut child = s.spawn_scripted(100, &["--devices", "cpu:2", "--quiet", "--no-report"]);
    let running = wait_running(&s, 2, &mut child);
    std::thread::sleep(Duration::from_millis(300));
    // A cluster scheduler's SIGTERM: the grace period before SIGKILL is short.
    send(&child, libc::SIGTERM);
    let status = wait_exit(&mut child, Duration::from_secs(3));
    assert_eq!(status.code(), Some(130));
    for id in &running {
        let r = result_of(&s, id);
        assert_eq!(r["status"], "interrupted", "{id}: {r}");
        assert!(r["epochs_run"].as_u64().unwrap() < 100, "{r}");
    }
    assert_eq!(finished(&s), 2, "the waiting trial must not start");
    // The rerun trains the two interrupted trials and the one that never started.
    let out = s.cli("run", &["--quiet", "--no-report"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(trained(&String::from_utf8_lossy(&out.stdout)), 3);
    for id in &running {
        assert_eq!(result_of(&s, id)["status"], "ok");
    }
}

#[test]
fn a_second_ctrl_c_says_stopping_running_trials_at_once() {
    // Epochs of 1.5 s: no trial reports anything for long stretches, yet each Ctrl-C is
    // acknowledged on screen within a second.
    let s = Sweep::new("name: int2\nfixed: {epochs: 20}\ngrid:\n  seed: [1, 2, 3]\n");
    let mut child = s.spawn_scripted(1500, &["--devices", "cpu:2", "--no-report"]);
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(stdout).lines() {
            let _ = tx.send(l.unwrap());
        }
    });
    let mut seen = vec![];
    let mut expect = |what: &str| {
        let deadline = Instant::now() + Duration::from_secs(1);
        while let Ok(l) = lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            assert!(
                !l.starts_with("done"),
                "a trial ended before `{what}`: {seen:?}"
            );
            seen.push(l.clone());
            if l.contains(what) {
                return;
            }
        }
        panic!("no `{what}` within a second of the Ctrl-C: {seen:?}");
    };
    let running = wait_running(&s, 2, &mut child);
    send(&child, libc::SIGINT);
    expect("no new trials start");
    send(&child, libc::SIGINT);
    expect("stopping running trials");
    let status = wait_exit(&mut child, Duration::from_secs(5));
    assert_eq!(status.code(), Some(130));
    for id in &running {
        assert_eq!(result_of(&s, id)["status"], "interrupted");
    }
    assert_eq!(finished(&s), 2);
}

#[test]
fn a_trial_too_big_for_memory_fails_alone_as_out_of_memory() {
    // 784 × 10⁹ weights: allocating them aborted the whole process and lost the sweep.
    let s = Sweep::new(
        "name: oom\ndata: {train_size: 200}\nfixed: {epochs: 1, batch_size: 50}\ntrials:\n  - name: huge\n    model: {kind: mlp, hidden: [1000000000]}\n  - name: small\n    model: {kind: linear}\n",
    );
    let out = super::common::bin()
        .args(["run", s.file.to_str().unwrap(), "--out"])
        .arg(&s.out)
        .args(["--devices", "cpu:1", "--quiet", "--no-report"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let mut by_name = std::collections::HashMap::new();
    for e in std::fs::read_dir(s.dir().join("trials")).unwrap() {
        let id = e.unwrap().file_name().to_string_lossy().to_string();
        let r = result_of(&s, &id);
        by_name.insert(r["name"].as_str().unwrap().to_string(), r);
    }
    let huge = &by_name["huge"];
    assert_eq!(huge["status"], "failed");
    let error = huge["error"].as_str().unwrap();
    assert!(error.starts_with("out of memory: "), "{error}");
    assert_eq!(by_name["small"]["status"], "ok");
}
