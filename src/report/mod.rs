//! From a results directory to what the course notebooks made by hand: Polars tables
//! (summary.parquet/csv, epochs.parquet, summary_by_setting.csv) and a report as a list of
//! blocks that each exporter (Markdown, HTML) renders.

pub mod export;
pub mod svg;
pub mod tables;

use crate::engine::{Status, TrialResult};
use crate::spec::{ReportOptions, Spec};
use crate::store::Store;
use anyhow::{Context, Result};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use svg::{LineChart, Series};

/// One trial as the report sees it.
pub struct TrialRow {
    pub id: String,
    pub name: String,
    pub varied: Map<String, Value>,
    pub result: TrialResult,
}

/// A results directory read back.
pub struct Loaded {
    pub dir: PathBuf,
    pub name: String,
    pub description: String,
    pub options: ReportOptions,
    pub axes: Vec<String>,
    pub rows: Vec<TrialRow>,
    pub planned: usize,
}

/// What a report is made of; exporters turn blocks into Markdown or HTML.
pub enum Block {
    Heading(usize, String),
    Para(String),
    /// Headers, rows, and the row to highlight (the best).
    Table(Vec<String>, Vec<Vec<String>>, Option<usize>),
    /// A file stem and SVG text.
    Plot(String, String),
}

pub fn load(dir: &Path) -> Result<Loaded> {
    let store = Store::open(dir)?;
    let plan_csv = std::fs::read_to_string(dir.join("plan.csv"))
        .with_context(|| format!("cannot read {}", dir.join("plan.csv").display()))?;
    let mut lines = plan_csv.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap_or_default()
        .split(',')
        .skip(2)
        .map(str::to_string)
        .collect();
    let ids: Vec<String> = lines
        .filter_map(|l| l.split(',').next().map(str::to_string))
        .filter(|s| !s.is_empty())
        .collect();
    let spec = Spec::load(&dir.join("sweep.yaml")).ok();
    let mut rows = vec![];
    for id in &ids {
        if let Some(result) = store.load(id)? {
            let cfg: Value = std::fs::read_to_string(store.trial_dir(id).join("config.json"))
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or(Value::Null);
            rows.push(TrialRow {
                id: id.clone(),
                name: result.name.clone(),
                varied: cfg
                    .get("varied")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default(),
                result,
            });
        }
    }
    let name = spec.as_ref().map(|s| s.name.clone()).unwrap_or_else(|| {
        dir.file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default()
    });
    Ok(Loaded {
        dir: dir.to_path_buf(),
        name,
        description: spec
            .as_ref()
            .map(|s| s.description.clone())
            .unwrap_or_default(),
        options: spec.map(|s| s.report).unwrap_or_default(),
        axes: header,
        rows,
        planned: ids.len(),
    })
}

/// An x value and every y measured there (one per seed).
type Point = (f64, Vec<f64>);
/// A plot file stem, its label, and the epoch value it draws.
type Curve = (
    &'static str,
    &'static str,
    fn(&crate::engine::EpochRow) -> Option<f64>,
);

fn pct(v: Option<f64>) -> String {
    v.map(|x| format!("{:.2}%", 100.0 * x))
        .unwrap_or_else(|| "–".into())
}

fn metric_of(r: &TrialRow, metric: &str) -> Option<f64> {
    let x = &r.result;
    match metric {
        "test_loss" => x.test_loss.map(|v| -v),
        "best_val_accuracy" => x.best_val_accuracy,
        "best_val_loss" => x.best_val_loss.map(|v| -v),
        "train_accuracy" => x.train_accuracy,
        _ => x.test_accuracy,
    }
}

/// Axis values as numbers when every trial has a number there.
fn numeric_axis(l: &Loaded, axis: &str) -> bool {
    l.rows
        .iter()
        .all(|r| r.varied.get(axis).is_some_and(Value::is_number))
}

fn log_axis(axis: &str, xs: &[f64]) -> bool {
    let lo = xs.iter().copied().fold(f64::MAX, f64::min);
    let hi = xs.iter().copied().fold(f64::MIN, f64::max);
    lo > 0.0
        && (["learning_rate", "batch_size", "train_size", "weight_decay"]
            .iter()
            .any(|k| axis.ends_with(k))
            || hi / lo > 50.0)
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let s = if v.len() > 1 {
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    (m, s)
}

fn hms(s: f64) -> String {
    if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        format!("{:.1} min", s / 60.0)
    } else {
        format!("{:.2} h", s / 3600.0)
    }
}

/// Today's date in UTC (civil-from-days), without a date-time dependency.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// The blocks of one sweep's report.
pub fn blocks(l: &Loaded) -> Vec<Block> {
    let mut b = vec![];
    let o = &l.options;
    b.push(Block::Heading(
        1,
        o.title
            .clone()
            .unwrap_or_else(|| format!("Sweep `{}`", l.name)),
    ));
    if !l.description.is_empty() {
        b.push(Block::Para(l.description.clone()));
    }
    let mut by_status: std::collections::BTreeMap<&str, usize> = Default::default();
    for r in &l.rows {
        *by_status
            .entry(r.result.status.map(Status::as_str).unwrap_or("?"))
            .or_default() += 1;
    }
    let total: f64 = l.rows.iter().map(|r| r.result.total_seconds).sum();
    let mut devices: Vec<&str> = l.rows.iter().map(|r| r.result.device.as_str()).collect();
    devices.sort();
    devices.dedup();
    let data = l
        .rows
        .iter()
        .find(|r| r.result.data.train > 0)
        .map(|r| {
            let d = &r.result.data;
            let sizes: Vec<usize> = {
                let mut v: Vec<usize> = l
                    .rows
                    .iter()
                    .map(|r| r.result.data.train)
                    .filter(|n| *n > 0)
                    .collect();
                v.sort();
                v.dedup();
                v
            };
            let train = if sizes.len() > 1 {
                format!("{}–{}", sizes[0], sizes[sizes.len() - 1])
            } else {
                d.train.to_string()
            };
            format!(
                "{}; train {train}, validation {}, test {}",
                d.source, d.val, d.test
            )
        })
        .unwrap_or_else(|| "no trial finished".into());
    b.push(Block::Table(
        vec!["".into(), "".into()],
        vec![
            vec!["generated".into(), utc_now()],
            vec!["data".into(), data],
            vec![
                "trials".into(),
                format!(
                    "{} of {} planned: {}",
                    l.rows.len(),
                    l.planned,
                    by_status
                        .iter()
                        .map(|(k, v)| format!("{v} {k}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ],
            vec!["time in trials".into(), hms(total)],
            vec!["devices".into(), devices.join(", ")],
        ],
        None,
    ));

    // The comparison table, best first.
    let mut order: Vec<&TrialRow> = l.rows.iter().collect();
    order.sort_by(|a, c| {
        metric_of(c, &o.metric)
            .unwrap_or(f64::NEG_INFINITY)
            .total_cmp(&metric_of(a, &o.metric).unwrap_or(f64::NEG_INFINITY))
    });
    b.push(Block::Heading(
        2,
        format!("Results (sorted by {})", o.metric),
    ));
    let mut headers: Vec<String> = vec!["trial".into(), "status".into()];
    headers.extend(l.axes.iter().cloned());
    headers.extend(
        [
            "test acc",
            "best val acc (epoch)",
            "train acc",
            "train−val gap",
            "epochs",
            "seconds",
            "samples/s",
        ]
        .map(String::from),
    );
    if let Some(t) = o.threshold {
        headers.push(format!("epoch reaching {:.0}%", t * 100.0));
    }
    let rows: Vec<Vec<String>> = order
        .iter()
        .map(|r| {
            let x = &r.result;
            let mut row = vec![
                r.name.clone(),
                x.status.map(Status::as_str).unwrap_or("?").to_string(),
            ];
            row.extend(l.axes.iter().map(|a| {
                r.varied
                    .get(a)
                    .map(crate::plan::value_text)
                    .unwrap_or_default()
            }));
            row.extend([
                pct(x.test_accuracy),
                match (x.best_val_accuracy, x.best_epoch) {
                    (Some(a), Some(e)) => format!("{} ({e})", pct(Some(a))),
                    _ => "–".into(),
                },
                pct(x.train_accuracy),
                tables::gap(r)
                    .map(|g| format!("{:+.2} pt", g * 100.0))
                    .unwrap_or_else(|| "–".into()),
                x.epochs_run.to_string(),
                format!("{:.1}", x.total_seconds),
                x.samples_per_second
                    .map(|s| format!("{s:.0}"))
                    .unwrap_or_else(|| "–".into()),
            ]);
            if let Some(t) = o.threshold {
                row.push(
                    tables::epoch_reaching(r, t, &o.threshold_metric)
                        .map(|e| e.to_string())
                        .unwrap_or_else(|| "never".into()),
                );
            }
            row
        })
        .collect();
    let best = order
        .first()
        .filter(|r| metric_of(r, &o.metric).is_some())
        .map(|_| 0);
    b.push(Block::Table(headers, rows, best));
    if let Some(t) = o.threshold {
        let metric = if o.threshold_metric == "test_accuracy" {
            "test accuracy"
        } else {
            "validation accuracy (test accuracy when there is no validation split)"
        };
        b.push(Block::Para(format!(
            "Threshold: the first epoch at which {metric} reaches {:.1}%.",
            t * 100.0
        )));
    }

    // Flags: what a reader should not miss.
    let mut flags = vec![];
    for r in &l.rows {
        let x = &r.result;
        match x.status {
            Some(Status::Failed) => flags.push(format!(
                "**{}** failed: {}",
                r.name,
                x.error.clone().unwrap_or_default()
            )),
            Some(Status::Diverged) => flags.push(format!(
                "**{}** diverged (loss became NaN or infinite).",
                r.name
            )),
            Some(Status::Interrupted) => flags.push(format!(
                "**{}** was interrupted; rerun the sweep to finish it.",
                r.name
            )),
            _ => {}
        }
        if x.test_accuracy.is_some_and(|a| a < 0.2) && x.status != Some(Status::Diverged) {
            flags.push(format!(
                "**{}** did not learn: test accuracy {} is near chance (10%).",
                r.name,
                pct(x.test_accuracy)
            ));
        }
        for n in &x.notes {
            flags.push(format!("{}: {n}", r.name));
        }
    }
    if !flags.is_empty() {
        b.push(Block::Heading(2, "Notes".into()));
        b.push(Block::Para(
            flags
                .iter()
                .map(|f| format!("- {f}"))
                .collect::<Vec<_>>()
                .join("\n"),
        ));
    }

    // Grouped over seeds.
    if l.axes.iter().any(|a| a == "seed") {
        let others: Vec<&String> = l.axes.iter().filter(|a| *a != "seed").collect();
        let mut groups: Vec<(String, Vec<f64>, Vec<f64>)> = vec![];
        for r in &l.rows {
            let key = others
                .iter()
                .map(|a| {
                    format!(
                        "{}={}",
                        a,
                        r.varied
                            .get(*a)
                            .map(crate::plan::value_text)
                            .unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            let key = if key.is_empty() { "all".into() } else { key };
            let idx = match groups.iter().position(|g| g.0 == key) {
                Some(i) => i,
                None => {
                    groups.push((key, vec![], vec![]));
                    groups.len() - 1
                }
            };
            if let Some(a) = r.result.test_accuracy {
                groups[idx].1.push(a);
            }
            groups[idx].2.push(r.result.train_seconds);
        }
        b.push(Block::Heading(2, "Over seeds (mean ± std)".into()));
        b.push(Block::Table(
            vec![
                "setting".into(),
                "n".into(),
                "test acc".into(),
                "train seconds".into(),
            ],
            groups
                .iter()
                .filter(|g| !g.1.is_empty())
                .map(|g| {
                    let (m, s) = mean_std(&g.1);
                    let (tm, ts) = mean_std(&g.2);
                    vec![
                        g.0.clone(),
                        g.1.len().to_string(),
                        format!("{:.2}% ± {:.2}", m * 100.0, s * 100.0),
                        format!("{tm:.1} ± {ts:.1}"),
                    ]
                })
                .collect(),
            None,
        ));
    }

    // The metric against each varied axis.
    let finished: Vec<&TrialRow> = l
        .rows
        .iter()
        .filter(|r| r.result.test_accuracy.is_some())
        .collect();
    b.push(Block::Heading(2, "Final accuracy".into()));
    let bars: Vec<(String, f64, f64)> = order
        .iter()
        .filter_map(|r| r.result.test_accuracy.map(|a| (r.name.clone(), a, 0.0)))
        .collect();
    if !bars.is_empty() {
        b.push(Block::Plot(
            "test-accuracy".into(),
            svg::bar_chart("Test accuracy per trial", &bars, Some(0)),
        ));
    }
    for axis in l.axes.iter().filter(|a| *a != "seed") {
        if !numeric_axis(l, axis) || finished.is_empty() {
            continue;
        }
        // One series per combination of the other axes (seeds averaged into error bars).
        let others: Vec<&String> = l
            .axes
            .iter()
            .filter(|a| *a != axis && *a != "seed")
            .collect();
        let mut series: Vec<(String, Vec<Point>)> = vec![];
        for r in &finished {
            let label = others
                .iter()
                .map(|a| {
                    format!(
                        "{}={}",
                        a.rsplit('.').next().unwrap_or(a),
                        r.varied
                            .get(*a)
                            .map(crate::plan::value_text)
                            .unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join(",");
            let x = r
                .varied
                .get(axis)
                .and_then(Value::as_f64)
                .unwrap_or(f64::NAN);
            let y = r.result.test_accuracy.unwrap_or(f64::NAN);
            let s = match series.iter().position(|s| s.0 == label) {
                Some(i) => i,
                None => {
                    series.push((label, vec![]));
                    series.len() - 1
                }
            };
            match series[s].1.iter_mut().find(|p| p.0 == x) {
                Some(p) => p.1.push(y),
                None => series[s].1.push((x, vec![y])),
            }
        }
        let xs: Vec<f64> = series
            .iter()
            .flat_map(|s| s.1.iter().map(|p| p.0))
            .collect();
        let chart = LineChart {
            title: &format!("Test accuracy vs {axis}"),
            x_label: axis,
            y_label: "test accuracy",
            log_x: log_axis(axis, &xs),
            markers: true,
            series: series
                .into_iter()
                .map(|(label, mut pts)| {
                    pts.sort_by(|a, c| a.0.total_cmp(&c.0));
                    let stats: Vec<(f64, f64)> = pts.iter().map(|p| mean_std(&p.1)).collect();
                    Series {
                        label: if label.is_empty() {
                            "test accuracy".into()
                        } else {
                            label
                        },
                        points: pts.iter().zip(&stats).map(|(p, s)| (p.0, s.0)).collect(),
                        errors: stats.iter().map(|s| s.1).collect(),
                    }
                })
                .collect(),
        };
        b.push(Block::Plot(
            format!("vs-{}", axis.replace('.', "-")),
            chart.render(),
        ));
    }

    // Learning curves.
    b.push(Block::Heading(2, "Learning curves".into()));
    let curves: [Curve; 6] = [
        ("train-loss", "training loss", |e| Some(e.train_loss)),
        ("val-loss", "validation loss", |e| e.val_loss),
        ("train-accuracy", "training accuracy", |e| {
            Some(e.train_accuracy)
        }),
        ("val-accuracy", "validation accuracy", |e| e.val_accuracy),
        ("test-accuracy-epochs", "test accuracy", |e| e.test_accuracy),
        ("test-loss-epochs", "test loss", |e| e.test_loss),
    ];
    for (stem, label, f) in curves {
        let series: Vec<Series> = l
            .rows
            .iter()
            .map(|r| Series {
                label: r.name.clone(),
                points: r
                    .result
                    .epochs
                    .iter()
                    .filter_map(|e| f(e).map(|v| (e.epoch as f64, v)))
                    .collect(),
                errors: vec![],
            })
            .filter(|s| !s.points.is_empty())
            .collect();
        if series.is_empty() {
            continue;
        }
        let markers = series.iter().all(|s| s.points.len() <= 3);
        b.push(Block::Plot(
            format!("curve-{stem}"),
            LineChart {
                title: &format!("{label} per epoch"),
                x_label: "epoch",
                y_label: label,
                log_x: false,
                markers,
                series,
            }
            .render(),
        ));
    }
    let step_series: Vec<Series> = l
        .rows
        .iter()
        .filter(|r| !r.result.step_losses.is_empty())
        .map(|r| {
            // Long runs are thinned to at most 2,000 points per line.
            let s = &r.result.step_losses;
            let every = s.len().div_ceil(2000).max(1);
            Series {
                label: r.name.clone(),
                points: s
                    .iter()
                    .enumerate()
                    .step_by(every)
                    .map(|(i, v)| ((i + 1) as f64, *v))
                    .collect(),
                errors: vec![],
            }
        })
        .collect();
    if !step_series.is_empty() {
        b.push(Block::Plot(
            "curve-step-loss".into(),
            LineChart {
                title: "training loss per step (iteration t)",
                x_label: "iteration t",
                y_label: "minibatch loss",
                log_x: false,
                markers: false,
                series: step_series,
            }
            .render(),
        ));
    }

    // The best trial in detail.
    if let Some(best) = order
        .first()
        .filter(|r| !r.result.confusion_matrix.is_empty())
    {
        let x = &best.result;
        b.push(Block::Heading(2, format!("Best trial: {}", best.name)));
        b.push(Block::Plot(
            "confusion".into(),
            svg::confusion(
                &format!("Confusion matrix — {}", best.name),
                &x.confusion_matrix,
            ),
        ));
        b.push(Block::Table(
            (0..10)
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .into_iter()
                .fold(vec!["class".to_string()], |mut v, d| {
                    v.push(d);
                    v
                }),
            vec![
                std::iter::once("accuracy".to_string())
                    .chain(
                        x.per_class_accuracy
                            .iter()
                            .map(|a| format!("{:.1}%", a * 100.0)),
                    )
                    .collect(),
            ],
            None,
        ));
        if !x.most_confused.is_empty() {
            b.push(Block::Para(
                "Most confused pairs (true → predicted):".into(),
            ));
            b.push(Block::Table(
                vec!["true".into(), "predicted".into(), "count".into()],
                x.most_confused
                    .iter()
                    .map(|(t, p, c)| vec![t.to_string(), p.to_string(), c.to_string()])
                    .collect(),
                None,
            ));
        }
        let wrong = x
            .confusion_matrix
            .iter()
            .enumerate()
            .map(|(i, r)| r.iter().sum::<u64>() - r[i])
            .sum::<u64>();
        b.push(Block::Para(format!(
            "{wrong} of {} test digits misclassified. The most confidently wrong:",
            x.confusion_matrix.iter().flatten().sum::<u64>()
        )));
        if !x.mistakes.is_empty() {
            b.push(Block::Plot(
                "mistakes".into(),
                svg::digit_grid(
                    "Misclassified test digits (true → predicted, confidence)",
                    &x.mistakes
                        .iter()
                        .map(|m| {
                            (
                                m.pixels.clone(),
                                format!(
                                    "{}→{} ({:.0}%)",
                                    m.truth,
                                    m.predicted,
                                    m.confidence * 100.0
                                ),
                            )
                        })
                        .collect::<Vec<_>>(),
                ),
            ));
        }
    }
    b
}

/// Writes the tables and both report formats into the results directory; returns report.html.
pub fn write(dir: &Path) -> Result<PathBuf> {
    let l = load(dir)?;
    if l.rows.is_empty() {
        return Err(crate::app::UserError(format!(
            "{} holds no finished trial yet",
            dir.display()
        ))
        .into());
    }
    let mut summary = tables::summary(&l)?;
    tables::write_parquet(&mut summary, &dir.join("summary.parquet"))?;
    tables::write_csv(&mut summary, &dir.join("summary.csv"))?;
    let mut epochs = tables::epochs(&l)?;
    tables::write_parquet(&mut epochs, &dir.join("epochs.parquet"))?;
    if let Some(mut g) = tables::by_setting(&l, &summary)? {
        tables::write_csv(&mut g, &dir.join("summary_by_setting.csv"))?;
    }
    let blocks = blocks(&l);
    export::write_all(&blocks, dir)?;
    Ok(dir.join("report.html"))
}

/// Two or more sweeps side by side: one table of every trial, with its sweep.
pub fn compare(dirs: &[PathBuf], out: &Path) -> Result<PathBuf> {
    let mut b = vec![Block::Heading(
        1,
        format!(
            "Comparison: {}",
            dirs.iter()
                .map(|d| d
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default())
                .collect::<Vec<_>>()
                .join(" vs ")
        ),
    )];
    let mut rows = vec![];
    let mut bars = vec![];
    for d in dirs {
        let l = load(d)?;
        for r in &l.rows {
            rows.push(vec![
                l.name.clone(),
                r.name.clone(),
                r.result.status.map(Status::as_str).unwrap_or("?").into(),
                pct(r.result.test_accuracy),
                pct(r.result.best_val_accuracy),
                r.result.epochs_run.to_string(),
                format!("{:.1}", r.result.total_seconds),
            ]);
            if let Some(a) = r.result.test_accuracy {
                bars.push((format!("{}: {}", l.name, r.name), a, 0.0));
            }
        }
    }
    // Best test accuracy first (the percentage text is parsed back; "–" sorts last).
    let key = |r: &Vec<String>| {
        r[3].trim_end_matches('%')
            .parse::<f64>()
            .unwrap_or(f64::NEG_INFINITY)
    };
    rows.sort_by(|a, c| key(c).total_cmp(&key(a)));
    bars.sort_by(|a, c| c.1.total_cmp(&a.1));
    b.push(Block::Table(
        [
            "sweep",
            "trial",
            "status",
            "test acc",
            "best val acc",
            "epochs",
            "seconds",
        ]
        .map(String::from)
        .to_vec(),
        rows,
        Some(0),
    ));
    b.push(Block::Plot(
        "compare-test-accuracy".into(),
        svg::bar_chart("Test accuracy", &bars, Some(0)),
    ));
    std::fs::create_dir_all(out)?;
    export::write_named(&b, out, "compare")?;
    Ok(out.join("compare.html"))
}
