//! Cost estimates before launch: the work of a trial from its model (FLOPs per sample × samples
//! × epochs, plus the forward passes of evaluation), a speed measured on this machine (finished
//! trials, or a short probe of the same model, optimizer and batch), and the wall time of a
//! sweep from the scheduler's own list scheduling (most expensive first, each trial to the slot
//! that frees first). Pure: the measuring is done by the callers (`app/estimate.rs`).

use crate::config::{ModelConfig, ModelKind, TrialConfig};
use crate::data::{CLASSES, DataSummary, PIXELS};
use crate::trial::TrialResult;

/// A training step costs about three forward passes: the forward itself, then the gradients
/// with respect to the inputs and to the weights, each a product of the same size.
pub const TRAIN_PER_FORWARD: f64 = 3.0;

/// How a trial's speed grows with its threads: `threads^0.6` (2 threads → 1.52×), between the
/// measured 1 → 2 thread scalings on 2-core machines: about 1.0× for the linear model at batch
/// 100, 1.66–1.72× for the MLP, 1.72–1.88× for the CNN (`benches/RESULTS.md`). The rates of
/// `plan`'s probe are measured at the run's own thread count; this scales finished trials'
/// rates to another count, and a sweep's tail in [`list_schedule`].
pub fn thread_speedup(from: usize, to: usize) -> f64 {
    const EXPONENT: f64 = 0.6;
    (to.max(1) as f64 / from.max(1) as f64).powf(EXPONENT)
}

/// Multiply-adds and other elementwise operations (bias, activation, pooling) of one sample's
/// forward pass.
fn forward_ops(m: &ModelConfig) -> (f64, f64) {
    let (mut macs, mut elementwise) = (0f64, 0f64);
    let mut inputs = PIXELS;
    if m.kind == ModelKind::Cnn {
        let (mut side, mut ch) = (28usize, 1usize);
        for &c in &m.channels {
            let out = side + 2 * m.padding + 1 - m.kernel.min(side + 2 * m.padding);
            macs += (out * out * c * ch * m.kernel * m.kernel) as f64;
            let pooled = (out / m.pool.max(1)).max(1);
            // Bias and pooling touch every output; the activation every pooled one.
            elementwise += (2 * out * out * c + pooled * pooled * c) as f64;
            side = pooled;
            ch = c;
        }
        inputs = side * side * ch;
    }
    if m.kind != ModelKind::Linear {
        for &h in &m.hidden {
            macs += (inputs * h) as f64;
            elementwise += (2 * h) as f64;
            inputs = h;
        }
    }
    macs += (inputs * CLASSES) as f64;
    elementwise += CLASSES as f64;
    (macs, elementwise)
}

/// Multiply-adds of one sample's forward pass: out_h·out_w·c_out·c_in·k² per convolution, then
/// in·out per fully connected layer.
pub fn macs_per_sample(m: &ModelConfig) -> f64 {
    forward_ops(m).0
}

/// A rough cost in multiply-adds, to start the most expensive trials first.
pub fn rough_cost(cfg: &TrialConfig, train_samples: usize) -> f64 {
    let samples = match cfg.steps_per_epoch {
        Some(k) => (k * cfg.batch_size) as f64,
        None => train_samples as f64,
    };
    macs_per_sample(&cfg.model) * samples * cfg.epochs as f64
}

/// FLOPs of one sample's forward pass: 2 per multiply-add, 1 per bias, activation and pooled
/// element (dropout, the loss and the optimizer are left out; the optimizer is in the measured
/// time of a step).
pub fn forward_flop(m: &ModelConfig) -> f64 {
    let (macs, elementwise) = forward_ops(m);
    2.0 * macs + elementwise
}

/// The work of one trial.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Work {
    /// Training steps over all epochs (the most, when early stopping may end it sooner).
    pub steps: usize,
    /// Samples per step: the batch size, clamped to the training set as the engine does.
    pub batch: usize,
    /// FLOPs of all training steps.
    pub train_flop: f64,
    /// FLOPs of evaluation: validation each epoch, the test set each epoch with
    /// `test_each_epoch`, and the test set once at the end (forward passes only).
    pub eval_flop: f64,
}

impl Work {
    /// Training and evaluation together.
    pub fn flop(&self) -> f64 {
        self.train_flop + self.eval_flop
    }
}

/// The work of a built-in trial on data of these sizes.
pub fn work(cfg: &TrialConfig, sizes: &DataSummary) -> Work {
    let n = sizes.train.max(1);
    let batch = cfg.batch_size.clamp(1, n);
    let (steps, samples) = match cfg.steps_per_epoch {
        Some(k) => (k, k * batch),
        None if cfg.drop_last => (n / batch, n / batch * batch),
        None => (n.div_ceil(batch), n),
    };
    let fwd = forward_flop(&cfg.model);
    let each_epoch = sizes.val + if cfg.test_each_epoch { sizes.test } else { 0 };
    Work {
        steps: cfg.epochs * steps,
        batch,
        train_flop: (cfg.epochs * samples) as f64 * fwd * TRAIN_PER_FORWARD,
        eval_flop: (cfg.epochs * each_epoch + sizes.test) as f64 * fwd,
    }
}

/// Trials with the same shape (model, optimizer, batch, augmentation) take the same time per
/// step; the key of that shape.
pub fn shape_key(cfg: &TrialConfig, batch: usize) -> String {
    format!(
        "{}|{:?}|{batch}|{}",
        serde_json::to_string(&cfg.model).unwrap_or_default(),
        cfg.optimizer.kind,
        cfg.augment.enabled
    )
}

/// The measured speed of one shape.
#[derive(Debug, Clone, PartialEq)]
struct ShapeRate {
    key: String,
    kind: ModelKind,
    batch: usize,
    /// FLOPs of one training step of this shape.
    step_flop: f64,
    /// Measured seconds and steps (summed over finished trials, or one probe).
    seconds: f64,
    steps: f64,
    /// The threads each trial had when measured.
    threads: usize,
}

impl ShapeRate {
    fn step_seconds(&self) -> f64 {
        self.seconds / self.steps
    }
    fn flop_per_second(&self) -> f64 {
        self.step_flop / self.step_seconds()
    }
}

/// Speeds measured on this machine: seconds per step of each shape, and the time of a trial
/// outside its steps and evaluation (data preparation).
#[derive(Debug, Clone, Default)]
pub struct Calibration {
    shapes: Vec<ShapeRate>,
    overhead: Vec<f64>,
}

impl Calibration {
    /// Records a measured step time of `cfg`'s shape with `batch` samples per step.
    pub fn add_steps(
        &mut self,
        cfg: &TrialConfig,
        batch: usize,
        seconds: f64,
        steps: f64,
        threads: usize,
    ) {
        if !(seconds > 0.0 && steps > 0.0) {
            return;
        }
        let key = shape_key(cfg, batch);
        if let Some(s) = self
            .shapes
            .iter_mut()
            .find(|s| s.key == key && s.threads == threads)
        {
            s.seconds += seconds;
            s.steps += steps;
            return;
        }
        self.shapes.push(ShapeRate {
            key,
            kind: cfg.model.kind,
            batch,
            step_flop: batch as f64 * forward_flop(&cfg.model) * TRAIN_PER_FORWARD,
            seconds,
            steps,
            threads,
        });
    }

    /// Records the seconds of a trial outside its training steps and evaluation.
    pub fn add_overhead(&mut self, seconds: f64) {
        if seconds.is_finite() && seconds >= 0.0 {
            self.overhead.push(seconds);
        }
    }

    /// Learns from a finished built-in trial: its seconds per step (`train_seconds` over the
    /// steps it ran) and what its total time spent outside them. `threads` is what it ran with,
    /// when recorded. Returns false for a result that measured nothing (failed, interrupted).
    pub fn add_finished(&mut self, cfg: &TrialConfig, r: &TrialResult) -> bool {
        let measured = r.train_seconds.is_finite() && r.train_seconds > 0.0;
        if !r.status.is_final() || r.epochs_run == 0 || !measured {
            return false;
        }
        let ran = TrialConfig {
            epochs: r.epochs_run,
            ..cfg.clone()
        };
        let w = work(&ran, &r.data);
        let threads = r.threads.unwrap_or(0);
        self.add_steps(cfg, w.batch, r.train_seconds, w.steps as f64, threads);
        if let Some(rate) = self.eval_rate(cfg, threads) {
            self.add_overhead(r.total_seconds - r.train_seconds - w.eval_flop / rate);
        }
        true
    }

    /// Whether `cfg`'s shape has a measured speed.
    pub fn knows(&self, cfg: &TrialConfig, batch: usize) -> bool {
        let key = shape_key(cfg, batch);
        self.shapes.iter().any(|s| s.key == key)
    }

    /// Seconds per step and FLOP/s for `cfg` at `batch` with `threads` per trial (0: as
    /// measured): its own shape's measurement, else the FLOP rate of the same kind of model
    /// measured at the nearest batch size; `None` when no model of its kind was measured.
    fn rate(&self, cfg: &TrialConfig, batch: usize, threads: usize) -> Option<(Option<f64>, f64)> {
        let scale = |s: &ShapeRate| {
            if threads == 0 || s.threads == 0 {
                1.0
            } else {
                thread_speedup(s.threads, threads)
            }
        };
        let key = shape_key(cfg, batch);
        if let Some(s) = self.shapes.iter().find(|s| s.key == key) {
            let f = scale(s);
            return Some((Some(s.step_seconds() / f), s.flop_per_second() * f));
        }
        let distance = |s: &ShapeRate| ((s.batch as f64).ln() - (batch as f64).ln()).abs();
        let near = self
            .shapes
            .iter()
            .filter(|s| s.kind == cfg.model.kind)
            .min_by(|a, b| distance(a).total_cmp(&distance(b)))?;
        Some((None, near.flop_per_second() * scale(near)))
    }

    /// FLOP/s of evaluation for `cfg`'s kind of model: the training rate of the same kind
    /// measured at the batch nearest to evaluation's (1,000 samples a forward pass), so that a
    /// trial training one sample a step is not thought to evaluate one at a time too.
    fn eval_rate(&self, cfg: &TrialConfig, threads: usize) -> Option<f64> {
        let eval_batch = crate::engine::eval::EVAL_BATCH;
        let probe = TrialConfig {
            batch_size: eval_batch,
            ..cfg.clone()
        };
        self.rate(&probe, eval_batch, threads).map(|r| r.1)
    }

    /// Seconds outside the steps and evaluation, per trial: the mean of those measured.
    pub fn overhead(&self) -> f64 {
        if self.overhead.is_empty() {
            0.0
        } else {
            self.overhead.iter().sum::<f64>() / self.overhead.len() as f64
        }
    }

    /// Estimated seconds of a trial of `cfg` doing `w` with `threads` per trial (0: as
    /// measured); `None` when nothing measured a model of its kind.
    pub fn seconds(&self, cfg: &TrialConfig, w: &Work, threads: usize) -> Option<f64> {
        let (step, flops) = self.rate(cfg, w.batch, threads)?;
        let train = match step {
            Some(s) => s * w.steps as f64,
            None => w.train_flop / flops,
        };
        let eval = self.eval_rate(cfg, threads).unwrap_or(flops);
        Some(self.overhead() + train + w.eval_flop / eval)
    }

    /// The lowest and highest measured training speed per model kind, in FLOP/s, for the
    /// summary line.
    pub fn speeds(&self) -> Vec<(ModelKind, f64, f64)> {
        let mut out: Vec<(ModelKind, f64, f64)> = vec![];
        for s in &self.shapes {
            let f = s.flop_per_second();
            match out.iter_mut().find(|o| o.0 == s.kind) {
                Some(o) => {
                    o.1 = o.1.min(f);
                    o.2 = o.2.max(f);
                }
                None => out.push((s.kind, f, f)),
            }
        }
        out
    }

    /// Whether anything was measured.
    pub fn is_empty(&self) -> bool {
        self.shapes.is_empty()
    }
}

/// Wall time of trials of these durations taken from a queue in this order by `slots` slots,
/// each trial going to the slot that frees first (what the scheduler's slot threads do);
/// `busy` holds the seconds each slot still needs for the trial it runs now (fewer entries than
/// slots: the rest are free). The durations are at a full machine's share of the cores; with
/// `cores` (the running trials share them, no `--threads`) a trial runs faster while fewer
/// trials than slots run, at [`thread_speedup`] from `cores / slots` threads to
/// `cores / running`, as a sweep's tail does.
pub fn list_schedule(durations: &[f64], slots: usize, busy: &[f64], cores: Option<usize>) -> f64 {
    let slots = slots.max(1);
    let mut running: Vec<f64> = busy.iter().copied().filter(|&b| b > 0.0).collect();
    let mut queue = durations.iter().copied();
    let mut now = 0.0;
    loop {
        while running.len() < slots {
            match queue.next() {
                Some(d) => running.push(d),
                None => break,
            }
        }
        if running.is_empty() {
            return now;
        }
        let speed = cores.map_or(1.0, |c| {
            thread_speedup((c / slots).max(1), (c / running.len()).max(1))
        });
        // Until the next trial ends.
        let dt = running.iter().copied().fold(f64::INFINITY, f64::min) / speed;
        now += dt;
        running.iter_mut().for_each(|r| *r -= dt * speed);
        running.retain(|&r| r > 1e-9);
    }
}

/// FLOPs in words: `3.1 TFLOP`.
pub fn flop_text(f: f64) -> String {
    let units = [
        (1e15, "PFLOP"),
        (1e12, "TFLOP"),
        (1e9, "GFLOP"),
        (1e6, "MFLOP"),
    ];
    for (scale, unit) in units {
        if f >= scale {
            return format!("{:.1} {unit}", f / scale);
        }
    }
    format!("{f:.0} FLOP")
}

/// Seconds in words for an estimate: `~40 s`, `~2m10s`, `~1h05m`.
pub fn eta_text(s: f64) -> String {
    let s = s.max(0.0);
    if s < 10.0 {
        format!("~{s:.1} s")
    } else if s < 60.0 {
        format!("~{s:.0} s")
    } else if s < 3600.0 {
        let m = (s / 60.0).floor();
        format!("~{m:.0}m{:02.0}s", (s - 60.0 * m).floor())
    } else {
        let h = (s / 3600.0).floor();
        format!("~{h:.0}h{:02.0}m", ((s - 3600.0 * h) / 60.0).floor())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trial::Status;

    fn model(kind: ModelKind, hidden: Vec<usize>) -> ModelConfig {
        ModelConfig {
            kind,
            hidden,
            ..ModelConfig::default()
        }
    }

    #[test]
    fn flops_of_the_study_models_by_hand() {
        // Linear 784 → 10: 7,840 multiply-adds and 10 biases.
        let linear = model(ModelKind::Linear, vec![]);
        assert_eq!(macs_per_sample(&linear), 7_840.0);
        assert_eq!(forward_flop(&linear), 15_690.0);
        // MLP 784-512-256-10: 401,408 + 131,072 + 2,560 multiply-adds; bias and activation on
        // each of the 768 hidden units, bias on the 10 outputs.
        let mlp = model(ModelKind::Mlp, vec![512, 256]);
        assert_eq!(macs_per_sample(&mlp), 535_040.0);
        assert_eq!(forward_flop(&mlp), 2.0 * 535_040.0 + 1_536.0 + 10.0);
        // S4 CNN: conv 1→16 5×5 pad 2 on 28×28 (28·28·16·1·25 = 313,600), pool to 14, conv
        // 16→32 (14·14·32·16·25 = 2,508,800), pool to 7, fc 1568→100 (156,800), 100→10 (1,000).
        let cnn = model(ModelKind::Cnn, vec![100]);
        assert_eq!(macs_per_sample(&cnn), 2_980_200.0);
        let elementwise = (2 * 784 * 16 + 196 * 16) + (2 * 196 * 32 + 49 * 32) + 200 + 10;
        assert_eq!(
            forward_flop(&cnn),
            2.0 * 2_980_200.0 + f64::from(elementwise)
        );
    }

    #[test]
    fn work_counts_steps_samples_and_evaluation() {
        let sizes = DataSummary {
            train: 8000,
            val: 0,
            test: 2000,
            ..DataSummary::default()
        };
        let cfg = TrialConfig {
            batch_size: 100,
            epochs: 30,
            steps_per_epoch: Some(100),
            test_each_epoch: true,
            ..TrialConfig::default()
        };
        let w = work(&cfg, &sizes);
        assert_eq!((w.steps, w.batch), (3000, 100));
        assert_eq!(w.train_flop, 300_000.0 * 15_690.0 * 3.0);
        assert_eq!(w.eval_flop, (30.0 * 2000.0 + 2000.0) * 15_690.0);
        // Full passes: the last partial batch counts, drop_last drops it; the batch is clamped.
        let full = TrialConfig {
            batch_size: 3000,
            epochs: 2,
            ..TrialConfig::default()
        };
        assert_eq!(work(&full, &sizes).steps, 6);
        let dropped = TrialConfig {
            drop_last: true,
            ..full.clone()
        };
        assert_eq!(work(&dropped, &sizes).steps, 4);
        let huge = TrialConfig {
            batch_size: 60_000,
            ..full
        };
        assert_eq!(work(&huge, &sizes).batch, 8000);
    }

    #[test]
    fn list_scheduling_over_slots() {
        // Four equal trials on two slots take two trial lengths.
        assert_eq!(list_schedule(&[1.0; 4], 2, &[], None), 2.0);
        // Most expensive first: the long trial sets the wall time, the short ones share a slot.
        assert_eq!(list_schedule(&[4.0, 1.0, 1.0, 1.0], 2, &[], None), 4.0);
        // One slot: the sum; more slots than trials: the longest.
        assert_eq!(list_schedule(&[3.0, 2.0], 1, &[], None), 5.0);
        assert_eq!(list_schedule(&[3.0, 2.0], 8, &[], None), 3.0);
        // A slot busy for 2 s more takes its next trial after that.
        assert_eq!(list_schedule(&[1.0, 1.0], 2, &[2.0], None), 2.0);
        assert_eq!(list_schedule(&[], 2, &[], None), 0.0);
        // Sharing 2 cores, the long trial runs on 1 thread beside the short one for 1 s, then
        // alone on 2 threads: its other 3 s of 1-thread work take 3 / 2^0.6 s.
        let tail = list_schedule(&[4.0, 1.0], 2, &[], Some(2));
        assert!(
            (tail - (1.0 + 3.0 / thread_speedup(1, 2))).abs() < 1e-9,
            "{tail}"
        );
        // With every slot busy to the end there is no tail to speed up.
        assert_eq!(list_schedule(&[2.0, 2.0], 2, &[], Some(2)), 2.0);
    }

    #[test]
    fn calibration_from_a_finished_trial_and_by_kind() {
        let sizes = DataSummary {
            train: 1000,
            val: 0,
            test: 0,
            ..DataSummary::default()
        };
        let cfg = TrialConfig {
            batch_size: 100,
            epochs: 4,
            ..TrialConfig::default()
        };
        let r = TrialResult {
            status: Status::Ok,
            epochs_run: 2,
            train_seconds: 2.0,
            total_seconds: 2.5,
            data: sizes.clone(),
            ..TrialResult::default()
        };
        let mut cal = Calibration::default();
        assert!(cal.add_finished(&cfg, &r));
        // 20 steps in 2 s: 0.1 s a step; 0.5 s outside the steps (no evaluation here).
        let w = work(&cfg, &sizes);
        let s = cal.seconds(&cfg, &w, 0).unwrap();
        assert!((s - (0.5 + 40.0 * 0.1)).abs() < 1e-9, "{s}");
        // Another batch size of the same kind: by FLOP rate.
        let other = TrialConfig {
            batch_size: 200,
            ..cfg.clone()
        };
        let w2 = work(&other, &sizes);
        let s2 = cal.seconds(&other, &w2, 0).unwrap();
        assert!((s2 - (0.5 + 4.0)).abs() < 1e-9, "{s2}");
        // No MLP was measured.
        let mlp = TrialConfig {
            model: model(ModelKind::Mlp, vec![8]),
            ..cfg
        };
        assert!(cal.seconds(&mlp, &work(&mlp, &sizes), 0).is_none());
        // A failed trial measures nothing.
        let failed = TrialResult {
            status: Status::Failed,
            ..r
        };
        assert!(!Calibration::default().add_finished(&mlp, &failed));
    }

    #[test]
    fn threads_scale_sub_linearly() {
        assert_eq!(thread_speedup(2, 2), 1.0);
        let two = thread_speedup(1, 2);
        assert!(two > 1.0 && two < 2.0, "{two}");
        assert!((thread_speedup(2, 1) * two - 1.0).abs() < 1e-12);
    }

    #[test]
    fn texts() {
        assert_eq!(flop_text(3.14e12), "3.1 TFLOP");
        assert_eq!(flop_text(5.0e8), "500.0 MFLOP");
        assert_eq!(eta_text(4.24), "~4.2 s");
        assert_eq!(eta_text(130.0), "~2m10s");
        assert_eq!(eta_text(3900.0), "~1h05m");
    }
}
