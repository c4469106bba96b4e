//! A running trial's rows as they come: `trials/<id>/live.jsonl`, one JSON object a line (an
//! epoch's metrics, or a program's metrics row), appended by the process that trains the trial
//! and read by `serve` from where it last stopped. It is removed once the trial's result is
//! written: `epochs.csv` is the record, this file only the view of an attempt in progress.

use crate::error::{IoContext, Result};
use crate::trial::{EpochRow, MetricRow};
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

/// The file of a running trial's rows, in its directory.
pub const LIVE_FILE: &str = "live.jsonl";

/// An epoch row as a metrics row: its numbers by their epochs.csv column names.
pub fn epoch_metrics(r: &EpochRow) -> MetricRow {
    let mut m = MetricRow::new();
    m.insert("epoch".into(), r.epoch as f64);
    m.insert("train_loss".into(), r.train_loss);
    m.insert("train_accuracy".into(), r.train_accuracy);
    for (k, v) in [
        ("val_loss", r.val_loss),
        ("val_accuracy", r.val_accuracy),
        ("test_loss", r.test_loss),
        ("test_accuracy", r.test_accuracy),
    ] {
        if let Some(v) = v {
            m.insert(k.into(), v);
        }
    }
    m.insert("lr".into(), r.lr);
    m.insert("seconds".into(), r.seconds);
    m
}

/// Appends one row to the trial's live file in one write, so a reader sees whole lines or an
/// unfinished last one, never two rows mixed. Non-finite values are written as null.
pub fn append(trial_dir: &Path, row: &MetricRow) -> Result<()> {
    let path = trial_dir.join(LIVE_FILE);
    let mut line = serde_json::to_string(row)?;
    line.push('\n');
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .at("open", &path)?;
    f.write_all(line.as_bytes()).at("append to", &path)
}

/// What a read of a live file found past an offset.
#[derive(Debug, Default, PartialEq)]
pub struct LiveRead {
    /// The whole rows after the offset, in order (null values read as NaN).
    pub rows: Vec<MetricRow>,
    /// Where the next read starts: after the last whole line.
    pub offset: u64,
    /// The file is shorter than the offset: it was started again, and `rows` are from its start.
    pub restarted: bool,
    /// Lines that are not a JSON object of numbers, skipped.
    pub damaged: usize,
}

/// The whole lines of a live file after `offset` (an unfinished last line waits for the next
/// read). A missing file reads as nothing.
pub fn read_from(path: &Path, offset: u64) -> Result<LiveRead> {
    let mut f = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Gone after rows were read: what comes next starts from nothing.
            return Ok(LiveRead {
                restarted: offset > 0,
                ..Default::default()
            });
        }
        Err(e) => return Err(e).at("open", path),
    };
    let len = f.metadata().at("read", path)?.len();
    let restarted = len < offset;
    let start = if restarted { 0 } else { offset };
    f.seek(SeekFrom::Start(start)).at("read", path)?;
    let mut bytes = vec![];
    f.take(len - start)
        .read_to_end(&mut bytes)
        .at("read", path)?;
    let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let mut read = LiveRead {
        offset: start + whole as u64,
        restarted,
        ..Default::default()
    };
    for line in String::from_utf8_lossy(&bytes[..whole]).lines() {
        match parse_row(line) {
            Some(row) => read.rows.push(row),
            None if line.trim().is_empty() => {}
            None => read.damaged += 1,
        }
    }
    Ok(read)
}

fn parse_row(line: &str) -> Option<MetricRow> {
    let serde_json::Value::Object(map) = serde_json::from_str(line).ok()? else {
        return None;
    };
    map.into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::Null => Some((k, f64::NAN)),
            v => Some((k, v.as_f64()?)),
        })
        .collect()
}

/// The last `max` bytes of a file of a trial (a program's `stdout.log`), as text; `None` when
/// it is missing or lies outside the results directory `root` (a link out of it).
pub fn tail(root: &Path, path: &Path, max: u64) -> Option<String> {
    let (root, real) = (root.canonicalize().ok()?, path.canonicalize().ok()?);
    if !real.starts_with(&root) || !real.is_file() {
        return None;
    }
    let mut f = fs::File::open(&real).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(max))).ok()?;
    let mut bytes = vec![];
    f.read_to_end(&mut bytes).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    // A cut first line is dropped when whole lines follow it.
    let text = match (len > max, text.split_once('\n')) {
        (true, Some((_, rest))) if !rest.trim().is_empty() => rest,
        _ => &text,
    };
    // As a terminal shows it: of a line redrawn with carriage returns (a progress bar), its
    // last drawing.
    let lines: Vec<&str> = text
        .split_inclusive('\n')
        .map(|l| {
            let body = l.trim_end_matches(['\n', '\r']);
            let shown = body.rsplit('\r').next().unwrap_or(body);
            &l[body.len() - shown.len()..]
        })
        .collect();
    Some(lines.concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pairs: &[(&str, f64)]) -> MetricRow {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn whole_lines_only_and_from_where_it_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LIVE_FILE);
        append(dir.path(), &row(&[("epoch", 1.0), ("loss", f64::NAN)])).unwrap();
        let first = read_from(&path, 0).unwrap();
        assert_eq!(first.rows.len(), 1);
        assert!(first.rows[0]["loss"].is_nan(), "null reads back as NaN");
        // A half-written line waits; the next read takes it once whole.
        let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"epoch\":2,").unwrap();
        let half = read_from(&path, first.offset).unwrap();
        assert_eq!((half.rows.len(), half.offset), (0, first.offset));
        f.write_all(b"\"loss\":0.5}\nnot json\n").unwrap();
        let rest = read_from(&path, half.offset).unwrap();
        assert_eq!(rest.rows, vec![row(&[("epoch", 2.0), ("loss", 0.5)])]);
        assert_eq!(rest.damaged, 1);
        // Started again (shorter than the offset): read from the start.
        fs::write(&path, "{\"epoch\":1}\n").unwrap();
        let again = read_from(&path, rest.offset).unwrap();
        assert!(again.restarted);
        assert_eq!(again.rows, vec![row(&[("epoch", 1.0)])]);
        let gone = read_from(&dir.path().join("none"), 7).unwrap();
        assert!(gone.restarted && gone.offset == 0 && gone.rows.is_empty());
        assert!(!read_from(&dir.path().join("none"), 0).unwrap().restarted);
    }

    #[test]
    fn tails_stay_inside_the_results_directory() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("secret");
        fs::write(&secret, "do not show").unwrap();
        let log = root.path().join("stdout.log");
        fs::write(&log, "line 1\nline 2\nline 3\n").unwrap();
        assert_eq!(
            tail(root.path(), &log, 1000).unwrap(),
            "line 1\nline 2\nline 3\n"
        );
        assert_eq!(tail(root.path(), &log, 10).unwrap(), "line 3\n");
        // A progress bar redrawn with carriage returns shows its last drawing; a long last
        // line is kept, cut.
        let bar = root.path().join("bar.log");
        fs::write(&bar, format!("{}done\n", " 10%\r 50%\r".repeat(2000))).unwrap();
        assert_eq!(tail(root.path(), &bar, 1000).unwrap(), "done\n");
        fs::write(&bar, format!("start\n{}end", "x".repeat(5000))).unwrap();
        assert!(tail(root.path(), &bar, 1000).unwrap().ends_with("xxend"));
        let link = root.path().join("stderr.log");
        std::os::unix::fs::symlink(&secret, &link).unwrap();
        assert_eq!(tail(root.path(), &link, 1000), None);
        assert_eq!(tail(root.path(), &root.path().join("none"), 1000), None);
    }
}
