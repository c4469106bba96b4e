//! What the user sees while a sweep runs: indicatif bars on a terminal (one for the sweep, one
//! line per running trial), plain lines otherwise, nothing with --quiet. Every event also goes
//! to the tracing log.

use crate::events::Stop;
use crate::events::SweepEvent;
use crate::format::{metric_text, pct};
use crate::trial::TrialId;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;

/// What a running sweep shows: bars on a terminal, plain lines otherwise, nothing when quiet.
pub struct Display {
    quiet: bool,
    bars: Option<(MultiProgress, ProgressBar)>,
    running: HashMap<TrialId, ProgressBar>,
    total: usize,
    done: usize,
    /// The metric shown when a trial ends (`test_accuracy`, or a program's metric).
    metric: String,
}

impl Display {
    /// A display for `total` trials showing `metric` as each ends; bars only when stdout is a
    /// terminal and not `quiet`.
    pub fn new(quiet: bool, total: usize, metric: &str) -> Display {
        let bars = (!quiet && std::io::stdout().is_terminal()).then(|| {
            let mp = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
            let bar = mp.add(ProgressBar::new(total as u64));
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:.bold} [{bar:30.cyan/blue}] {pos}/{len} trials  {elapsed_precise} elapsed, ETA {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix("sweep");
            (mp, bar)
        });
        Display {
            quiet,
            bars,
            running: HashMap::new(),
            total,
            done: 0,
            metric: metric.into(),
        }
    }

    fn line(&self, s: String) {
        if self.quiet {
            return;
        }
        match &self.bars {
            Some((mp, _)) => {
                let _ = mp.println(s);
            }
            None => crate::outln!("{s}"),
        }
    }

    /// Shows one sweep event (and logs it through tracing, even when quiet).
    pub fn event(&mut self, ev: &SweepEvent) {
        match ev {
            SweepEvent::Started {
                total,
                skipped,
                slots,
            } => {
                tracing::info!(total, skipped, slots = ?slots, "sweep started");
                self.done = *skipped;
                if let Some((_, bar)) = &self.bars {
                    bar.set_position(*skipped as u64);
                }
                self.line(format!(
                    "{total} trials: {skipped} already done, {} to run on {}",
                    total - skipped,
                    slots.join(", ")
                ));
            }
            SweepEvent::TrialStarted {
                id,
                name,
                device,
                epochs,
            } => {
                tracing::info!(%id, %name, %device, "trial started");
                match &self.bars {
                    Some((mp, _)) => {
                        let pb = mp.add(ProgressBar::new(*epochs as u64));
                        pb.set_style(
                            ProgressStyle::with_template("  {prefix} {msg}")
                                .expect("valid template"),
                        );
                        pb.set_prefix(format!("{name} [{device}]"));
                        pb.set_message("starting");
                        self.running.insert(id.clone(), pb);
                    }
                    None => self.line(format!("start  {name} on {device}")),
                }
            }
            SweepEvent::TrialEpoch {
                id,
                name,
                device,
                row,
            } => {
                tracing::info!(%id, %name, %device, epoch = row.epoch, train_loss = row.train_loss,
                    train_accuracy = row.train_accuracy, val_accuracy = ?row.val_accuracy, "epoch");
                if let Some(pb) = self.running.get(id) {
                    pb.set_position(row.epoch as u64);
                    pb.set_message(format!(
                        "epoch {}/{}  loss {:.4}  train {}  val {}",
                        row.epoch,
                        pb.length().unwrap_or(0),
                        row.train_loss,
                        pct(Some(row.train_accuracy)),
                        pct(row.val_accuracy)
                    ));
                }
            }
            SweepEvent::TrialMetrics { id, row, .. } => {
                tracing::info!(%id, ?row, "metrics");
                if let Some(pb) = self.running.get(id) {
                    if let Some(e) = row.get("epoch") {
                        pb.set_position(e.max(0.0) as u64);
                    }
                    let shown: Vec<String> = row
                        .iter()
                        .take(4)
                        .map(|(k, v)| format!("{k} {}", metric_text(k, Some(*v))))
                        .collect();
                    pb.set_message(shown.join("  "));
                }
            }
            SweepEvent::TrialFinished { result: r, .. } => {
                let status = r.status.as_str();
                if let Some(e) = &r.error {
                    tracing::warn!(id = %r.id, name = %r.name, status, error = %e, "trial finished");
                } else {
                    tracing::info!(id = %r.id, name = %r.name, status, test_accuracy = ?r.test_accuracy,
                        seconds = r.total_seconds, "trial finished");
                }
                if let Some(pb) = self.running.remove(&r.id) {
                    pb.finish_and_clear();
                }
                self.done += 1;
                if let Some((_, bar)) = &self.bars {
                    bar.set_position(self.done as u64);
                }
                let extra = match &r.error {
                    Some(e) => format!("  error: {e}"),
                    None => format!(
                        "  {} {}",
                        self.metric,
                        metric_text(&self.metric, r.metric(&self.metric))
                    ),
                };
                self.line(format!(
                    "done   {} [{}] {status} in {:.1}s{extra}  ({}/{})",
                    r.name, r.device, r.total_seconds, self.done, self.total
                ));
            }
            SweepEvent::Stopping { stage } => {
                tracing::warn!(?stage, "stopping");
                self.line(match stage {
                    Stop::No | Stop::New => {
                        "interrupt: no new trials start; running ones finish (Ctrl-C again to stop them)"
                    }
                    Stop::Running => {
                        "interrupt: stopping running trials, recorded as interrupted (once more to kill them now)"
                    }
                    Stop::Now => "interrupt: killing running trials now",
                }
                .into());
            }
            SweepEvent::Done { seconds } => {
                tracing::info!(seconds, "sweep done");
            }
        }
    }

    /// Finishes the sweep bar, leaving it on screen.
    pub fn finish(&mut self) {
        if let Some((_, bar)) = &self.bars {
            bar.finish();
        }
    }
}
