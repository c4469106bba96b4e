//! Random search and early termination through the binary and the scripted engine: the plan
//! shows the sampled trials (the same ones every time, the first kept when `count` grows), weak
//! trials are pruned at a rung and stay pruned on resume, and program trials are stopped too.

use crate::common::{Sweep, bin, repo, results_with_status, scripted, scripted_bin, write};
use hypersweep::trial::Status;
use serde_json::Value;

const RANDOM: &str = "name: rnd\nmethod: random\ncount: 5\nsearch_seed: 11\nfixed: {epochs: 2, model: {kind: mlp, hidden: [8]}}\nspace:\n  optimizer.learning_rate: {distribution: log_uniform, min: 1.0e-4, max: 1.0e-1}\n  batch_size: {distribution: int_log_uniform, min: 16, max: 512}\n";

/// The id column of `hypersweep plan`.
fn plan_ids(s: &Sweep) -> Vec<String> {
    let out = scripted_bin()
        .args(["plan", s.file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("learning_rate") && text.contains("batch_size"),
        "{text}"
    );
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.len() == 12 && w.chars().all(|c| c.is_ascii_hexdigit()))
        .map(String::from)
        .collect()
}

#[test]
fn plan_shows_the_same_sampled_trials_and_a_larger_count_keeps_them() {
    let s = Sweep::new(RANDOM);
    let five = plan_ids(&s);
    assert_eq!(five.len(), 5);
    assert_eq!(plan_ids(&s), five);
    s.rewrite(&RANDOM.replace("count: 5", "count: 8"));
    let eight = plan_ids(&s);
    assert_eq!(eight.len(), 8);
    assert_eq!(eight[..5], five[..]);
    s.rewrite(&RANDOM.replace("search_seed: 11", "search_seed: 12"));
    assert_ne!(plan_ids(&s), five);
}

#[test]
fn bad_search_keys_exit_1_naming_file_key_and_line() {
    let s = Sweep::new(&RANDOM.replace("min: 1.0e-4", "min: 0.0"));
    let out = scripted_bin()
        .args(["validate", s.file.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for want in ["sweep.yaml:7:", "space.optimizer.learning_rate", "above 0"] {
        assert!(err.contains(want), "`{want}` missing from: {err}");
    }
}

/// Nine trials whose validation accuracy falls with their dropout (the scripted engine's
/// curve), sampled at random, hyperband rungs at epochs 1 and 3 of 9.
const PRUNED: &str = "name: prune\nmethod: random\ncount: 9\nsearch_seed: 3\ndata: {split: {train: 0.7, val: 0.1, test: 0.2}}\nfixed: {epochs: 9, model: {kind: mlp, hidden: [8]}}\nspace:\n  model.dropout: {distribution: uniform, min: 0.0, max: 0.5}\nearly_terminate: {type: hyperband, metric: val_accuracy, min_epochs: 1, eta: 3}\n";

fn stored(s: &Sweep) -> Vec<(f64, hypersweep::trial::TrialResult)> {
    let store = s.store();
    let info = store.read_plan().unwrap();
    info.trials
        .iter()
        .map(|t| {
            let r = store
                .load(&t.id)
                .unwrap()
                .expect("every trial has a result");
            (t.builtin().unwrap().model.dropout, r)
        })
        .collect()
}

#[test]
fn hyperband_prunes_weak_trials_at_a_rung_and_resume_keeps_them_pruned() {
    let s = Sweep::new(PRUNED);
    let e = scripted(0);
    // One slot: the trials run in plan order, so each is judged against those before it.
    s.run_with(&e, |a| a.train.slots.devices = "cpu:1".into());
    let results = stored(&s);
    let pruned: Vec<_> = results
        .iter()
        .filter(|(_, r)| r.status == Status::Pruned)
        .collect();
    assert!(!pruned.is_empty(), "nothing was pruned");
    let mut best_so_far = f64::INFINITY;
    for (dropout, r) in &results {
        if *dropout < best_so_far {
            // The best at its rung when it got there: it goes on to the end.
            assert_eq!(r.status, Status::Ok, "dropout {dropout}: {:?}", r.notes);
            assert_eq!(r.epochs_run, 9);
            best_so_far = *dropout;
        } else {
            assert_eq!(
                r.status,
                Status::Pruned,
                "dropout {dropout} (best {best_so_far})"
            );
        }
        if r.status == Status::Pruned {
            assert!(
                [1, 3].contains(&r.epochs_run),
                "stopped at {}",
                r.epochs_run
            );
            assert_eq!(r.epochs.len(), r.epochs_run);
            assert!(
                r.notes.iter().any(|n| n.contains("pruned at epoch")),
                "{:?}",
                r.notes
            );
        }
    }
    assert_eq!(results_with_status(&s, "pruned"), pruned.len());
    // Pruned is final: neither a rerun nor --rerun-failed trains them again.
    let e = scripted(0);
    s.run_with(&e, |a| a.train.rerun_failed = true);
    assert_eq!(e.started_count(), 0);
    let report = std::fs::read_to_string(s.dir().join("report.md")).unwrap();
    assert!(report.contains("was pruned after epoch"), "{report}");
    // The search section: a scatter of the sampled key and the best-so-far curve.
    assert!(report.contains("## Search"), "{report}");
    assert!(
        report.contains(&format!("{} were pruned", pruned.len())),
        "{report}"
    );
    for plot in ["search-model-dropout", "search-best-so-far"] {
        assert!(report.contains(plot), "no {plot} in {report}");
    }
}

#[test]
fn a_program_trial_is_stopped_when_pruned() {
    let toy = repo("examples/toy/toy.py");
    let s = Sweep::new(&format!(
        "name: toy-prune\nprogram:\n  command: [python3, {}, --lr, \"{{lr}}\", --epochs, \"{{epochs}}\", --epoch-sleep, \"0.4\"]\n  metric: loss\nfixed: {{epochs: 6}}\ngrid:\n  lr: [0.1, 0.6, 0.9]\nearly_terminate: {{type: hyperband, min_epochs: 1, eta: 3}}\n",
        toy.display()
    ));
    let out = bin()
        .args(["run", s.file.to_str().unwrap(), "--out"])
        .arg(&s.out)
        .args(["--devices", "cpu:1", "--quiet"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let plan: Value =
        serde_json::from_str(&std::fs::read_to_string(s.dir().join("plan.json")).unwrap()).unwrap();
    let mut statuses = vec![];
    for t in plan["trials"].as_array().unwrap() {
        let path = s
            .dir()
            .join("trials")
            .join(t["id"].as_str().unwrap())
            .join("result.json");
        let r: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        statuses.push((
            r["status"].as_str().unwrap().to_string(),
            r["epochs_run"].as_u64().unwrap(),
        ));
    }
    // lr 0.1 is best (lowest loss) and runs to the end; the others lose at the first rung
    // (the loss is the program's metric, minimized) and their programs are stopped there.
    assert_eq!(
        statuses,
        [
            ("ok".to_string(), 6),
            ("pruned".into(), 1),
            ("pruned".into(), 1)
        ]
    );
}

#[test]
fn a_pruning_metric_no_trial_reports_is_named_in_a_warning() {
    let s = Sweep::new(
        "name: unreported\nprogram:\n  command: [python3, slow.py, \"{lr}\"]\n  metric: loss\nfixed: {epochs: 4}\ngrid:\n  lr: [0.1, 0.6]\nearly_terminate: {type: hyperband, metric: val_loss, min_epochs: 1, eta: 3}\n",
    );
    // Rows arrive while the trial runs (a pause between epochs), none with val_loss.
    write(
        s.tmp.path(),
        "slow.py",
        "import json, os, sys, time\nfor e in range(1, 5):\n    with open(os.environ['HYPERSWEEP_METRICS'], 'a') as f:\n        f.write(json.dumps({'epoch': e, 'loss': float(sys.argv[1]) / e, 'accuracy': 0.5}) + '\\n')\n    time.sleep(0.3)\n",
    );
    let out = bin()
        .args(["run", s.file.to_str().unwrap(), "--out"])
        .arg(&s.out)
        .args(["--devices", "cpu:1", "--quiet", "--no-report"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    // The toy reports loss and accuracy, never val_loss: nothing can be pruned, and it says so.
    assert!(
        err.contains("early_terminate.metric `val_loss`")
            && err.contains("no trial is pruned; they report: accuracy, loss"),
        "{err}"
    );
    assert_eq!(err.matches("early_terminate.metric").count(), 1, "{err}");
}

const TPE: &str = "name: tpe\nmethod: tpe\ncount: 8\nsearch_seed: 5\nfixed: {epochs: 1}\nspace:\n  optimizer.learning_rate: {distribution: log_uniform, min: 1.0e-4, max: 0.2}\n  batch_size: {distribution: int_uniform, min: 8, max: 64}\n";

fn proposals(s: &Sweep) -> Vec<Value> {
    std::fs::read_to_string(s.dir().join("proposals.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_resumed_tpe_sweep_continues_the_recorded_sequence() {
    let s = Sweep::new(TPE);
    let out = scripted_bin()
        .args(["validate", s.file.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ok: 5 trials, and 3 more proposed by TPE"),
        "{text}"
    );
    let e = scripted(0);
    s.run_with(&e, |a| a.train.slots.devices = "cpu:1".into());
    // Five random trials are the plan; TPE proposed the other three as slots freed up.
    let first = proposals(&s);
    assert_eq!(first.len(), 3);
    assert_eq!(e.started_count(), 8);
    let info = s.store().read_plan().unwrap();
    let mut ids: Vec<String> = info.trials.iter().map(|t| t.id.to_string()).collect();
    assert_eq!(ids.len(), 8);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 8, "a proposal repeated a trial");
    // The second proposal was recorded but its run died before its result was written.
    let lost = first[1]["id"].as_str().unwrap();
    std::fs::remove_file(s.dir().join("trials").join(lost).join("result.json")).unwrap();
    s.rewrite(&TPE.replace("count: 8", "count: 10"));
    let e = scripted(0);
    s.run_with(&e, |a| a.train.slots.devices = "cpu:1".into());
    // The rerun trains the recorded proposal first, then proposes two more after the first three.
    let lrs: Vec<f64> = e
        .started
        .lock()
        .unwrap()
        .iter()
        .map(|c| c.optimizer.lr())
        .collect();
    assert_eq!(lrs.len(), 3);
    assert_eq!(Some(lrs[0]), first[1]["varied"][0][1].as_f64());
    let all = proposals(&s);
    assert_eq!(all.len(), 5);
    assert_eq!(all[..3], first[..]);
    assert_eq!(s.store().read_plan().unwrap().trials.len(), 10);
    assert_eq!(results_with_status(&s, "ok"), 10);
}

/// The ids TPE proposed, in order.
fn proposed_ids(s: &Sweep) -> Vec<String> {
    proposals(s)
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_tpe_sweep_killed_or_stopped_and_resumed_proposes_what_an_uninterrupted_one_does() {
    let whole = Sweep::new(TPE);
    whole.run_with(&scripted(0), |a| a.train.slots.devices = "cpu:1".into());
    let want = proposed_ids(&whole);
    assert_eq!(want.len(), 3);
    for signal in [libc::SIGKILL, libc::SIGINT] {
        let s = Sweep::new(TPE);
        let child = s.spawn_scripted_run(200);
        // Once the first proposal is recorded (its trial running): SIGKILL, or one Ctrl-C.
        let t0 = std::time::Instant::now();
        while std::fs::read_to_string(s.dir().join("proposals.jsonl"))
            .map_or(0, |t| t.lines().count())
            < 1
        {
            assert!(t0.elapsed().as_secs() < 30, "no proposal was recorded");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // SAFETY: kill(2) has no memory effects; the pid is our own child, not yet waited for.
        assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
        child.wait_with_output().unwrap();
        s.run_with(&scripted(0), |a| a.train.slots.devices = "cpu:1".into());
        assert_eq!(proposed_ids(&s), want, "after signal {signal}");
        assert_eq!(results_with_status(&s, "ok"), 8);
    }
}

#[test]
fn a_changed_tpe_sweep_starts_a_new_sequence_and_keeps_the_old_one_aside() {
    let s = Sweep::new(TPE);
    s.run_with(&scripted(0), |a| a.train.slots.devices = "cpu:1".into());
    let old: Vec<String> = proposals(&s)
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    // Other fixed settings: the old proposals were made for other trials and must not count.
    s.rewrite(&TPE.replace("fixed: {epochs: 1}", "fixed: {epochs: 2}"));
    let e = scripted(0);
    s.run_with(&e, |a| a.train.slots.devices = "cpu:1".into());
    assert_eq!(e.started_count(), 8, "every trial of the new plan trains");
    let new = proposals(&s);
    assert_eq!(new.len(), 3);
    assert!(
        new.iter()
            .all(|p| !old.iter().any(|o| o == p["id"].as_str().unwrap()))
    );
    let aside = std::fs::read_dir(s.dir())
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().starts_with("proposals.jsonl.old-")
        })
        .count();
    assert_eq!(aside, 1);
}
