//! Over seeds: mean ± std of each setting when the sweep repeats trials with `seeds`.

use super::super::{Block, Loaded};
use super::axes::Plotted;
use super::{MAX_LISTED, by_setting};
use crate::format::{mean_std, metric_text};

/// One row per setting (the other varied values): n, test accuracy and training time.
pub fn section(l: &Loaded) -> Vec<Block> {
    if !l.axes.iter().any(|a| a == "seed") {
        return vec![];
    }
    let m = Plotted::of(l);
    let percent = l.program.is_none();
    // (setting, test accuracies, training seconds), in first-seen order.
    let groups = by_setting(l).into_iter().map(|(key, rows)| {
        let values: Vec<f64> = rows.iter().filter_map(|r| m.value(r)).collect();
        let seconds: Vec<f64> = rows.iter().map(|r| r.result.train_seconds).collect();
        (key, values, seconds)
    });
    let mut groups: Vec<_> = groups.filter(|g| !g.1.is_empty()).collect();
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
