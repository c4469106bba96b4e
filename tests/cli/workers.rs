//! Several processes on one sweep (issue #16): `run`s started together and `worker`s share the
//! trials through claims in the results directory; each trial is trained exactly once, a killed
//! worker's trial is taken over, and `status` shows who trains what.

use super::common::{Sweep, finished_per_trial, results_with_status, scripted_bin};
use std::time::{Duration, Instant};

/// The number in "N trained" of a `--quiet` run's line.
fn trained(stdout: &[u8]) -> usize {
    String::from_utf8_lossy(stdout)
        .split(": ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn ok_results(s: &Sweep) -> usize {
    results_with_status(s, "ok")
}

#[test]
fn four_runs_started_together_train_twelve_trials_once_each() {
    let s = Sweep::new(
        "name: three\nfixed: {epochs: 2}\ngrid:\n  seed: [1, 2, 3, 4, 5, 6]\n  batch_size: [8, 16]\n",
    );
    for round in 0..10 {
        let _ = std::fs::remove_dir_all(&s.out);
        let procs = [
            s.spawn_scripted_run(5),
            s.spawn_scripted_run(5),
            s.spawn_scripted_run(5),
            s.spawn_scripted_run(5),
        ];
        let mut total = 0;
        for p in procs {
            let o = p.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            // A run that ends while others still train says who holds what, and exits 4.
            match o.status.code() {
                Some(0) => {}
                Some(4) => assert!(err.contains("held by pid"), "round {round}: {err}"),
                code => panic!("round {round}: exit {code:?}: {err}"),
            }
            total += trained(&o.stdout);
        }
        assert_eq!(
            total, 12,
            "round {round}: trials trained {total} times in all"
        );
        assert_eq!(ok_results(&s), 12, "round {round}");
        let claims = std::fs::read_dir(s.dir().join("claims")).unwrap().count();
        assert_eq!(claims, 0, "round {round}: every claim released");
    }
}

/// Waits until some trial of `s` is claimed; returns the claim file's text.
fn wait_for_claim(s: &Sweep) -> String {
    let t0 = Instant::now();
    loop {
        let found = std::fs::read_dir(s.dir().join("claims"))
            .into_iter()
            .flatten()
            .flatten()
            .find_map(|e| {
                std::fs::read_to_string(e.path())
                    .ok()
                    .filter(|t| !t.is_empty())
            });
        if let Some(t) = found {
            return t;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "no claim appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_worker_takes_over_the_trial_of_a_killed_one_and_status_shows_claims() {
    let s = Sweep::new("name: takeover\nfixed: {epochs: 3}\ngrid:\n  seed: [1, 2, 3, 4]\n");
    let mut first = s.spawn_scripted_run(300);
    let claim = wait_for_claim(&s);
    assert!(
        claim.contains(&format!("\"pid\":{}", first.id())),
        "{claim}"
    );
    let status = scripted_bin()
        .args(["status", s.dir().to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("running: seed=") && text.contains(&format!("pid {}", first.id())),
        "{text}"
    );
    first.kill().unwrap();
    first.wait().unwrap();
    let done_before = ok_results(&s);
    let w = s.spawn_scripted_worker(1).wait_with_output().unwrap();
    assert_eq!(
        w.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&w.stderr)
    );
    assert_eq!(trained(&w.stdout), 4 - done_before);
    assert_eq!(ok_results(&s), 4);
    // Nothing left: a worker exits 0 at once.
    let w = s.spawn_scripted_worker(1).wait_with_output().unwrap();
    assert_eq!(w.status.code(), Some(0));
    assert_eq!(trained(&w.stdout), 0);
}

/// A `run` beside one that is killed (kill -9) part-way trains the killed one's unfinished
/// trial too, once its own queue is done, though it passed that trial over while its holder
/// lived: 12 trials, 12 results, none finished twice, no claim left.
#[test]
fn a_run_beside_a_killed_one_trains_what_that_one_left() {
    let s = Sweep::new(
        "name: beside\nfixed: {epochs: 3}\ngrid:\n  seed: [1, 2, 3, 4, 5, 6]\n  batch_size: [8, 16]\n",
    );
    for round in 0..5 {
        let _ = std::fs::remove_dir_all(&s.out);
        let survivor = s.spawn_scripted_run(40);
        let mut killed = s.spawn_scripted_run(40);
        let t0 = Instant::now();
        while ok_results(&s) < 4 {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "round {round}: no progress"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        killed.kill().unwrap();
        killed.wait().unwrap();
        let o = survivor.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "round {round}: {err}");
        assert_eq!(ok_results(&s), 12, "round {round}: every trial trained");
        // The killed one may die between writing a result and logging it: one line short.
        let finished = finished_per_trial(&s);
        assert!(finished.len() >= 11, "round {round}: {finished:?}");
        assert!(
            finished.values().all(|&n| n == 1),
            "round {round}: a trial finished twice: {finished:?}"
        );
        // Released, except one the killed run may have held between its trial's result and
        // the release: stale, and of a finished trial.
        for claim in std::fs::read_dir(s.dir().join("claims")).unwrap() {
            let name = claim.unwrap().file_name().to_string_lossy().to_string();
            let id = name.split('.').next().unwrap();
            let result = s.dir().join("trials").join(id).join("result.json");
            assert!(result.is_file(), "round {round}: claim {name} left");
        }
    }
}

/// A `run` that finds every trial held by another process, none finished yet, has nothing to
/// train or report: it says which process holds them and exits 4, the sweep not complete (it
/// exited 0 saying nothing of them).
#[test]
fn a_run_with_every_trial_held_elsewhere_names_the_holder_and_exits_4() {
    let s = Sweep::new("name: held\nfixed: {epochs: 3}\ngrid:\n  seed: [1, 2]\n");
    let first = s.spawn_scripted(300, &["--devices", "cpu:2", "--quiet", "--no-report"]);
    let t0 = Instant::now();
    while std::fs::read_dir(s.dir().join("claims")).map_or(0, Iterator::count) < 2 {
        assert!(t0.elapsed() < Duration::from_secs(20), "no claims appeared");
        std::thread::sleep(Duration::from_millis(10));
    }
    let second = s
        .spawn_scripted(300, &["--quiet"])
        .wait_with_output()
        .unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(4), "{err}");
    let holder = format!("2 trials held by pid {} on ", first.id());
    assert!(err.contains(&holder), "{err}");
    assert!(
        err.contains("were not run by this process: `seed=1`, `seed=2`"),
        "{err}"
    );
    assert!(err.contains("the sweep is not complete"), "{err}");
    assert!(
        err.contains("no report yet: no trial has finished"),
        "{err}"
    );
    assert_eq!(trained(&second.stdout), 0);
    assert_eq!(first.wait_with_output().unwrap().status.code(), Some(0));
    assert_eq!(ok_results(&s), 2);
}

/// `hypersweep run` of `s` in a container of its own: a new pid namespace, where it is pid 1
/// (`--kill-child`: killing the container's `unshare` kills the run). None where this machine
/// cannot make one.
fn run_in_container(s: &Sweep, epoch_ms: u64) -> Option<std::process::Child> {
    let can = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .status()
        .is_ok_and(|st| st.success());
    if !can {
        return None;
    }
    let child = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "--kill-child"])
        .arg(assert_cmd::cargo::cargo_bin("hypersweep"))
        .args(["run", s.file.to_str().unwrap()])
        .args(["--out", s.out.to_str().unwrap()])
        .args(["--devices", "cpu:1", "--quiet", "--no-report"])
        .env("HYPERSWEEP_ENGINE", "scripted")
        .env("HYPERSWEEP_SCRIPTED_EPOCH_MS", epoch_ms.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    Some(child)
}

/// `hypersweep run` in a container (pid 1 there), killed with its container part-way and
/// started again in a new one: pid 1 again, alive, but not the process that wrote the claim.
/// The trial trains (it was `not run` on every rerun, exit 0).
#[test]
fn a_restarted_container_trains_the_trial_its_killed_pid_1_held() {
    let s = Sweep::new("name: pid1\nfixed: {epochs: 3}\ngrid:\n  seed: [1]\n");
    let Some(mut first) = run_in_container(&s, 2000) else {
        eprintln!("SKIPPED: this machine cannot make a pid namespace (unshare --pid)");
        return;
    };
    let claim = wait_for_claim(&s);
    assert!(claim.contains("\"pid\":1,"), "{claim}");
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(ok_results(&s), 0, "killed mid-trial");
    let again = run_in_container(&s, 1).unwrap().wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(0), "{err}");
    assert_eq!(trained(&again.stdout), 1, "{err}");
    assert_eq!(ok_results(&s), 1);
}

/// A full disk (a 2 MB tmpfs in a mount namespace of its own) stops the run with an error that
/// says so; once space is freed, the rerun trains every trial. Claims whose write failed had
/// stayed behind, empty, and the rerun printed their trials `not run` and exited 0.
#[test]
fn after_a_full_disk_is_freed_the_rerun_trains_every_trial() {
    let s = Sweep::new(
        "name: full\nfixed: {epochs: 1}\ngrid:\n  seed: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n  batch_size: [8, 16, 32, 64]\n",
    );
    let bin = assert_cmd::cargo::cargo_bin("hypersweep");
    let disk = s.tmp.path().join("disk");
    std::fs::create_dir_all(&disk).unwrap();
    let script = format!(
        "mount -t tmpfs -o size=2m tmpfs {disk} || exit 99
         head -c 1900000 /dev/zero > {disk}/filler
         {bin} run {file} --out {disk} --devices cpu:1 --quiet --no-report 2> {disk}/first.err
         echo first=$?; grep -o 'No space left on device' {disk}/first.err | head -1
         rm {disk}/filler
         {bin} run {file} --out {disk} --devices cpu:1 --quiet --no-report; echo second=$?
         echo ok=$(grep -l '\"status\": \"ok\"' {disk}/full/trials/*/result.json | wc -l)
         echo claims=$(ls {disk}/full/claims | wc -l)",
        disk = disk.display(),
        bin = bin.display(),
        file = s.file.display()
    );
    let o = std::process::Command::new("unshare")
        .args(["--mount", "sh", "-c", &script])
        .env("HYPERSWEEP_ENGINE", "scripted")
        .env("HYPERSWEEP_SCRIPTED_EPOCH_MS", "1")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    if o.status.code() == Some(99) || !o.status.success() && out.is_empty() {
        eprintln!(
            "SKIPPED: no tmpfs in a mount namespace here: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        return;
    }
    assert!(out.contains("first=1\nNo space left on device"), "{out}");
    assert!(out.contains("second=0"), "{out}");
    assert!(out.contains("ok=40"), "{out}");
    assert!(out.contains("claims=0"), "{out}");
}

/// `hypersweep run … | head -1`: once the reader has gone, nothing more is printed and the
/// sweep goes on to its end (println! panicked: exit 101 after one trial, its claim left).
#[test]
fn a_closed_pipe_stops_the_printing_not_the_sweep() {
    let s = Sweep::new("name: pipe\nfixed: {epochs: 2}\ngrid:\n  seed: [1, 2, 3, 4, 5, 6]\n");
    let script = format!(
        "{} run {} --out {} --devices cpu:1 2>&1 | head -1; echo \"exit=${{PIPESTATUS[0]}}\"",
        assert_cmd::cargo::cargo_bin("hypersweep").display(),
        s.file.display(),
        s.out.display()
    );
    let o = std::process::Command::new("bash")
        .args(["-c", &script])
        .env("HYPERSWEEP_ENGINE", "scripted")
        .env("HYPERSWEEP_SCRIPTED_EPOCH_MS", "30")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.ends_with("exit=0\n"), "{out}");
    assert_eq!(ok_results(&s), 6, "{out}");
    let claims = std::fs::read_dir(s.dir().join("claims")).unwrap().count();
    assert_eq!(claims, 0, "every claim released");
}

#[test]
fn a_run_of_a_different_plan_is_refused_while_another_trains_there() {
    let s = Sweep::new("name: differ\nfixed: {epochs: 3}\ngrid:\n  seed: [1, 2]\n");
    let mut first = s.spawn_scripted_run(300);
    wait_for_claim(&s);
    s.rewrite("name: differ\nfixed: {epochs: 3}\ngrid:\n  seed: [1, 2, 9]\n");
    let out = s.cli("run", &["--quiet"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("different plan") && err.contains("only in this file: `seed=9`"),
        "{err}"
    );
    first.kill().unwrap();
    first.wait().unwrap();
    // With nobody working there, the edited file replaces the plan and keeps what is done.
    let out = s.cli("run", &["--quiet", "--no-report"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(ok_results(&s), 3);
}
