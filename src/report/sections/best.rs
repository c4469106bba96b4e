//! The best trial in detail: confusion matrix, per-class accuracy, the most confused pairs and
//! the most confidently wrong test digits.

use super::super::{Block, Loaded, TrialRow, metric_of};
use crate::data::Dataset;
use crate::format::metric_text;

/// The best trial of a program sweep: its parameters, final metrics and command.
pub fn program(l: &Loaded, order: &[&TrialRow]) -> Vec<Block> {
    let Some(best) = order.first().filter(|r| metric_of(r, &l.options).is_some()) else {
        return vec![];
    };
    let mut rows: Vec<Vec<String>> = best
        .varied
        .iter()
        .map(|(k, v)| vec![k.clone(), crate::trial::value_text(v)])
        .collect();
    rows.extend(
        best.result
            .metrics
            .iter()
            .map(|(k, v)| vec![k.clone(), metric_text(k, Some(*v))]),
    );
    vec![
        Block::Heading(2, format!("Best trial: {}", best.name)),
        Block::Para(format!(
            "Best by {} of the {} finished trials; its files are in trials/{}/ (stdout.log, stderr.log, metrics.jsonl).",
            l.options.metric,
            l.rows.len(),
            best.id
        )),
        Block::Table(vec!["".into(), "value".into()], rows, None),
    ]
}

/// The best trial's section, when it has a confusion matrix.
pub fn section(order: &[&TrialRow]) -> Vec<Block> {
    let Some(best) = order
        .first()
        .filter(|r| !r.result.confusion_matrix.is_empty())
    else {
        return vec![];
    };
    let x = &best.result;
    let data = Dataset::from_label(&x.data.source);
    let classes: Vec<String> = (0..x.confusion_matrix.len())
        .map(|i| data.class(i))
        .collect();
    let mut b = vec![
        Block::Heading(2, format!("Best trial: {}", best.name)),
        Block::Plot(
            "confusion".into(),
            super::super::digits::confusion(
                &format!("Confusion matrix — {}", best.name),
                &x.confusion_matrix,
                &classes,
            ),
        ),
    ];
    let headers = std::iter::once("class".to_string())
        .chain(classes.iter().cloned())
        .collect();
    let accuracy = std::iter::once("accuracy".to_string())
        .chain(
            x.per_class_accuracy
                .iter()
                .map(|a| format!("{:.1}%", a * 100.0)),
        )
        .collect();
    b.push(Block::Table(headers, vec![accuracy], None));
    if !x.most_confused.is_empty() {
        b.push(Block::Para(
            "Most confused pairs (true → predicted):".into(),
        ));
        b.push(Block::Table(
            ["true", "predicted", "count"].map(String::from).to_vec(),
            x.most_confused
                .iter()
                .map(|(t, p, c)| {
                    let name = |i: &u8| data.class(usize::from(*i));
                    vec![name(t), name(p), c.to_string()]
                })
                .collect(),
            None,
        ));
    }
    let wrong: u64 = x
        .confusion_matrix
        .iter()
        .enumerate()
        .map(|(i, r)| r.iter().sum::<u64>() - r[i])
        .sum();
    b.push(Block::Para(format!(
        "{wrong} of {} test {} misclassified. The most confidently wrong:",
        x.confusion_matrix.iter().flatten().sum::<u64>(),
        data.items()
    )));
    if !x.mistakes.is_empty() {
        let digits: Vec<(String, String)> = x
            .mistakes
            .iter()
            .map(|m| {
                let (t, p) = (usize::from(m.truth), usize::from(m.predicted));
                let confidence = m.confidence * 100.0;
                let caption = match data {
                    Dataset::Mnist => format!("{t}→{p} ({confidence:.0}%)"),
                    // Names are long: one line each.
                    _ => format!("{} →\n{} {confidence:.0}%", data.class(t), data.class(p)),
                };
                (m.pixels.clone(), caption)
            })
            .collect();
        b.push(Block::Plot(
            "mistakes".into(),
            super::super::digits::digit_grid(
                &format!(
                    "Misclassified test {} (true → predicted, confidence)",
                    data.items()
                ),
                &digits,
            ),
        ));
    }
    b
}
