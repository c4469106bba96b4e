//! Test-set error analysis from plain per-sample predictions: confusion matrix, per-class
//! accuracy, most-confused pairs and the most confidently wrong digits. No tensors, so it is
//! tested on hand-made inputs.

use super::Mistake;
use crate::data::{CLASSES, PIXELS};

/// How many misclassified test digits a result keeps for the report.
pub const KEEP_MISTAKES: usize = 25;
/// How many (truth, predicted) pairs a result keeps as the most confused.
pub const KEEP_CONFUSED: usize = 5;

/// What the report shows about a model's errors on the test set.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TestAnalysis {
    /// `confusion_matrix[truth][predicted]`: how many test digits got that answer.
    pub confusion_matrix: Vec<Vec<u64>>,
    /// Per true class, the fraction answered right (0 for a class absent from the test set).
    pub per_class_accuracy: Vec<f64>,
    /// `(truth, predicted, count)` of the most frequent errors, largest count first.
    pub most_confused: Vec<(u8, u8, u64)>,
    /// The most confidently wrong test digits, most confident first.
    pub mistakes: Vec<Mistake>,
}

/// Analyses one evaluation of the test set: `predictions[i]` with softmax probability
/// `confidence[i]` for the digit whose true class is `labels[i]` and whose raw pixels are
/// `pixels[i·784..(i+1)·784]`.
pub fn analyse(
    predictions: &[u8],
    confidence: &[f32],
    labels: &[u8],
    pixels: &[u8],
) -> TestAnalysis {
    let confusion_matrix = confusion(predictions, labels);
    TestAnalysis {
        per_class_accuracy: per_class_accuracy(&confusion_matrix),
        most_confused: most_confused(&confusion_matrix),
        mistakes: mistakes(predictions, confidence, labels, pixels),
        confusion_matrix,
    }
}

fn confusion(predictions: &[u8], labels: &[u8]) -> Vec<Vec<u64>> {
    let mut cm = vec![vec![0u64; CLASSES]; CLASSES];
    for (p, t) in predictions.iter().zip(labels) {
        cm[usize::from(*t)][usize::from(*p)] += 1;
    }
    cm
}

fn per_class_accuracy(cm: &[Vec<u64>]) -> Vec<f64> {
    cm.iter()
        .enumerate()
        .map(|(i, row)| row[i] as f64 / row.iter().sum::<u64>().max(1) as f64)
        .collect()
}

fn most_confused(cm: &[Vec<u64>]) -> Vec<(u8, u8, u64)> {
    let mut pairs: Vec<(u8, u8, u64)> = (0..CLASSES)
        .flat_map(|t| (0..CLASSES).map(move |p| (t, p)))
        .filter(|(t, p)| t != p)
        .map(|(t, p)| (t as u8, p as u8, cm[t][p]))
        .filter(|x| x.2 > 0)
        .collect();
    // Ties go to the smaller (truth, predicted) so the list does not depend on the sort.
    pairs.sort_by(|a, b| b.2.cmp(&a.2).then((a.0, a.1).cmp(&(b.0, b.1))));
    pairs.truncate(KEEP_CONFUSED);
    pairs
}

fn mistakes(predictions: &[u8], confidence: &[f32], labels: &[u8], pixels: &[u8]) -> Vec<Mistake> {
    let mut wrong: Vec<usize> = (0..labels.len())
        .filter(|&i| predictions[i] != labels[i])
        .collect();
    // Most confidently wrong first (S5's "25 most confidently wrong"); the sort is stable, so
    // equal confidences keep test-set order.
    wrong.sort_by(|&a, &b| confidence[b].total_cmp(&confidence[a]));
    wrong
        .iter()
        .take(KEEP_MISTAKES)
        .map(|&i| Mistake {
            index: i,
            truth: labels[i],
            predicted: predictions[i],
            confidence: f64::from(confidence[i]),
            pixels: hex(&pixels[i * PIXELS..(i + 1) * PIXELS]),
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Raw pixels where digit `i` is filled with the byte `i`, so a mistake's pixels name it.
    fn pixels(n: usize) -> Vec<u8> {
        (0..n).flat_map(|i| [i as u8; PIXELS]).collect()
    }

    #[test]
    fn confusion_matrix_counts_truth_by_prediction() {
        let labels = [0, 0, 1, 1, 1, 2];
        let predictions = [0, 1, 1, 1, 2, 2];
        let a = analyse(&predictions, &[0.9; 6], &labels, &pixels(6));
        assert_eq!(a.confusion_matrix.len(), CLASSES);
        assert_eq!(a.confusion_matrix[0][..3], [1, 1, 0]);
        assert_eq!(a.confusion_matrix[1][..3], [0, 2, 1]);
        assert_eq!(a.confusion_matrix[2][..3], [0, 0, 1]);
        assert_eq!(a.confusion_matrix.iter().flatten().sum::<u64>(), 6);
    }

    #[test]
    fn per_class_accuracy_is_zero_for_absent_classes() {
        let a = analyse(&[0, 1, 1, 1], &[0.5; 4], &[0, 0, 1, 1], &pixels(4));
        assert_eq!(a.per_class_accuracy.len(), CLASSES);
        assert_eq!(a.per_class_accuracy[..3], [0.5, 1.0, 0.0]);
        assert!(a.per_class_accuracy[3..].iter().all(|&x| x == 0.0));
    }

    #[test]
    fn most_confused_is_by_count_then_by_pair_and_keeps_five() {
        // 3→5 twice, 7→1 twice, then one each of 0→1, 0→2, 1→0, 2→0.
        let labels = [3, 3, 7, 7, 0, 0, 1, 2, 4];
        let predictions = [5, 5, 1, 1, 1, 2, 0, 0, 4];
        let a = analyse(&predictions, &[0.5; 9], &labels, &pixels(9));
        assert_eq!(
            a.most_confused,
            vec![(3, 5, 2), (7, 1, 2), (0, 1, 1), (0, 2, 1), (1, 0, 1)]
        );
    }

    #[test]
    fn mistakes_are_the_most_confident_wrong_answers_first_ties_in_test_order() {
        let labels = [1, 2, 3, 4, 5];
        let predictions = [1, 0, 0, 0, 0];
        let confidence = [0.99, 0.6, 0.8, 0.6, 0.7];
        let a = analyse(&predictions, &confidence, &labels, &pixels(5));
        let order: Vec<usize> = a.mistakes.iter().map(|m| m.index).collect();
        assert_eq!(order, vec![2, 4, 1, 3]);
        let m = &a.mistakes[0];
        assert_eq!((m.truth, m.predicted), (3, 0));
        assert_eq!(m.confidence, f64::from(0.8f32));
        assert_eq!(m.pixels, "02".repeat(PIXELS));
    }

    #[test]
    fn keeps_at_most_25_mistakes_and_none_when_all_right() {
        let n = 40;
        let labels = vec![1u8; n];
        let a = analyse(&vec![0u8; n], &vec![0.5; n], &labels, &pixels(n));
        assert_eq!(a.mistakes.len(), KEEP_MISTAKES);
        assert_eq!(a.mistakes.last().unwrap().index, KEEP_MISTAKES - 1);
        let a = analyse(&labels, &vec![0.5; n], &labels, &pixels(n));
        assert!(a.mistakes.is_empty() && a.most_confused.is_empty());
        assert!(a.per_class_accuracy[1] == 1.0);
    }
}
