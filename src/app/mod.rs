//! What each command does, in order: read and check the sweep, plan, run, store, report. Each
//! command is a function from what the user said to text for the terminal or a typed error.

pub mod estimate;
mod plan_diff;
mod run;
mod status;
mod submit;
mod train;

pub use run::{run, run_with, worker};
pub use status::status;
pub use submit::submit;
pub use train::RunOutcome;

use crate::error::{Error, IoContext, Result};
use crate::format::text_table;
use crate::plan::{self, Plan};
use crate::spec::{Method, Override, Pos, Spec};
use std::path::Path;

/// Reads, checks and expands a sweep file; `data_dir` replaces every trial's data.path. A
/// program's working directory becomes the sweep file's directory, made absolute.
pub fn load_plan(file: &Path, data_dir: Option<&Path>) -> Result<(Spec, Plan)> {
    let mut spec = Spec::load(file)?;
    if let Some(p) = &mut spec.program {
        if data_dir.is_some() {
            return Err(Error::Input(format!(
                "{}: --data-dir sets the data of built-in models; this sweep runs a program, which reads its own data",
                file.display()
            )));
        }
        let parent = file.parent().filter(|d| !d.as_os_str().is_empty());
        let dir = parent.unwrap_or(Path::new("."));
        p.workdir = std::fs::canonicalize(dir)
            .at("resolve the directory of", file)?
            .display()
            .to_string();
    }
    if let Some(dir) = data_dir {
        spec.base.push(Override {
            key: "data.path".into(),
            value: serde_json::Value::String(dir.display().to_string()),
            pos: Pos::default(),
            section: "--data-dir".into(),
        });
    }
    let plan = plan::expand(&spec)?;
    Ok((spec, plan))
}

/// `hypersweep validate`: `ok: N trials` or the first error.
pub fn validate(file: &Path) -> Result<String> {
    let (spec, plan) = load_plan(file, None)?;
    let n = plan.trials.len();
    Ok(format!(
        "ok: {n} trial{}{}",
        if n == 1 { "" } else { "s" },
        proposed_later(&spec, n)
    ))
}

/// `hypersweep patterns FILE --log LOG`: the metric rows a program trial would record from
/// this output, as a table, then each pattern's count of matching lines; a pattern that never
/// matched is named.
pub fn patterns(file: &Path, log: &Path) -> Result<String> {
    let (spec, _) = load_plan(file, None)?;
    let Some(program) = &spec.program else {
        return Err(Error::Input(format!(
            "{}: `patterns` reads a program's output; this sweep has no `program:`",
            file.display()
        )));
    };
    let text = std::fs::read(log)
        .map_err(|e| Error::Data(format!("cannot read the log {}: {e}", log.display())))?;
    let patterns =
        crate::program::patterns::Patterns::new(&program.patterns).map_err(Error::Internal)?;
    let mut rows = crate::program::metrics::StdoutRows::with_patterns(patterns);
    for line in String::from_utf8_lossy(&text).split(['\n', '\r']) {
        rows.line(line);
    }
    let counts = rows.patterns().matched().clone();
    let notes = rows.patterns().unmatched_notes();
    let (rows, _) = rows.finish().into_rows();
    let mut names: Vec<String> = vec![];
    for r in &rows {
        for k in r.keys() {
            if !names.contains(k) {
                names.push(k.clone());
            }
        }
    }
    // The counters first, as in epochs.csv.
    names.sort_by_key(|n| !matches!(n.as_str(), "epoch" | "step"));
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            names
                .iter()
                .map(|n| r.get(n).map(ToString::to_string).unwrap_or_default())
                .collect()
        })
        .collect();
    let mut out = if rows.is_empty() {
        "no metrics: no pattern matched and no line was name=value pairs\n".to_string()
    } else {
        text_table(&names, &table)
    };
    out += &format!(
        "{} row{}\n",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    );
    for (name, n) in &counts {
        out += &format!(
            "pattern `{name}`: matched {n} line{}\n",
            if *n == 1 { "" } else { "s" }
        );
    }
    for n in notes {
        out += &format!("warning: {n}\n");
    }
    Ok(out)
}

/// For a TPE sweep, the trials proposed while it runs, beyond the planned random start.
fn proposed_later(spec: &Spec, planned: usize) -> String {
    match spec.search.count {
        Some((count, _)) if spec.search.method == Method::Tpe && count > planned => {
            format!(
                ", and {} more proposed by TPE as trials finish",
                count - planned
            )
        }
        _ => String::new(),
    }
}

/// `hypersweep plan`: the trials as a table, or as JSON with their full configs (a program
/// trial's: its command and parameters); with `estimated`, each trial's estimated time and a
/// summary line of the work and the wall time on the slots `run` would get.
pub fn plan_text(
    file: &Path,
    json: bool,
    data_dir: Option<&Path>,
    (estimated, slots): (Option<&estimate::Options<'_>>, &crate::cli::SlotArgs),
) -> Result<String> {
    let (spec, plan) = load_plan(file, data_dir)?;
    let est = estimated
        .map(|opts| estimate::for_plan(&plan, opts))
        .transpose()?;
    let cell = |i: usize| est.as_ref().map(|e| &e.trials[i]);
    let groups = fusion_groups(&plan, slots.fuse.or(spec.fuse), slots)?;
    if json {
        let arr: Vec<serde_json::Value> = plan
            .trials
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let mut v = serde_json::json!({
                    "id": t.id,
                    "name": t.name,
                    "varied": t.varied.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<serde_json::Map<_, _>>(),
                    "params": t.config,
                });
                if let Some(e) = cell(i) {
                    v["estimate"] = serde_json::json!({
                        "flop": e.flop, "seconds": e.seconds, "done": e.done,
                    });
                }
                if let Some(g) = &groups {
                    v["group"] = serde_json::json!(g.of[i]);
                }
                v
            })
            .collect();
        return Ok(serde_json::to_string_pretty(&arr)?);
    }
    let mut headers = vec!["id".to_string(), "name".to_string()];
    headers.extend(plan.axes.iter().cloned());
    if est.is_some() {
        headers.push("estimate".into());
    }
    if groups.is_some() {
        headers.push("group".into());
    }
    let rows: Vec<Vec<String>> = plan
        .trials
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut r = vec![t.id.to_string(), t.name.clone()];
            for a in &plan.axes {
                r.push(
                    t.varied_value(a)
                        .map(crate::trial::value_text)
                        .unwrap_or_default(),
                );
            }
            if let Some(e) = cell(i) {
                r.push(e.cell());
            }
            if let Some(g) = &groups {
                r.push(format!("g{}", g.of[i]));
            }
            r
        })
        .collect();
    let mut out = text_table(&headers, &rows);
    let n = plan.trials.len();
    out += &format!(
        "{n} trial{}{}\n",
        if n == 1 { "" } else { "s" },
        proposed_later(&spec, n)
    );
    if let Some(g) = &groups {
        out += &g.summary;
    }
    if let Some(e) = &est {
        out += &e.summary;
    }
    Ok(out)
}

/// The fusion groups `run` would train: each trial's group number (from 1) and a line saying
/// how many groups of which sizes. `None` without fusion.
struct PlannedGroups {
    of: Vec<usize>,
    summary: String,
}

fn fusion_groups(
    plan: &Plan,
    fuse: Option<crate::spec::Fuse>,
    slots: &crate::cli::SlotArgs,
) -> Result<Option<PlannedGroups>> {
    let Some(fuse) = fuse else { return Ok(None) };
    let k = crate::plan::fusion::group_size(fuse, &slots.slots(plan.trials.len())?);
    if k <= 1 {
        return Ok(None);
    }
    let trials = plan.trials.iter().map(|t| (t.clone(), 0.0)).collect();
    let groups = crate::plan::fusion::groups(trials, k);
    let index: std::collections::HashMap<&crate::trial::TrialId, usize> = plan
        .trials
        .iter()
        .enumerate()
        .map(|(i, t)| (&t.id, i))
        .collect();
    let mut of = vec![0; plan.trials.len()];
    for (g, (members, _)) in groups.iter().enumerate() {
        for t in members {
            of[index[&t.id]] = g + 1;
        }
    }
    let fused = groups.iter().filter(|g| g.0.len() > 1).count();
    let sizes: Vec<String> = groups.iter().map(|g| g.0.len().to_string()).collect();
    let summary = format!(
        "fused (--fuse {fuse}: at most {k} a group): {} groups, {fused} of them fused (sizes {})\n",
        groups.len(),
        sizes.join(", ")
    );
    Ok(Some(PlannedGroups { of, summary }))
}
