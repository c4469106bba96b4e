//! The GPU code path on machines without a GPU: `--devices wgpu` on Mesa's software Vulkan
//! driver (lavapipe) trains the same trials as the CPU, to the same numbers within float noise,
//! the CNN's convolutions and pooling included (the path CUDA takes: the gathered convolution of
//! `engine::tensor_conv`, burn's pooling). And the
//! multi-GPU scheduling, on fake GPUs and the scripted engine.

use crate::common::{Sweep, bin};
use hypersweep::devices;
use hypersweep::engine::scripted::Scripted;
use hypersweep::engine::{Device, Status};
use hypersweep::scheduler;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

const SWEEP: &str = "name: gpu-path
data: {source: mnist, train_size: 600}
fixed: {epochs: 2, batch_size: 20, seed: 3, optimizer: {kind: adam, learning_rate: 0.005}}
trials:
  - {name: mlp, model: {kind: mlp, hidden: [32], activation: relu}}
  - {name: cnn, model: {kind: cnn, channels: [4, 8], kernel: 5, padding: 2, pool: 2, hidden: [16], activation: relu}}
";

/// Trains the sweep on `devices` into its own results root; `None` when wgpu finds no adapter
/// and the environment does not require one (`HYPERSWEEP_REQUIRE_WGPU=1`, set by `.ci/run`).
fn train(s: &Sweep, devices: &str) -> Option<BTreeMap<String, Value>> {
    train_expecting(s, devices, 0)
}

/// [`train`] with `--fuse k`, into a results root of its own.
fn train_fused(s: &Sweep, devices: &str, k: usize) -> Option<BTreeMap<String, Value>> {
    let k = k.to_string();
    train_with(s, devices, 0, &["--fuse", &k])
}

/// [`train`], the run ending with exit code `code`: each trial's result by name, with its
/// first epoch's loss when it has one.
fn train_expecting(s: &Sweep, devices: &str, code: i32) -> Option<BTreeMap<String, Value>> {
    train_with(s, devices, code, &[])
}

/// [`train_expecting`] with more flags.
fn train_with(
    s: &Sweep,
    devices: &str,
    code: i32,
    flags: &[&str],
) -> Option<BTreeMap<String, Value>> {
    let out = s
        .tmp
        .path()
        .join(devices.replace(':', "-") + &flags.join("-"));
    let run = bin()
        .args([
            "run",
            s.file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .args(["--devices", devices, "--quiet", "--no-report"])
        .args(flags)
        .env("XDG_RUNTIME_DIR", s.tmp.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    if devices == "wgpu"
        && err.contains("wgpu found no GPU")
        && std::env::var("HYPERSWEEP_REQUIRE_WGPU").is_err()
    {
        eprintln!("skipped: {err}");
        return None;
    }
    assert_eq!(run.status.code(), Some(code), "--devices {devices}: {err}");
    let sweep = std::fs::read_dir(&out)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let results = std::fs::read_dir(sweep.join("trials")).unwrap().map(|e| {
        let dir = e.unwrap().path();
        let mut r: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("result.json")).unwrap())
                .unwrap();
        let epochs = std::fs::read_to_string(dir.join("epochs.csv")).unwrap_or_default();
        r["first_epoch_loss"] = first_epoch_loss(&epochs).into();
        (r["name"].as_str().unwrap().to_string(), r)
    });
    Some(results.collect())
}

/// `train_loss` of the first row of an epochs.csv, if it has a row.
fn first_epoch_loss(csv: &str) -> Option<f64> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next()?.split(',').collect();
    let col = header.iter().position(|h| *h == "train_loss").unwrap();
    Some(lines.next()?.split(',').nth(col).unwrap().parse().unwrap())
}

#[test]
fn the_wgpu_path_trains_the_mlp_and_the_cnn_like_the_cpu() {
    let s = Sweep::new(SWEEP);
    let Some(gpu) = train(&s, "wgpu") else {
        return;
    };
    let cpu = train(&s, "cpu:1").unwrap();
    for name in ["mlp", "cnn"] {
        let (g, c) = (&gpu[name], &cpu[name]);
        assert_eq!(g["status"], "ok", "{name}: {g}");
        assert_eq!(g["device"], "wgpu", "{name}");
        assert_eq!(c["device"], "cpu", "{name}");
        // Same initial weights and batches (drawn on the host): the losses differ only by the
        // order of float sums.
        let (gl, cl) = (
            g["first_epoch_loss"].as_f64().unwrap(),
            c["first_epoch_loss"].as_f64().unwrap(),
        );
        assert!(
            (gl - cl).abs() <= 0.01 * cl,
            "{name}: first-epoch loss {gl} on wgpu, {cl} on cpu"
        );
        let (ga, ca) = (
            g["test_accuracy"].as_f64().unwrap(),
            c["test_accuracy"].as_f64().unwrap(),
        );
        assert!(ca > 0.5, "{name}: the cpu trial learned nothing ({ca})");
        assert!(
            (ga - ca).abs() <= 0.02,
            "{name}: test accuracy {ga} on wgpu, {ca} on cpu"
        );
    }
}

/// Fused on wgpu (the GPU code path: batched products, the gathered convolution, the fused
/// optimizer's column arithmetic): each member of a fused MLP and CNN group ends as the same
/// trial unfused, within float noise.
#[test]
fn fused_mlp_and_cnn_members_on_wgpu_match_their_trials_unfused() {
    // One epoch: lavapipe takes ~20 s for the sweep's four trials at two.
    let small = SWEEP.replace("epochs: 2", "epochs: 1");
    let s = Sweep::new(&format!("{small}seeds: [3, 4]\n"));
    let Some(fused) = train_fused(&s, "wgpu", 2) else {
        return;
    };
    let alone = train(&s, "wgpu").unwrap();
    assert_eq!(fused.len(), 4);
    for (name, f) in &fused {
        let a = &alone[name];
        assert_eq!(f["status"], "ok", "{name}: {f}");
        assert_eq!(f["fused"]["size"], 2, "{name}");
        assert!(a.get("fused").is_none(), "{name}");
        let (fl, al) = (
            f["first_epoch_loss"].as_f64().unwrap(),
            a["first_epoch_loss"].as_f64().unwrap(),
        );
        assert!(
            (fl - al).abs() <= 1e-3 * al,
            "{name}: first-epoch loss fused {fl}, alone {al}"
        );
        let (fa, aa) = (
            f["test_accuracy"].as_f64().unwrap(),
            a["test_accuracy"].as_f64().unwrap(),
        );
        assert!(aa > 0.3, "{name}: learned nothing ({aa})");
        assert!(
            (fa - aa).abs() <= 0.005,
            "{name}: test accuracy fused {fa}, alone {aa}"
        );
    }
}

/// A trial whose tensor the GPU refuses (wgpu's 128 MiB buffer limit: a 784 × 50,000 weight)
/// fails with the GPU's message, though cubecl only logs it on its own thread; the trial after
/// it on the same device trains as usual.
#[test]
fn a_gpu_allocation_failure_fails_its_trial_not_the_sweep() {
    let s = Sweep::new(
        "name: big
data: {source: mnist, train_size: 200}
fixed: {epochs: 3, batch_size: 100, seed: 1, optimizer: {kind: adam, learning_rate: 0.005}}
trials:
  - {name: huge, model: {kind: mlp, hidden: [50000], activation: relu}}
  - {name: small, model: {kind: mlp, hidden: [16], activation: relu}}
",
    );
    let Some(results) = train_expecting(&s, "wgpu", 3) else {
        return;
    };
    let (huge, small) = (&results["huge"], &results["small"]);
    assert_eq!(huge["status"], "failed", "{huge}");
    assert_eq!(
        huge["error"], "the GPU failed (wgpu): can't allocate buffer of size: 156800000",
        "{huge}"
    );
    assert_eq!(small["status"], "ok", "{small}");
    assert!(small["test_accuracy"].as_f64().unwrap() > 0.3, "{small}");
}

/// Runs twelve scripted trials of 3 epochs over `spec` as the scheduler would with two fake GPUs
/// (`--devices spec --per-device k`); returns the results.
fn schedule(
    engine: &Arc<Scripted>,
    spec: &str,
    per_device: usize,
) -> Vec<hypersweep::trial::TrialResult> {
    let sweep = hypersweep::spec::Spec::parse(
        "g.yaml",
        "name: g\nfixed: {epochs: 3}\ngrid:\n  seed: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]\n",
    )
    .unwrap();
    let plan = hypersweep::plan::expand(&sweep).unwrap();
    let slots = devices::parse(spec, per_device, None, plan.trials.len(), &|| Ok(2)).unwrap();
    let trials = plan.trials.iter().map(|t| (vec![t.clone()], 1.0)).collect();
    let always = scheduler::Hooks::claim(Arc::new(|_, _| true));
    let cancel = Arc::new(scheduler::Cancel::default());
    let dyn_engine: Arc<dyn hypersweep::engine::Engine> = engine.clone();
    let results = scheduler::run(trials, &dyn_engine, &slots, &cancel, &always, |_| {});
    let mut ids: Vec<_> = results.iter().map(|r| r.id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 12, "every trial ran exactly once");
    results
}

#[test]
fn cuda_all_with_k_per_device_runs_at_most_k_trials_on_each_gpu() {
    for k in [1, 3] {
        let engine = Arc::new(Scripted::new(15));
        let results = schedule(&engine, "cuda:all", k);
        assert!(results.iter().all(|r| r.status == Status::Ok));
        for gpu in [Device::Cuda(0), Device::Cuda(1)] {
            let ran = results
                .iter()
                .filter(|r| r.device == gpu.to_string())
                .count();
            assert!(ran > 0, "{gpu} took no trial");
            // Twelve trials, two GPUs: each GPU is kept full, never over-full.
            assert_eq!(engine.max_running_on(gpu), k, "{gpu} with --per-device {k}");
        }
        assert_eq!(engine.max_running_on(Device::Cpu), 0);
    }
}

#[test]
fn a_broken_gpu_fails_only_its_own_trials() {
    let engine = Arc::new(Scripted::new(15).with_broken_device(Device::Cuda(1)));
    let results = schedule(&engine, "cuda:0,cuda:1", 1);
    for r in &results {
        match r.device.as_str() {
            "cuda:1" => {
                assert_eq!(r.status, Status::Failed);
                assert!(r.error.as_deref().unwrap().contains("cuda:1"), "{r:?}");
            }
            _ => assert_eq!(r.status, Status::Ok, "{r:?}"),
        }
    }
    let failed = results
        .iter()
        .filter(|r| r.status == Status::Failed)
        .count();
    assert!(failed > 0 && failed < 12, "{failed} failed");
}
