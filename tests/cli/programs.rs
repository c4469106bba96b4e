//! Program trials with real child processes (examples/toy/toy.py, standard library Python):
//! metrics from the file and from stdout, failures (exit code, signal, timeout, NaN), a stop
//! that leaves no orphan, resume, and the environment a trial is given.

use crate::common::{Sweep, bin, repo};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

/// A program sweep of the toy with `rest` appended (fixed, grid, trials…).
fn toy_sweep(name: &str, program_extra: &str, rest: &str) -> Sweep {
    let toy = repo("examples/toy/toy.py");
    Sweep::new(&format!(
        "name: {name}\nprogram:\n  command: [python3, {}, --lr, \"{{lr}}\", --epochs, \"{{epochs}}\", --mode, \"{{mode}}\"]\n  metric: loss\n{program_extra}{rest}",
        toy.display()
    ))
}

fn run(s: &Sweep, extra: &[&str]) -> std::process::Output {
    bin()
        .args(["run", s.file.to_str().unwrap(), "--out"])
        .arg(&s.out)
        .args(["--devices", "cpu:2", "--quiet"])
        .args(extra)
        .output()
        .unwrap()
}

fn result(s: &Sweep, name: &str) -> Value {
    let plan: Value =
        serde_json::from_str(&std::fs::read_to_string(s.dir().join("plan.json")).unwrap()).unwrap();
    let id = plan["trials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no trial {name}"))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = s.dir().join("trials").join(id).join("result.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn trial_file(s: &Sweep, name: &str, file: &str) -> String {
    let id = result(s, name)["id"].as_str().unwrap().to_string();
    std::fs::read_to_string(s.dir().join("trials").join(id).join(file)).unwrap()
}

#[test]
fn metrics_come_from_the_file_or_from_stdout_and_feed_the_report() {
    let s = toy_sweep(
        "toy-metrics",
        "",
        "fixed: {epochs: 3}\ngrid:\n  mode: [file, stdout, both]\n  lr: [0.05, 0.1]\n",
    );
    let out = run(&s, &[]);
    assert!(out.status.success(), "{out:?}");
    for mode in ["file", "stdout", "both"] {
        for lr in [0.05, 0.1] {
            let r = result(&s, &format!("mode={mode},lr={lr}"));
            assert_eq!(r["status"], "ok", "{r}");
            let want = (lr - 0.1f64).powi(2) + 1.0 / 3.0;
            let loss = r["metrics"]["loss"].as_f64().unwrap();
            assert!((loss - want).abs() < 1e-9, "{mode} {lr}: {loss} vs {want}");
            assert_eq!(r["epochs_run"], 3);
            assert_eq!(r["exit_code"], 0);
        }
    }
    let both = result(&s, "mode=both,lr=0.1");
    assert!(both["notes"].to_string().contains("ignored"), "{both}");
    let epochs = trial_file(&s, "mode=stdout,lr=0.1", "epochs.csv");
    assert_eq!(
        epochs.lines().next(),
        Some("epoch,accuracy,loss"),
        "{epochs}"
    );
    assert_eq!(epochs.lines().count(), 4, "{epochs}");
    let stdout = trial_file(&s, "mode=stdout,lr=0.1", "stdout.log");
    assert!(stdout.contains("epoch=3"), "{stdout}");
    // The report ranks by the program's metric, smaller first for a loss.
    let summary = std::fs::read_to_string(s.dir().join("summary.csv")).unwrap();
    assert!(
        summary.lines().next().unwrap().contains(",loss"),
        "{summary}"
    );
    let report = std::fs::read_to_string(s.dir().join("report.md")).unwrap();
    assert!(report.contains("Best trial"), "{report}");
    let best = report.split("Best trial").nth(1).unwrap();
    assert!(best.contains("lr=0.1"), "{best}");
}

#[test]
fn failures_keep_exit_code_stderr_signal_and_timeout() {
    let s = toy_sweep(
        "toy-failures",
        "  timeout: 2s\n  grace: 1s\n",
        "fixed: {epochs: 3, lr: 0.1}\ngrid:\n  mode: [fail, sigkill, sleep, \"nan\"]\n",
    );
    let t0 = Instant::now();
    let out = run(&s, &[]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(t0.elapsed() < Duration::from_secs(30));
    let fail = result(&s, "mode=fail");
    assert_eq!(fail["status"], "failed");
    assert_eq!(fail["exit_code"], 3);
    let err = fail["error"].as_str().unwrap();
    assert!(
        err.starts_with("exit code 3") && err.contains("ValueError: the toy failed"),
        "{err}"
    );
    let killed = result(&s, "mode=sigkill");
    assert_eq!(killed["status"], "failed");
    assert!(
        killed["error"].as_str().unwrap().contains("SIGKILL"),
        "{killed}"
    );
    let slow = result(&s, "mode=sleep");
    assert_eq!(slow["status"], "failed");
    assert!(
        slow["error"].as_str().unwrap().starts_with("timeout"),
        "{slow}"
    );
    assert_eq!(
        slow["metrics"]["epoch"].as_f64(),
        Some(1.0),
        "rows before the timeout are kept"
    );
    assert_eq!(result(&s, "mode=nan")["status"], "diverged");
}

fn alive(pid: u32) -> bool {
    // A zombie has exited; only its parent has not read its status yet.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

fn wait_for(path: &Path, limit: Duration) -> String {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if let Ok(t) = std::fs::read_to_string(path)
            && t.ends_with('\n')
        {
            return t;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{} did not appear", path.display());
}

/// Starts `hypersweep run` of `s` on one CPU slot in the background.
fn spawn_run(s: &Sweep) -> std::process::Child {
    std::process::Command::new(assert_cmd::cargo::cargo_bin("hypersweep"))
        .args(["run", s.file.to_str().unwrap(), "--out"])
        .arg(&s.out)
        .args(["--devices", "cpu:1", "--quiet", "--no-report"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// The pids the running toy wrote to `pids` in its trial directory, once it wrote them.
fn toy_pids(s: &Sweep) -> Vec<u32> {
    let trials = s.dir().join("trials");
    let t0 = Instant::now();
    let pids_file = loop {
        let found = std::fs::read_dir(&trials)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("pids"))
            .find(|p| p.exists());
        if let Some(p) = found {
            break p;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the toy never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let pids: Vec<u32> = wait_for(&pids_file, Duration::from_secs(10))
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(pids.iter().all(|p| alive(*p)));
    pids
}

fn signal(pid: u32, sig: i32) {
    unsafe { libc::kill(pid as i32, sig) };
}

/// Waits for the run to end, within `limit`, and gives its exit code; then none of `pids`
/// may be left.
fn ended_within(child: &mut std::process::Child, limit: Duration, pids: &[u32]) -> Option<i32> {
    let t0 = Instant::now();
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code();
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            panic!("the run did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(200));
    for p in pids {
        assert!(!alive(*p), "process {p} of the trial outlived hypersweep");
    }
    code
}

#[test]
fn a_stop_kills_the_whole_process_group_even_when_it_ignores_sigterm() {
    let s = toy_sweep(
        "toy-stop",
        "  grace: 1s\n",
        "fixed: {epochs: 3, lr: 0.1, mode: stubborn}\n",
    );
    let mut child = spawn_run(&s);
    let pids = toy_pids(&s);
    // Two interrupts: the first stops new trials, the second the running one.
    for _ in 0..2 {
        signal(child.id(), libc::SIGINT);
        std::thread::sleep(Duration::from_millis(300));
    }
    let code = ended_within(&mut child, Duration::from_secs(10), &pids);
    assert_eq!(code, Some(130));
    let r = result(&s, "toy-stop");
    assert_eq!(r["status"], "interrupted", "{r}");
}

/// A long grace period is for the program's sake, not the user's: one more SIGTERM (or a third
/// Ctrl-C) while the group is given its grace kills it at once.
#[test]
fn one_more_interrupt_during_the_grace_period_kills_at_once() {
    let s = toy_sweep(
        "toy-hurry",
        "  grace: 60s\n",
        "fixed: {epochs: 3, lr: 0.1, mode: stubborn}\n",
    );
    let mut child = spawn_run(&s);
    let pids = toy_pids(&s);
    signal(child.id(), libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        alive(pids[0]),
        "the toy ignores SIGTERM: it waits out its grace"
    );
    signal(child.id(), libc::SIGTERM);
    let code = ended_within(&mut child, Duration::from_secs(8), &pids);
    assert_eq!(code, Some(130));
    assert_eq!(result(&s, "toy-hurry")["status"], "interrupted");
}

/// Slurm, a terminal's hang-up and `kill -- -PGID` signal every process at once: a program that
/// dies of the signal before hypersweep stops it was interrupted with the run, not failed, and
/// the next run trains it again.
#[test]
fn a_program_killed_by_the_signal_that_stops_the_run_is_interrupted_not_failed() {
    for (sig, name) in [(libc::SIGTERM, "toy-term"), (libc::SIGUSR1, "toy-usr1")] {
        let s = toy_sweep(name, "", "fixed: {epochs: 2, lr: 0.1, mode: sleep}\n");
        let mut child = spawn_run(&s);
        let pids = toy_pids(&s);
        // The program goes first, as when its handler is quicker than ours.
        signal(pids[0], sig);
        std::thread::sleep(Duration::from_millis(300));
        signal(child.id(), sig);
        let code = ended_within(&mut child, Duration::from_secs(10), &pids);
        assert_eq!(code, Some(130), "{name}");
        let r = result(&s, name);
        assert_eq!(r["status"], "interrupted", "{name}: {r}");
        let status = bin()
            .args(["status", s.dir().to_str().unwrap()])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&status.stdout);
        assert!(
            text.contains("remaining      1 (0 running now)"),
            "{name}: {text}"
        );
    }
    // Killed by SIGTERM with nobody stopping the run: that is the program's failure.
    let s = toy_sweep(
        "toy-alone",
        "",
        "fixed: {epochs: 2, lr: 0.1, mode: sleep}\n",
    );
    let mut child = spawn_run(&s);
    let pids = toy_pids(&s);
    signal(pids[0], libc::SIGTERM);
    let code = ended_within(&mut child, Duration::from_secs(15), &pids);
    assert_eq!(code, Some(3));
    let r = result(&s, "toy-alone");
    assert_eq!(r["status"], "failed", "{r}");
    assert!(r["error"].as_str().unwrap().contains("SIGTERM"), "{r}");
}

/// Closing the terminal (SIGHUP) stops the run as SIGTERM does: the running trial is recorded
/// interrupted and its program does not outlive it.
#[test]
fn a_hang_up_stops_the_run_like_sigterm() {
    let s = toy_sweep("toy-hup", "", "fixed: {epochs: 2, lr: 0.1, mode: sleep}\n");
    let mut child = spawn_run(&s);
    let pids = toy_pids(&s);
    signal(child.id(), libc::SIGHUP);
    let code = ended_within(&mut child, Duration::from_secs(10), &pids);
    assert_eq!(code, Some(130));
    assert_eq!(result(&s, "toy-hup")["status"], "interrupted");
}

#[test]
fn resume_skips_finished_program_trials() {
    let s = toy_sweep(
        "toy-resume",
        "",
        "fixed: {epochs: 2, mode: file}\ngrid:\n  lr: [0.1, 0.2]\n",
    );
    let out = run(&s, &["--no-report"]);
    assert!(out.status.success(), "{out:?}");
    let first = trial_file(&s, "lr=0.1", "metrics.jsonl");
    let out = run(&s, &["--no-report"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("0 trained (0 failed), 2 already done"),
        "{text}"
    );
    assert_eq!(trial_file(&s, "lr=0.1", "metrics.jsonl"), first);
}

#[test]
fn a_trial_gets_its_directory_params_threads_and_gpu() {
    let s = toy_sweep(
        "toy-env",
        "  env: {TOY_EXTRA: \"yes\"}\n",
        "fixed: {epochs: 1, mode: env, lr: 0.1, model: {width: 8}}\ngrid:\n  seed: [1, 2, 3, 4]\n",
    );
    let out = bin()
        .args(["run", s.file.to_str().unwrap(), "--out"])
        .arg(&s.out)
        .args(["--devices", "cuda:0,cuda:1", "--quiet", "--no-report"])
        .env("HYPERSWEEP_TEST_FAKE_GPUS", "2")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut gpus = vec![];
    for seed in 1..=4 {
        let name = format!("seed={seed}");
        let env: Value = serde_json::from_str(&trial_file(&s, &name, "env.json")).unwrap();
        gpus.push(env["CUDA_VISIBLE_DEVICES"].as_str().unwrap().to_string());
        let id = result(&s, &name)["id"].as_str().unwrap().to_string();
        assert_eq!(env["HYPERSWEEP_TRIAL_ID"], id.as_str());
        assert!(env["HYPERSWEEP_TRIAL_DIR"].as_str().unwrap().ends_with(&id));
        assert_eq!(env["TOY_EXTRA"], "yes");
        let threads: usize = env["OMP_NUM_THREADS"].as_str().unwrap().parse().unwrap();
        assert!(threads >= 1);
        let cwd = std::fs::canonicalize(s.tmp.path()).unwrap();
        assert_eq!(env["cwd"], cwd.to_str().unwrap());
        let params: Value = serde_json::from_str(
            &std::fs::read_to_string(env["HYPERSWEEP_PARAMS"].as_str().unwrap()).unwrap(),
        )
        .unwrap();
        assert_eq!(params["seed"], seed);
        assert_eq!(params["model"]["width"], 8);
    }
    gpus.sort();
    gpus.dedup();
    for g in &gpus {
        assert!(g == "0" || g == "1", "{gpus:?}");
    }
    // On CPU the variable is set and empty: a program must not pick a GPU by itself.
    let out = run(&s, &["--no-report", "--fresh"]);
    assert!(out.status.success(), "{out:?}");
    let env: Value = serde_json::from_str(&trial_file(&s, "seed=1", "env.json")).unwrap();
    assert_eq!(env["CUDA_VISIBLE_DEVICES"], "");
}

#[test]
fn placeholders_and_sections_are_checked_before_anything_runs() {
    let s = toy_sweep("toy-bad", "", "fixed: {epochs: 1, mode: file}\n");
    // `{lr}` is used by the command but no trial sets it.
    let out = bin()
        .args(["validate", s.file.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("sweep.yaml:3:") && err.contains("unknown placeholder `{lr}`"),
        "{err}"
    );
    assert!(
        err.contains("{epochs}") && err.contains("{trial_dir}"),
        "{err}"
    );
    s.rewrite(&format!(
        "{}data: {{source: mnist}}\n",
        std::fs::read_to_string(&s.file).unwrap()
    ));
    let out = bin()
        .args(["validate", s.file.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`data`") && err.contains("program"), "{err}");
}

/// A node without the sweep file's directory (another mount) must not spend every trial on a
/// misleading "cannot start `python3`": the directory and the program are checked once, before
/// anything runs or is recorded.
#[test]
fn a_missing_directory_or_program_is_refused_before_any_trial_is_spent() {
    let tmp = tempfile::tempdir().unwrap();
    let mount = tmp.path().join("mount");
    std::fs::create_dir(&mount).unwrap();
    let out = tmp.path().join("results");
    let yaml = format!(
        "name: toy-mount\nprogram:\n  command: [python3, {}, --lr, \"{{lr}}\", --epochs, \"1\", --mode, file]\n  metric: loss\ngrid:\n  lr: [0.1, 0.2]\n",
        repo("examples/toy/toy.py").display()
    );
    let file = crate::common::write(&mount, "sweep.yaml", &yaml);
    let ran = bin()
        .args(["run", file.to_str().unwrap(), "--out"])
        .arg(&out)
        .args(["--quiet", "--no-report"])
        .output()
        .unwrap();
    assert!(ran.status.success(), "{ran:?}");
    // The trials are to do again, on a node where the sweep file's directory is not mounted.
    let dir = out.join("toy-mount");
    std::fs::remove_dir_all(dir.join("trials")).unwrap();
    std::fs::remove_dir_all(&mount).unwrap();
    let worker = bin().arg("worker").arg(&dir).output().unwrap();
    let err = String::from_utf8_lossy(&worker.stderr);
    assert_eq!(worker.status.code(), Some(1), "{err}");
    assert!(
        err.contains(mount.to_str().unwrap()) && err.contains("working directory"),
        "{err}"
    );
    assert!(!dir.join("trials").exists(), "no trial was spent");
    // A program that is not installed, named with the key, before a directory is made.
    let s = Sweep::new(
        "name: toy-absent\nprogram:\n  command: [no-such-program-xyz, \"{lr}\"]\ngrid:\n  lr: [0.1]\n",
    );
    let out = run(&s, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("program.command") && err.contains("no-such-program-xyz"),
        "{err}"
    );
    assert!(!s.dir().exists(), "nothing recorded");
    // A script that exists but cannot be executed: the same, before any trial.
    let script = crate::common::write(s.tmp.path(), "train.py", "print('hi')\n");
    s.rewrite(&format!(
        "name: toy-absent\nprogram:\n  command: [{}, \"{{lr}}\"]\ngrid:\n  lr: [0.1]\n",
        script.display()
    ));
    let out = run(&s, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("chmod +x"), "{err}");
    assert!(!s.dir().exists(), "nothing recorded");
}

/// The default results root is relative (`results/`), and the program runs in the sweep file's
/// directory: the paths it is given must be ones it can open from there.
#[test]
fn a_relative_results_root_gives_the_program_paths_it_can_open() {
    let tmp = tempfile::tempdir().unwrap();
    let sub = tmp.path().join("studies");
    std::fs::create_dir(&sub).unwrap();
    let yaml = format!(
        "name: toy-relative\nprogram:\n  command: [python3, {}, --lr, \"0.1\", --epochs, \"1\", --mode, \"{{mode}}\"]\n  metric: loss\ngrid:\n  mode: [file, env]\n",
        repo("examples/toy/toy.py").display()
    );
    crate::common::write(&sub, "sweep.yaml", &yaml);
    let out = bin()
        .current_dir(tmp.path())
        .args(["run", "studies/sweep.yaml", "--quiet", "--no-report"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let trials = tmp.path().join("results/toy-relative/trials");
    let env = std::fs::read_dir(&trials)
        .unwrap()
        .flatten()
        .map(|e| e.path().join("env.json"))
        .find(|p| p.exists())
        .expect("the env trial ran");
    let env: Value = serde_json::from_str(&std::fs::read_to_string(env).unwrap()).unwrap();
    for var in [
        "HYPERSWEEP_TRIAL_DIR",
        "HYPERSWEEP_METRICS",
        "HYPERSWEEP_PARAMS",
    ] {
        assert!(
            Path::new(env[var].as_str().unwrap()).is_absolute(),
            "{var}: {env}"
        );
    }
}

/// Per-step logging past the row cap, written in one burst larger than a read (16 MiB) just
/// before exit: the final values are the last row's, the stored curve is thinned and says so.
#[test]
fn a_burst_of_rows_past_the_cap_keeps_the_last_row_as_final() {
    let s = toy_sweep(
        "toy-burst",
        "  env: {TOY_STEPS: \"200000\"}\n",
        "fixed: {epochs: 1, lr: 0.1, mode: burst}\n",
    );
    let out = run(&s, &["--no-report"]);
    assert!(out.status.success(), "{out:?}");
    let r = result(&s, "toy-burst");
    assert_eq!(r["status"], "ok", "{r}");
    assert_eq!(
        r["metrics"]["step"].as_f64(),
        Some(199_999.0),
        "{}",
        r["notes"]
    );
    let notes = r["notes"].to_string();
    assert!(
        notes.contains("200000 metric rows") && notes.contains("one row in 2"),
        "{notes}"
    );
    assert!(!notes.contains("not JSON"), "{notes}");
    let rows = trial_file(&s, "toy-burst", "epochs.csv");
    let rows = rows.lines().count() - 1;
    assert!((50_000..=100_001).contains(&rows), "{rows} rows stored");
}

/// A program that rewrites its metrics file each epoch (`open(path, "w")`): with the last row
/// only, or with every row so far; either way each epoch is read once and the last is final.
#[test]
fn a_rewritten_metrics_file_is_read_version_by_version() {
    let s = toy_sweep(
        "toy-rewrite",
        "",
        "fixed: {epochs: 3, lr: 0.2}\ngrid:\n  mode: [rewrite, history]\n",
    );
    let out = run(&s, &["--no-report"]);
    assert!(out.status.success(), "{out:?}");
    for mode in ["rewrite", "history"] {
        let name = format!("mode={mode}");
        let r = result(&s, &name);
        assert_eq!(r["metrics"]["epoch"].as_f64(), Some(3.0), "{mode}: {r}");
        let want = (0.2f64 - 0.1).powi(2) + 1.0 / 3.0;
        assert!((r["metrics"]["loss"].as_f64().unwrap() - want).abs() < 1e-12);
        // A rewrite that repeats the rows before and adds one looks like an append, unless a
        // read falls between the truncation and the write: the note is there when it matters.
        let notes = r["notes"].to_string();
        assert!(!notes.contains("not JSON"), "{mode}: {notes}");
        assert!(
            mode == "history" || notes.contains("rewritten"),
            "{mode}: {notes}"
        );
        let epochs = trial_file(&s, &name, "epochs.csv");
        let firsts: Vec<&str> = epochs.lines().skip(1).map(|l| &l[..1]).collect();
        assert_eq!(firsts, ["1", "2", "3"], "{mode}: {epochs}");
    }
}

/// A program's own children stay in its group when hypersweep dies of SIGKILL (the program
/// dies with it): the next run ends them before it trains anything.
#[test]
fn what_a_killed_run_left_running_is_ended_by_the_next_run() {
    let s = toy_sweep(
        "toy-orphan",
        "  grace: 1s\n",
        "fixed: {epochs: 3, lr: 0.1, mode: stubborn}\n",
    );
    let mut first = spawn_run(&s);
    let pids = toy_pids(&s);
    signal(first.id(), libc::SIGKILL);
    first.wait().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(!alive(pids[0]), "the program dies with hypersweep");
    assert!(alive(pids[1]), "its child is left running by the kill");
    let mut second = spawn_run(&s);
    let t0 = Instant::now();
    while alive(pids[1]) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the next run left the child running"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for _ in 0..2 {
        signal(second.id(), libc::SIGINT);
        std::thread::sleep(Duration::from_millis(300));
    }
    ended_within(&mut second, Duration::from_secs(10), &[]);
}

/// An unmodified script that prints prose (Keras-style progress on stdout, tqdm redraws and,
/// after training, the test summary on stderr): `program.patterns` read its metrics, one row
/// per epoch, and a
/// pattern that never matched is a note on the trial. `hypersweep patterns` shows the same rows
/// from a saved log before anything runs.
#[test]
fn patterns_read_metrics_from_an_unmodified_scripts_prose() {
    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("prose.py");
    std::fs::write(
        &script,
        "import sys, time\nlr = float(sys.argv[1])\nfor e in range(1, 4):\n    print(f'Epoch {e}/3')\n    sys.stderr.write(' 50%|#    | 5/10\\r100%|##########| 10/10\\n')\n    print(f'1875/1875 [======] - 3s - loss: {lr / e:.4f} - val_accuracy: {0.5 + e / 10}')\ntime.sleep(0.3)\nsys.stderr.write('Test set: Average loss: 0.0330, Accuracy: 9890/10000 (99%)\\n')\n",
    )
    .unwrap();
    let s = Sweep::new(&format!(
        "name: prose\nprogram:\n  command: [python3, {}, \"{{lr}}\"]\n  metric: val_accuracy\n  goal: maximize\n  patterns:\n    epoch: \"^Epoch (\\\\d+)/\"\n    loss: \" - loss: ([0-9.e+-]+)\"\n    val_accuracy: \"val_accuracy: ([0-9.]+)\"\n    test_accuracy: \"Accuracy: \\\\d+/\\\\d+ \\\\((?P<value>\\\\d+)%\\\\)\"\n    lr_seen: \"lr=([0-9.]+)\"\ngrid:\n  lr: [0.5]\n",
        script.display()
    ));
    let out = run(&s, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = result(&s, "lr=0.5");
    assert_eq!(r["status"], "ok", "{r}");
    assert_eq!(r["metrics"]["val_accuracy"], 0.8, "{r}");
    assert_eq!(r["metrics"]["test_accuracy"], 99.0, "{r}");
    assert!(
        (r["metrics"]["loss"].as_f64().unwrap() - 0.5 / 3.0).abs() < 1e-3,
        "{r}"
    );
    let notes = r["notes"].to_string();
    assert!(notes.contains("`lr_seen` never matched"), "{notes}");
    let epochs = trial_file(&s, "lr=0.5", "epochs.csv");
    assert_eq!(epochs.lines().count(), 4, "one row per epoch:\n{epochs}");
    // The same rows from the saved log, before any run.
    let log = tmp.path().join("run.log");
    let printed = std::process::Command::new("python3")
        .args([script.to_str().unwrap(), "0.5"])
        .output()
        .unwrap();
    std::fs::write(&log, [printed.stdout, printed.stderr].concat()).unwrap();
    let shown = bin()
        .args([
            "patterns",
            s.file.to_str().unwrap(),
            "--log",
            log.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&shown.stdout);
    assert_eq!(shown.status.code(), Some(0), "{text}");
    assert!(text.starts_with("epoch"), "{text}");
    assert!(text.contains("3 rows"), "{text}");
    assert!(
        text.contains("pattern `val_accuracy`: matched 3 lines"),
        "{text}"
    );
    assert!(
        text.contains("warning: the pattern for `lr_seen` never matched"),
        "{text}"
    );
}

#[test]
fn a_bad_pattern_is_an_error_naming_its_key_and_line() {
    for (pattern, says) in [
        ("\"loss: [0-9.]+\"", "no group"),
        ("\"loss: ([0-9.]+\"", "not a valid"),
    ] {
        let s = Sweep::new(&format!(
            "name: bad\nprogram:\n  command: [python3, x.py]\n  patterns:\n    loss: {pattern}\nfixed: {{lr: 1}}\n"
        ));
        let out = bin()
            .args(["validate", s.file.to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains(":5:") && err.contains("program.patterns.loss") && err.contains(says),
            "{err}"
        );
    }
}

/// The checkpoint contract: a program that saves to `HYPERSWEEP_CHECKPOINT_DIR` and reads it
/// back on start goes on after its run is killed (kill -9); it is told `HYPERSWEEP_RESTARTS=1`,
/// the rows of its first attempt are kept, and each epoch is recorded once.
#[test]
fn a_program_following_the_checkpoint_contract_resumes_after_a_kill() {
    let s = toy_sweep(
        "toy-contract",
        "",
        "fixed: {epochs: 6, lr: 0.1, mode: resume}\n",
    );
    let text = std::fs::read_to_string(&s.file).unwrap();
    s.rewrite(&text.replace("\"{mode}\"]", "\"{mode}\", --epoch-sleep, \"0.4\"]"));
    let mut first = spawn_run(&s);
    let trials = s.dir().join("trials");
    let t0 = Instant::now();
    let saved = loop {
        let found = std::fs::read_dir(&trials)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("checkpoint/toy.json"))
            .find(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains("\"epoch\": 2")));
        if let Some(p) = found {
            break p;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "no epoch 2 saved");
        std::thread::sleep(Duration::from_millis(20));
    };
    signal(first.id(), libc::SIGKILL);
    first.wait().unwrap();
    let dir = saved.parent().unwrap().parent().unwrap().to_path_buf();
    assert!(!dir.join("result.json").exists());
    let out = run(&s, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("result.json")).unwrap()).unwrap();
    assert_eq!(
        (r["status"].as_str(), r["restarts"].as_u64()),
        (Some("ok"), Some(1))
    );
    let csv = std::fs::read_to_string(dir.join("epochs.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let epochs: Vec<&str> = rows.iter().map(|r| r[col("epoch")]).collect();
    assert_eq!(epochs, ["1", "2", "3", "4", "5", "6"], "{csv}");
    let restarts: Vec<&str> = rows.iter().map(|r| r[col("restarts")]).collect();
    assert_eq!(restarts[..2], ["0", "0"], "{csv}");
    assert!(restarts[3..].iter().all(|r| *r == "1"), "{csv}");
}
