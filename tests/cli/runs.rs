//! Running sweeps on the scripted engine: every trial once, resume, concurrency and order,
//! failure isolation, the lock, `--fresh`, interrupts, and what `status` shows.

use super::common::{Sweep, scripted, scripted_bin};
use hypersweep::engine::scripted::Scripted;
use hypersweep::error::Error;
use hypersweep::trial::Status;
use std::sync::Arc;
use std::sync::atomic::Ordering;

const SIX: &str = "name: six\nfixed: {epochs: 2, data: {train_size: 100}}\ngrid:\n  optimizer.learning_rate: [0.1, 0.01, 0.001]\n  batch_size: [8, 16]\n";

fn batch_sizes(e: &Scripted) -> Vec<usize> {
    e.started
        .lock()
        .unwrap()
        .iter()
        .map(|c| c.batch_size)
        .collect()
}

#[test]
fn a_sweep_of_six_gives_six_results_and_resume_trains_nothing() {
    let s = Sweep::new(SIX);
    let e = scripted(0);
    assert_eq!(s.run(&e).failed, 0);
    assert_eq!(e.started_count(), 6);
    let trials: Vec<_> = std::fs::read_dir(s.dir().join("trials")).unwrap().collect();
    assert_eq!(trials.len(), 6);
    for t in trials {
        let t = t.unwrap().path();
        for f in ["config.json", "epochs.csv", "result.json"] {
            assert!(t.join(f).exists(), "{} lacks {f}", t.display());
        }
    }
    // Rerun: nothing trains. Add a grid value: only the new trials train.
    let e = scripted(0);
    s.run(&e);
    assert_eq!(e.started_count(), 0);
    s.rewrite(&SIX.replace("[8, 16]", "[8, 16, 32]"));
    let e = scripted(0);
    s.run(&e);
    assert_eq!(batch_sizes(&e), vec![32; 3]);
    // A changed fixed value changes ids: old results stay on disk but are not reused.
    s.rewrite(&SIX.replace("epochs: 2", "epochs: 3"));
    let e = scripted(0);
    s.run(&e);
    assert_eq!(e.started_count(), 6);
    assert_eq!(
        std::fs::read_dir(s.dir().join("trials")).unwrap().count(),
        15
    );
}

#[test]
fn concurrency_is_bounded_and_expensive_trials_start_first() {
    let s = Sweep::new("name: c\nfixed: {epochs: 2}\ngrid:\n  epochs: [1, 3, 2, 5, 4]\n");
    let e = scripted(30);
    s.run(&e);
    assert_eq!(e.max_running.load(Ordering::SeqCst), 2);
    let epochs: Vec<usize> = e.started.lock().unwrap().iter().map(|c| c.epochs).collect();
    // The two slots take the two longest trials first; which of the two records itself first
    // is a race between the slot threads.
    let mut first_two = epochs[..2].to_vec();
    first_two.sort_unstable();
    assert_eq!(first_two, [4, 5], "{epochs:?}");
}

#[test]
fn a_failing_or_panicking_trial_is_recorded_and_the_rest_go_on() {
    let s = Sweep::new(
        "name: f\nfixed: {epochs: 1}\ngrid:\n  optimizer.learning_rate: [0.5, 0.25, 0.1, 0.01]\n",
    );
    assert_eq!(s.run(&scripted(0)).failed, 2);
    let store = s.store();
    let (done, unreadable) = store.load_finished(&store.read_plan().unwrap());
    assert!(unreadable.is_empty());
    assert_eq!(done.len(), 4);
    let by = |lr: &str| {
        let f = done.iter().find(|f| f.trial.name.ends_with(lr)).unwrap();
        f.result.clone()
    };
    assert_eq!(by("=0.5").status, Status::Failed);
    assert_eq!(by("=0.5").error.as_deref(), Some("scripted failure"));
    assert_eq!(by("=0.25").status, Status::Failed);
    assert!(by("=0.25").error.unwrap().contains("scripted panic"));
    assert_eq!(by("=0.1").status, Status::Ok);
    // Failed trials are kept on a rerun unless asked, then retried.
    let e = scripted(0);
    s.run(&e);
    assert_eq!(e.started_count(), 0);
    let e = scripted(0);
    s.run_with(&e, |a| a.train.rerun_failed = true);
    assert_eq!(e.started_count(), 2);
    let md = std::fs::read_to_string(s.dir().join("report.md")).unwrap();
    assert!(md.contains("failed: scripted failure"), "{md}");
}

#[test]
fn fresh_is_refused_while_another_process_claims_a_trial_and_a_dead_claim_is_taken_over() {
    let s = Sweep::new("name: l\nfixed: {epochs: 1}\ngrid:\n  seed: [1, 2]\n");
    s.run(&scripted(0));
    let claims = s.dir().join("claims");
    std::fs::create_dir_all(&claims).unwrap();
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.dir().join("plan.json")).unwrap()).unwrap();
    let id = plan["trials"][0]["id"].as_str().unwrap().to_string();
    // pid 1 is alive on this host: a live claim of another process.
    let claim = |pid: u32| {
        serde_json::json!({"id": id, "name": "seed=1", "host": hypersweep::store::host_name(),
            "pid": pid, "device": "cpu", "started": 0})
        .to_string()
    };
    std::fs::write(claims.join(format!("{id}.1.json")), claim(1)).unwrap();
    let err = s.try_run(&scripted(0), |a| a.fresh = true).err().unwrap();
    assert!(matches!(err, Error::Locked { pid: 1, .. }), "{err}");
    assert_eq!(err.exit_code(), 1);
    assert_eq!(
        std::fs::read_dir(&s.out).unwrap().count(),
        1,
        "nothing moved"
    );
    // The trial claimed by a live process is left to it; the other is trained.
    std::fs::remove_dir_all(s.dir().join("trials")).unwrap();
    let e = scripted(0);
    s.run(&e);
    assert_eq!(e.started_count(), 1);
    // A claim whose process is gone is taken over.
    std::fs::write(claims.join(format!("{id}.1.json")), claim(999_999_999)).unwrap();
    let e = scripted(0);
    s.run(&e);
    assert_eq!(e.started_count(), 1);
    assert!(
        std::fs::read_dir(&claims).unwrap().next().is_none(),
        "claims released"
    );
}

#[test]
fn fresh_moves_old_results_aside() {
    let s = Sweep::new("name: fr\nfixed: {epochs: 1}\n");
    s.run(&scripted(0));
    // Three moves within a second or two: each to its own name (the second used to fail,
    // "Directory not empty", on the first one's name).
    for _ in 0..3 {
        let e = scripted(0);
        s.run_with(&e, |a| a.fresh = true);
        assert_eq!(e.started_count(), 1);
    }
    let names: Vec<String> = std::fs::read_dir(&s.out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    let aside = names.iter().filter(|n| n.starts_with("fr.old-")).count();
    assert_eq!(aside, 3, "{names:?}");
    // On a sweep never run, --fresh has nothing to move aside.
    let s = Sweep::new("name: new\nfixed: {epochs: 1}\n");
    s.run_with(&scripted(0), |a| a.fresh = true);
    assert_eq!(
        std::fs::read_dir(&s.out).unwrap().count(),
        1,
        "no empty .old directory"
    );
}

/// Runs the trials of `yaml` through the scheduler on one CPU slot with a scripted engine (10 ms
/// an epoch), every trial granted; returns the plan and the results.
fn on_one_cpu_slot(
    yaml: &str,
    cancel: &Arc<hypersweep::scheduler::Cancel>,
    on_event: impl FnMut(&hypersweep::events::SweepEvent),
) -> (hypersweep::plan::Plan, Vec<hypersweep::trial::TrialResult>) {
    use hypersweep::scheduler::{self, Slot};
    let spec = hypersweep::spec::Spec::parse("s.yaml", yaml).unwrap();
    let plan = hypersweep::plan::expand(&spec).unwrap();
    let slot = Slot {
        device: hypersweep::engine::Device::Cpu,
        threads: 1,
        share: None,
    };
    let trials = plan.trials.iter().map(|t| (vec![t.clone()], 1.0)).collect();
    let engine: Arc<dyn hypersweep::engine::Engine> = scripted(10);
    let always = scheduler::Hooks::claim(Arc::new(|_, _| true));
    let results = scheduler::run(trials, &engine, &[slot], cancel, &always, on_event);
    (plan, results)
}

#[test]
fn interrupts_stop_new_trials_then_running_ones() {
    use hypersweep::events::SweepEvent;
    use hypersweep::scheduler::Cancel;
    let cancel = Arc::new(Cancel::default());
    let c = cancel.clone();
    let mut presses = 0;
    let yaml = "name: i\nfixed: {epochs: 50}\ngrid:\n  seed: [1, 2, 3, 4]\n";
    let (plan, results) = on_one_cpu_slot(yaml, &cancel, |ev| {
        if let SweepEvent::TrialEpoch { row, .. } = ev
            && (row.epoch == 3 || row.epoch == 4)
            && presses < 2
        {
            presses += 1;
            c.press();
        }
    });
    // One slot: the first trial was running; the first press kept others from starting, the
    // second interrupted the running one.
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].status, Status::Interrupted);
    assert!(results[0].epochs_run < 50);
    assert_eq!(results[0].id, plan.trials[0].id);
}

#[test]
fn the_binary_runs_resumes_and_reports_status() {
    let s = Sweep::new(SIX);
    let out = s.cli("run", &["--devices", "cpu:2"]).assert().success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(text.contains("6 to run"), "{text}");
    let out = s.cli("run", &[]).assert().success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(text.contains("6 already done, 0 to run"), "{text}");
    let st = scripted_bin()
        .args(["status", s.dir().to_str().unwrap()])
        .assert()
        .success();
    let st = String::from_utf8_lossy(&st.get_output().stdout).to_string();
    assert!(st.contains("ok             6"), "{st}");
    assert!(st.contains("best so far"), "{st}");
    // A run that ended cleanly is not reported as gone, and no time is negative.
    assert!(
        !st.contains("process is gone") && !st.contains("in progress"),
        "{st}"
    );
}

#[test]
fn status_counts_interrupted_trials_as_remaining() {
    let s = Sweep::new(SIX);
    s.cli("run", &["--quiet", "--no-report"]).assert().success();
    // One trial was stopped by Ctrl-C: a rerun trains it again, so it remains.
    let info = s.store().read_plan().unwrap();
    let result = s
        .dir()
        .join("trials")
        .join(info.trials[0].id.as_str())
        .join("result.json");
    let text = std::fs::read_to_string(&result).unwrap();
    std::fs::write(
        &result,
        text.replace("\"status\": \"ok\"", "\"status\": \"interrupted\""),
    )
    .unwrap();
    let st = scripted_bin()
        .args(["status", s.dir().to_str().unwrap()])
        .assert()
        .success();
    let st = String::from_utf8_lossy(&st.get_output().stdout).to_string();
    assert!(st.contains("interrupted    1"), "{st}");
    assert!(st.contains("remaining      1 (0 running now)"), "{st}");
}

#[test]
fn a_failing_trial_exits_3_and_the_rest_are_saved() {
    let s =
        Sweep::new("name: x3\nfixed: {epochs: 1}\ngrid:\n  optimizer.learning_rate: [0.5, 0.1]\n");
    let out = s.cli("run", &["--quiet"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 trial(s) failed"));
    assert_eq!(
        std::fs::read_dir(s.dir().join("trials")).unwrap().count(),
        2
    );
}

#[test]
fn report_and_status_on_a_non_results_directory_are_user_errors() {
    let d = tempfile::tempdir().unwrap();
    for cmd in ["report", "status"] {
        let out = scripted_bin()
            .args([cmd, d.path().to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{cmd}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("not a results directory"), "{cmd}: {err}");
    }
}

#[test]
fn a_trial_that_does_not_stop_is_abandoned_after_the_grace_and_recorded_interrupted() {
    use hypersweep::events::SweepEvent;
    use hypersweep::scheduler::Cancel;
    let cancel = Arc::new(Cancel {
        grace: std::time::Duration::from_millis(300),
        ..Cancel::default()
    });
    let c = cancel.clone();
    let t0 = std::time::Instant::now();
    let yaml = "name: s\nfixed: {epochs: 3, optimizer: {kind: sgd, learning_rate: 0.125}}\n";
    let (_, results) = on_one_cpu_slot(yaml, &cancel, |ev| {
        if let SweepEvent::TrialStarted { .. } = ev {
            c.stop_all();
        }
    });
    // The stuck trial sleeps a minute; the run gave up on it after the grace.
    assert!(t0.elapsed().as_secs() < 10, "{:?}", t0.elapsed());
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].status, Status::Interrupted);
    assert!(
        results[0].error.as_deref().unwrap().contains("abandoned"),
        "{:?}",
        results[0]
    );
}

/// Two CPU slots sharing 4 cores: while both trials run each has 2 threads; once the short one
/// ends (3 epochs of 100 ms), the long one gets all 4 from its next epoch on. With `--threads` (no share) a trial
/// keeps its threads.
#[test]
fn threads_follow_the_work_when_a_sweep_tail_leaves_cores_free() {
    use hypersweep::cores::CoreShare;
    use hypersweep::scheduler::{self, Slot};
    let spec = hypersweep::spec::Spec::parse(
        "s.yaml",
        "name: tail\nfixed: {data: {train_size: 100}}\ngrid:\n  epochs: [3, 8]\n",
    )
    .unwrap();
    let plan = hypersweep::plan::expand(&spec).unwrap();
    let threads_by_epoch = |share: Option<Arc<CoreShare>>| {
        let slot = Slot {
            device: hypersweep::engine::Device::Cpu,
            threads: 1,
            share,
        };
        let trials = plan.trials.iter().map(|t| (vec![t.clone()], 1.0)).collect();
        let engine: Arc<dyn hypersweep::engine::Engine> = scripted(100);
        let always = scheduler::Hooks::claim(Arc::new(|_, _| true));
        let cancel = Arc::new(scheduler::Cancel::default());
        let results = scheduler::run(
            trials,
            &engine,
            &[slot.clone(), slot],
            &cancel,
            &always,
            |_| {},
        );
        let long = results
            .iter()
            .find(|r| r.epochs.len() == 8)
            .expect("the long trial");
        long.epochs
            .iter()
            .map(|e| e.threads.unwrap())
            .collect::<Vec<_>>()
    };
    let shared = threads_by_epoch(Some(CoreShare::new(4)));
    assert_eq!(shared[0], 2, "two trials running share 4 cores: {shared:?}");
    assert_eq!(
        shared[7], 4,
        "alone at the end, the trial has every core: {shared:?}"
    );
    assert_eq!(threads_by_epoch(None), vec![1; 8]);
}

/// A claim that cannot be read yet (being written, or an empty file a full disk left) holds its
/// trial for a few seconds: the run says so, rather than blaming a holder that never was.
#[test]
fn a_trial_behind_an_unreadable_claim_is_named_as_such() {
    let s = Sweep::new("name: u\nfixed: {epochs: 1}\ngrid:\n  seed: [1, 2]\n");
    let run = || s.cli("run", &["--quiet", "--no-report"]).output().unwrap();
    assert!(run().status.success());
    std::fs::remove_dir_all(s.dir().join("trials")).unwrap();
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.dir().join("plan.json")).unwrap()).unwrap();
    let id = plan["trials"][0]["id"].as_str().unwrap().to_string();
    std::fs::create_dir_all(s.dir().join("claims")).unwrap();
    std::fs::write(s.dir().join(format!("claims/{id}.1.json")), "").unwrap();
    let out = run();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("1 trial not run: its claim cannot be read yet") && err.contains("seed=1"),
        "{err}"
    );
}
