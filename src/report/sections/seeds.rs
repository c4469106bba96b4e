//! Over seeds: mean ± std of each setting when the sweep repeats trials with `seeds`.

use super::super::{Block, Loaded};
use super::axes::Plotted;
use super::{MAX_LISTED, setting_label};
use crate::format::{mean_std, metric_text};

/// One row per setting (the other varied values): n, test accuracy and training time.
pub fn section(l: &Loaded) -> Vec<Block> {
    if !l.axes.iter().any(|a| a == "seed") {
        return vec![];
    }
    let m = Plotted::of(l);
    let percent = l.program.is_none();
    let others: Vec<&String> = l.axes.iter().filter(|a| *a != "seed").collect();
    // (setting, test accuracies, training seconds), in first-seen order.
    let mut groups: Vec<(String, Vec<f64>, Vec<f64>)> = vec![];
    for r in &l.rows {
        let mut key = setting_label(r, &others, false);
        if key.is_empty() {
            key = "all".into();
        }
        let idx = groups.iter().position(|g| g.0 == key).unwrap_or_else(|| {
            groups.push((key, vec![], vec![]));
            groups.len() - 1
        });
        if let Some(a) = m.value(r) {
            groups[idx].1.push(a);
        }
        groups[idx].2.push(r.result.train_seconds);
    }
    let mut groups: Vec<_> = groups.into_iter().filter(|g| !g.1.is_empty()).collect();
    let total = groups.len();
    let note = (total > MAX_LISTED).then(|| {
        // A large sweep lists its best settings (by mean), like the results table.
        let sign = if m.maximize(l) { -1.0 } else { 1.0 };
        groups.sort_by(|a, b| (sign * mean_std(&a.1).0).total_cmp(&(sign * mean_std(&b.1).0)));
        groups.truncate(MAX_LISTED);
        Block::Para(format!(
            "Listed: the best {MAX_LISTED} of {total} settings by their mean; every trial is in summary.csv."
        ))
    });
    let rows = groups
        .iter()
        .map(|g| {
            let (mean, std) = mean_std(&g.1);
            let (tm, ts) = mean_std(&g.2);
            let value = if percent {
                format!("{:.2}% ± {:.2}", mean * 100.0, std * 100.0)
            } else {
                format!(
                    "{} ± {}",
                    metric_text(&m.key, Some(mean)),
                    metric_text(&m.key, Some(std))
                )
            };
            vec![
                g.0.clone(),
                g.1.len().to_string(),
                value,
                format!("{tm:.1} ± {ts:.1}"),
            ]
        })
        .collect();
    let mut b = vec![
        Block::Heading(2, "Over seeds (mean ± std)".into()),
        Block::Table(
            vec![
                "setting".into(),
                "n".into(),
                if l.program.is_some() {
                    m.label.clone()
                } else {
                    "test acc".into()
                },
                "train seconds".into(),
            ],
            rows,
            None,
        ),
    ];
    b.extend(note);
    b
}
