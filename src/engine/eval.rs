//! Evaluation on a held-out split: the split kept on the device, and the loss, accuracy and
//! per-sample answers of a model on it, read back in batches.

use super::model::Net;
use super::net_ops::NetOps;
use crate::data::{CLASSES, PIXELS, Part};
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use std::time::Instant;

/// Samples per forward pass when evaluating.
pub const EVAL_BATCH: usize = 1000;

/// Loss and accuracy over a whole set, with each sample's answer and its probability.
pub struct Eval {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Fraction of samples classified right, in [0, 1].
    pub accuracy: f64,
    /// Each sample's predicted class.
    pub predictions: Vec<u8>,
    /// Each sample's softmax probability of its predicted class.
    pub confidence: Vec<f32>,
    /// Wall time of each batch's forward pass, in milliseconds.
    pub batch_ms: Vec<f64>,
}

/// A split held on the device, ready for evaluation.
pub struct DeviceSet<B: Backend> {
    x: Option<Tensor<B, 2>>,
    /// The labels, kept on the host.
    pub y: Vec<u8>,
}

impl<B: Backend> DeviceSet<B> {
    /// Moves the split's pixels to `device`, leaving `part.x` empty (nothing for an empty
    /// split).
    pub fn new(part: &mut Part, device: &B::Device) -> Self {
        let x = (!part.is_empty()).then(|| {
            let pixels = std::mem::take(&mut part.x);
            Tensor::from_data(TensorData::new(pixels, [part.len(), PIXELS]), device)
        });
        DeviceSet {
            x,
            y: part.y.clone(),
        }
    }
}

/// The model's loss, accuracy and answers on a whole set, in batches of [`EVAL_BATCH`];
/// `None` for an empty set.
pub fn evaluate<B: NetOps>(model: &Net<B>, set: &DeviceSet<B>) -> Option<Eval> {
    let x = set.x.as_ref()?;
    let n = set.y.len();
    let mut loss = 0f64;
    let mut correct = 0usize;
    let mut predictions = Vec::with_capacity(n);
    let mut confidence = Vec::with_capacity(n);
    let mut batch_ms = vec![];
    let mut start = 0;
    while start < n {
        let len = EVAL_BATCH.min(n - start);
        let t = Instant::now();
        let logp = log_softmax(model.forward(x.clone().narrow(0, start, len), None), 1);
        let values: Vec<f32> = logp.into_data().iter::<f32>().collect();
        batch_ms.push(t.elapsed().as_secs_f64() * 1e3);
        for (row, &truth) in values.chunks(CLASSES).zip(&set.y[start..start + len]) {
            loss -= f64::from(row[usize::from(truth)]);
            let (pred, best) =
                row.iter()
                    .enumerate()
                    .fold(
                        (0, f32::NEG_INFINITY),
                        |acc, (i, &v)| {
                            if v > acc.1 { (i, v) } else { acc }
                        },
                    );
            correct += usize::from(pred == usize::from(truth));
            predictions.push(pred as u8);
            confidence.push(best.exp());
        }
        start += len;
    }
    Some(Eval {
        loss: loss / n as f64,
        accuracy: correct as f64 / n as f64,
        predictions,
        confidence,
        batch_ms,
    })
}
