//! The title, the description and the facts of the sweep: data, trials by status, time, devices.

use super::super::{Block, Loaded, utc_now};
use crate::format::duration;
use std::collections::BTreeMap;

/// Title, description and the overview table.
pub fn section(l: &Loaded) -> Vec<Block> {
    let mut b = vec![Block::Heading(
        1,
        l.options
            .title
            .clone()
            .unwrap_or_else(|| format!("Sweep `{}`", l.name)),
    )];
    if !l.description.is_empty() {
        b.push(Block::Para(l.description.clone()));
    }
    let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &l.rows {
        *by_status.entry(r.result.status.as_str()).or_default() += 1;
    }
    let total: f64 = l.rows.iter().map(|r| r.result.total_seconds).sum();
    let mut devices: Vec<&str> = l.rows.iter().map(|r| r.result.device.as_str()).collect();
    devices.sort_unstable();
    devices.dedup();
    let trials = format!(
        "{} of {} planned: {}",
        l.rows.len(),
        l.planned,
        by_status
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    b.push(Block::Table(
        vec![String::new(), String::new()],
        vec![
            vec!["generated".into(), utc_now()],
            match &l.program {
                Some(p) => vec!["program".into(), format!("`{}`", p.command.join(" "))],
                None => vec!["data".into(), data_line(l)],
            },
            vec!["trials".into(), trials],
            vec!["time in trials".into(), duration(total)],
            vec!["devices".into(), devices.join(", ")],
        ],
        None,
    ));
    b
}

/// The data source and split sizes (a range of training sizes when they vary).
fn data_line(l: &Loaded) -> String {
    let Some(first) = l.rows.iter().find(|r| r.result.data.train > 0) else {
        return "no trial finished".into();
    };
    let d = &first.result.data;
    let mut sizes: Vec<usize> = l
        .rows
        .iter()
        .map(|r| r.result.data.train)
        .filter(|n| *n > 0)
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    let train = if sizes.len() > 1 {
        format!("{}–{}", sizes[0], sizes[sizes.len() - 1])
    } else {
        d.train.to_string()
    };
    format!(
        "{}; train {train}, validation {}, test {}",
        d.source, d.val, d.test
    )
}
