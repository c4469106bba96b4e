//! `hypersweep submit` against a real Slurm (scripts/slurm-local.sh starts a one-node cluster;
//! `.ci/run` does so before the tests). Where no Slurm answers, each test says so on stderr and
//! passes without testing anything. Workers train with the scripted engine: the environment of
//! `submit` reaches the tasks (sbatch exports it).

use super::common::{Sweep, bin, results_with_status};
use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

/// True when `sinfo` shows a node that can run jobs; otherwise says why the test is skipped.
fn slurm_answers(test: &str) -> bool {
    let up = Command::new("sinfo")
        .args(["-h", "-o", "%t"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .is_some_and(|t| {
            t.lines()
                .any(|l| ["idle", "mix", "alloc"].contains(&l.trim()))
        });
    if !up {
        // Straight to stderr, past the test harness's capture: a skip must be visible.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: no Slurm answers here (start one with scripts/slurm-local.sh)"
        );
    }
    up
}

fn submit(s: &Sweep, epoch_ms: u64, extra: &[&str]) -> String {
    let t0 = Instant::now();
    let out = bin()
        .args(["submit", s.file.to_str().unwrap(), "--out"])
        .arg(&s.out)
        .args(extra)
        .env("HYPERSWEEP_ENGINE", "scripted")
        .env("HYPERSWEEP_SCRIPTED_EPOCH_MS", epoch_ms.to_string())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        t0.elapsed() < Duration::from_secs(15),
        "submit must not wait for the jobs"
    );
    text
}

/// The job id of the array in submit's output.
fn array_id(text: &str) -> String {
    text.split("job array ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap()
        .to_string()
}

fn ok_results(s: &Sweep) -> usize {
    results_with_status(s, "ok")
}

fn interrupted(s: &Sweep) -> usize {
    results_with_status(s, "interrupted")
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !done() {
        assert!(t0.elapsed() < limit, "waited {limit:?} for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn queue_empty(job: &str) -> bool {
    Command::new("squeue")
        .args(["-h", "-j", job])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().is_empty())
        .unwrap_or(true)
}

/// Sum of "N trained" over the worker outputs of job `job`.
fn trained_by(s: &Sweep, job: &str) -> usize {
    std::fs::read_dir(s.dir().join("slurm"))
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("worker-{job}_"))
        })
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .flat_map(|t| {
            // The summary lines (`slurm9: 3 trained (0 failed), …`), not the notes beside them.
            t.lines()
                .filter(|l| l.contains(" trained ("))
                .filter_map(|l| {
                    l.split(": ")
                        .nth(1)?
                        .split(' ')
                        .next()?
                        .parse::<usize>()
                        .ok()
                })
                .collect::<Vec<_>>()
        })
        .sum()
}

#[test]
fn submit_returns_at_once_and_the_array_trains_every_trial_once_then_reports() {
    if !slurm_answers("submit") {
        return;
    }
    let s = Sweep::new(
        "name: slurm9\nfixed: {epochs: 2}\ngrid:\n  seed: [1, 2, 3, 4, 5, 6, 7, 8, 9]\n",
    );
    let text = submit(&s, 100, &["--tasks", "3", "--parallel", "2"]);
    let job = array_id(&text);
    assert!(text.contains("hypersweep status"), "{text}");
    let status = bin().arg("status").arg(s.dir()).output().unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains(&format!("slurm: {job}")) || status.contains("left the queue"),
        "{status}"
    );
    wait_until("9 results and the report", Duration::from_secs(180), || {
        ok_results(&s) == 9 && s.dir().join("report.html").exists()
    });
    wait_until(
        "the array to leave the queue",
        Duration::from_secs(60),
        || queue_empty(&job),
    );
    assert_eq!(trained_by(&s, &job), 9, "each trial trained once");
    let script = std::fs::read_to_string(s.dir().join("slurm/worker.sbatch")).unwrap();
    assert!(script.contains("#SBATCH --array=0-2%2"), "{script}");
}

#[test]
fn a_cancelled_array_resubmitted_retrains_nothing_finished_and_usr1_releases() {
    if !slurm_answers("submit after scancel") {
        return;
    }
    let s =
        Sweep::new("name: slurmcancel\nfixed: {epochs: 3}\ngrid:\n  seed: [1, 2, 3, 4, 5, 6]\n");
    let job = array_id(&submit(&s, 300, &["--tasks", "1"]));
    wait_until("a first result", Duration::from_secs(120), || {
        ok_results(&s) >= 1
    });
    // USR1, as Slurm sends before a time limit: the running trial is saved as interrupted,
    // its claim released, and the task puts itself back in the queue.
    let sent = Command::new("scancel")
        .args(["--signal=USR1", "--batch", &job])
        .status()
        .unwrap();
    assert!(sent.success());
    let log = s.dir().join("hypersweep.log");
    wait_until("the worker to take USR1", Duration::from_secs(60), || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("SIGUSR1"))
    });
    wait_until(
        "the interrupted trial saved and its claim released",
        Duration::from_secs(60),
        || {
            let claims = std::fs::read_dir(s.dir().join("claims")).map_or(0, Iterator::count);
            claims == 0 && interrupted(&s) == 1
        },
    );
    // The task is back in the queue (Slurm holds a requeued job for a while before it runs).
    Command::new("scancel").arg(&job).status().unwrap();
    wait_until(
        "the cancelled array to leave",
        Duration::from_secs(60),
        || queue_empty(&job),
    );
    let done = ok_results(&s);
    assert!(done < 6, "the test needs trials left to train");
    let again = array_id(&submit(&s, 50, &["--tasks", "2"]));
    wait_until("every result", Duration::from_secs(180), || {
        ok_results(&s) == 6
    });
    wait_until("the second array to leave", Duration::from_secs(60), || {
        queue_empty(&again)
    });
    assert_eq!(
        trained_by(&s, &again),
        6 - done,
        "finished trials are not retrained"
    );
    let claims = std::fs::read_dir(s.dir().join("claims")).unwrap().count();
    assert_eq!(claims, 0, "every claim released");
}

/// `scontrol requeue` of a running task: Slurm sends SIGTERM to every process of the task, the
/// trial writes its checkpoint at the batch it stops on and is recorded interrupted, and the
/// requeued task resumes it from there (the real engine). Its result says so, and its numbers
/// are those of an uninterrupted run on one thread.
#[test]
fn a_requeued_task_resumes_its_trial_from_the_checkpoint() {
    if !slurm_answers("requeue") {
        return;
    }
    let yaml = "name: slurmrequeue\ndata: {train_size: 1000}\nfixed:\n  model: {kind: mlp, hidden: [256, 256]}\n  optimizer: {kind: sgd, learning_rate: 0.05, momentum: 0.9}\n  batch_size: 32\n  steps_per_epoch: 2500\n  epochs: 3\n  seed: 2\ncheckpoint: {every_epochs: 1}\n";
    let s = Sweep::new(yaml);
    let out = bin()
        .args(["submit", s.file.to_str().unwrap(), "--out"])
        .arg(&s.out)
        .args(["--tasks", "1"])
        .env_remove("HYPERSWEEP_ENGINE")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let task = format!("{}_0", array_id(&text));
    let trials = s.dir().join("trials");
    let ckpt = || {
        std::fs::read_dir(&trials)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.join("checkpoint/trial.ckpt").exists())
    };
    wait_until("a first checkpoint", Duration::from_secs(120), || {
        ckpt().is_some()
    });
    let dir = ckpt().unwrap();
    assert!(!dir.join("result.json").exists(), "the trial ended first");
    let requeued = Command::new("scontrol")
        .args(["requeue", &task])
        .status()
        .unwrap();
    assert!(requeued.success());
    // The stopped attempt records its trial, and Slurm puts the task back in the queue.
    // Starting it again before then (while the old attempt is still ending) fails the task.
    wait_until(
        "the stopped attempt recorded",
        Duration::from_secs(60),
        || {
            std::fs::read_to_string(dir.join("result.json"))
                .is_ok_and(|t| t.contains("\"status\": \"interrupted\""))
        },
    );
    wait_until("the task pending again", Duration::from_secs(60), || {
        Command::new("squeue")
            .args(["-h", "-j", &task, "-o", "%T"])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "PENDING")
    });
    // Slurm holds a requeued job back for a while; let it start again now, though not at once:
    // slurmd refuses, for a moment, to launch a job it has just killed ("already killed, do
    // not launch batch job"), and the task then fails.
    std::thread::sleep(Duration::from_secs(5));
    let t0 = Instant::now();
    let mut shown = false;
    wait_until(
        "the requeued task to start",
        Duration::from_secs(120),
        || {
            let _ = Command::new("scontrol")
                .args(["update", &format!("JobId={task}"), "StartTime=now"])
                .output();
            if !shown && t0.elapsed() > Duration::from_secs(60) {
                // What Slurm and the task say, for a failure's log.
                shown = true;
                let job = Command::new("scontrol")
                    .args(["show", "job", &task])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).to_string());
                let logs: Vec<String> = std::fs::read_dir(s.dir().join("slurm"))
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                    .collect();
                let _ = writeln!(
                    std::io::stderr(),
                    "requeued task not done after 60 s:\n{}\n{}\nresult: {:?}",
                    job.unwrap_or_default(),
                    logs.join("\n"),
                    std::fs::read_to_string(dir.join("result.json"))
                );
            }
            std::fs::read_to_string(dir.join("result.json"))
                .is_ok_and(|t| t.contains("\"status\": \"ok\""))
        },
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("result.json")).unwrap()).unwrap();
    assert!(r["restarts"].as_u64() >= Some(1), "{r}");
    assert!(r["resumed_from_epoch"].as_u64() >= Some(1), "{r}");
    let epochs = std::fs::read_to_string(dir.join("epochs.csv")).unwrap();
    assert_eq!(epochs.lines().count(), 4, "each epoch once: {epochs}");
    // The same trial run here, uninterrupted, on the task's one thread.
    let whole = Sweep::new(yaml);
    let out = bin()
        .args(["run", whole.file.to_str().unwrap(), "--out"])
        .arg(&whole.out)
        .args(["--devices", "cpu:1", "--threads", "1", "-q"])
        .env_remove("HYPERSWEEP_ENGINE")
        .output()
        .unwrap();
    assert!(out.status.success());
    let other = whole.dir().join("trials").join(dir.file_name().unwrap());
    let uninterrupted: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(other.join("result.json")).unwrap()).unwrap();
    for key in [
        "test_loss",
        "test_accuracy",
        "confusion_matrix",
        "train_loss",
    ] {
        assert_eq!(r[key], uninterrupted[key], "{key}");
    }
    wait_until("the array to leave", Duration::from_secs(60), || {
        queue_empty(&task)
    });
}
