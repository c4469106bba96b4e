//! Follows the metrics file a program writes: what it appended, read as it grows and to its
//! end after the program exits, and the versions of a file it rewrote instead.

use super::METRICS_FILE;
use super::metrics::{self, Curve};
use crate::trial::MetricRow;
use std::path::PathBuf;

/// Follows a metrics file as the program appends to it: complete lines only, rows capped and
/// thinned by `Curve`. A program may also rewrite the file (`open(path, "w")` each epoch): a
/// file shorter than what was read, or whose first bytes or last bytes read changed, is a new
/// version, read from its start. A version that begins with the previous version's first row
/// repeats its history and replaces it; any other version's rows come after the earlier ones.
#[derive(Default)]
pub struct Tail {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
    /// The first bytes of the current version and the last bytes read (up to `HEAD` each), to
    /// tell a rewrite from growth.
    head: Vec<u8>,
    seam: Vec<u8>,
    /// Rows of the versions before the current one, and of the current one.
    earlier: Curve,
    current: Curve,
    /// The current version's first row.
    first: Option<MetricRow>,
    /// The previous version, until the current one's first row says whether it repeats it.
    replaced: Option<(Curve, Option<MetricRow>)>,
    /// Rows of a repeating version that were already reported as progress.
    replayed: usize,
    rewrites: usize,
    skipped: usize,
}

/// Bytes at the start of a metrics file, and before the offset, compared at every read to
/// notice a rewrite.
const HEAD: usize = 4096;
/// Bytes read from a metrics file at once.
const CHUNK: u64 = 16 << 20;

impl Tail {
    pub fn new(path: PathBuf) -> Tail {
        Tail {
            path,
            ..Tail::default()
        }
    }

    /// Rows reported since the last call (at most one chunk's worth).
    pub fn read_new(&mut self) -> Vec<MetricRow> {
        self.read_chunk().unwrap_or_default()
    }

    /// The next chunk's rows; `None` when there was nothing new to read.
    fn read_chunk(&mut self) -> Option<Vec<MetricRow>> {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = std::fs::File::open(&self.path).ok()?;
        let len = f.metadata().ok()?.len();
        if len < self.offset || !self.unchanged(&f) {
            self.new_version();
        }
        if len <= self.offset {
            return None;
        }
        let mut bytes = vec![];
        f.seek(SeekFrom::Start(self.offset)).ok()?;
        f.take(CHUNK).read_to_end(&mut bytes).ok()?;
        if bytes.is_empty() {
            return None;
        }
        if self.offset < HEAD as u64 {
            let room = HEAD - self.head.len();
            self.head.extend_from_slice(&bytes[..room.min(bytes.len())]);
        }
        self.offset += bytes.len() as u64;
        self.seam
            .extend_from_slice(&bytes[bytes.len().saturating_sub(HEAD)..]);
        self.seam.drain(..self.seam.len().saturating_sub(HEAD));
        self.partial.extend_from_slice(&bytes);
        if self.partial.len() > MAX_LINE && !self.partial.contains(&b'\n') {
            // One line this long is not a metrics row; drop it rather than hold it.
            self.partial.clear();
            self.skipped += 1;
        }
        let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return Some(vec![]);
        };
        let complete: Vec<u8> = self.partial.drain(..=end).collect();
        Some(self.take(&complete))
    }

    /// True when the file still holds the bytes read from its start and those just before the
    /// offset: an append leaves both alone, a rewrite of rows of any length changes one.
    fn unchanged(&self, f: &std::fs::File) -> bool {
        use std::os::unix::fs::FileExt;
        let same = |bytes: &[u8], at: u64| {
            let mut now = vec![0u8; bytes.len()];
            f.read_exact_at(&mut now, at).is_ok() && now == bytes
        };
        same(&self.head, 0) && same(&self.seam, self.offset - self.seam.len() as u64)
    }

    /// The file was rewritten: what was read so far is the previous version.
    fn new_version(&mut self) {
        self.rewrites += 1;
        // The previous version's last row may have had no newline: it was complete all the same
        // if it reads as a row (a half-written line does not, and is dropped).
        if let Some(row) = metrics::json_row(&String::from_utf8_lossy(&self.partial)) {
            self.take_rows(vec![row]);
        }
        self.offset = 0;
        self.partial.clear();
        self.head.clear();
        self.seam.clear();
        let previous = (std::mem::take(&mut self.current), self.first.take());
        // A version that never got a first row is kept as it was.
        if let Some((older, _)) = self.replaced.replace(previous) {
            self.earlier.append(older);
        }
    }

    /// After the program ended: the file to its end, a last line without its newline included.
    pub fn finish(&mut self) {
        while self.read_chunk().is_some() {}
        let rest = std::mem::take(&mut self.partial);
        self.take(&rest);
        if let Some((previous, _)) = self.replaced.take() {
            // The last version stayed empty: the earlier rows are all there is.
            self.earlier.append(previous);
        }
    }

    /// Adds complete lines to the current version; gives the rows not reported before.
    fn take(&mut self, bytes: &[u8]) -> Vec<MetricRow> {
        let (new, skipped) = metrics::file_rows(&String::from_utf8_lossy(bytes));
        self.skipped += skipped;
        self.take_rows(new)
    }

    /// Adds rows to the current version; gives those not reported before.
    fn take_rows(&mut self, mut new: Vec<MetricRow>) -> Vec<MetricRow> {
        if self.first.is_none()
            && let Some(first) = new.first()
        {
            self.first = Some(first.clone());
            if let Some((previous, previous_first)) = self.replaced.take() {
                if previous_first.as_ref() == Some(first) {
                    self.replayed = previous.len();
                } else {
                    self.earlier.append(previous);
                }
            }
        }
        for row in &new {
            self.current.push(row.clone());
        }
        let replayed = self.replayed.min(new.len());
        self.replayed -= replayed;
        new.drain(..replayed);
        new
    }

    /// Every row read, in order, and the notes on how the file was read.
    pub fn into_curve(self) -> (Curve, Vec<String>) {
        let mut notes = vec![];
        if self.rewrites > 0 {
            notes.push(format!(
                "{METRICS_FILE} was rewritten {} time(s) while the program ran (opened for \
                 writing, not appending): each version seen was read, one that began with the \
                 previous version's first row replacing it, others added after it; a version \
                 replaced within 50 ms of being written may be missed: append instead",
                self.rewrites
            ));
        }
        if self.skipped > 0 {
            notes.push(format!(
                "{} line(s) of {METRICS_FILE} were not JSON objects and were skipped",
                self.skipped
            ));
        }
        let mut curve = self.earlier;
        curve.append(self.current);
        (curve, notes)
    }
}

/// Bytes of one metrics line at most.
const MAX_LINE: usize = 1 << 20;

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn row(epoch: u32) -> String {
        format!(
            "{{\"epoch\": {epoch}, \"loss\": {}}}\n",
            1.0 / f64::from(epoch)
        )
    }

    fn epochs(tail: Tail) -> (Vec<f64>, Vec<String>) {
        let (curve, notes) = tail.into_curve();
        let (rows, _) = curve.into_rows();
        (rows.iter().map(|r| r["epoch"]).collect(), notes)
    }

    #[test]
    fn a_file_rewritten_with_its_last_row_only_gives_every_version() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("m.jsonl");
        let mut tail = Tail::new(path.clone());
        let mut reported = vec![];
        // Epoch 10's row is longer than epoch 9's: the file grew, yet it was rewritten.
        for e in [1, 2, 9, 10] {
            std::fs::write(&path, row(e)).unwrap();
            reported.extend(tail.read_new().iter().map(|r| r["epoch"]));
        }
        tail.finish();
        assert_eq!(reported, [1.0, 2.0, 9.0, 10.0]);
        let (epochs, notes) = epochs(tail);
        assert_eq!(epochs, [1.0, 2.0, 9.0, 10.0]);
        assert!(notes[0].contains("rewritten 3 time(s)"), "{notes:?}");
    }

    #[test]
    fn a_file_rewritten_with_its_whole_history_replaces_the_earlier_version() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("m.jsonl");
        let mut tail = Tail::new(path.clone());
        let mut reported = vec![];
        let mut text = String::new();
        for e in 1..=4 {
            text += &row(e);
            // Truncated first, as `open(path, "w")` does, and read while empty once.
            std::fs::write(&path, "").unwrap();
            reported.extend(tail.read_new().iter().map(|r| r["epoch"]));
            std::fs::write(&path, &text).unwrap();
            reported.extend(tail.read_new().iter().map(|r| r["epoch"]));
        }
        tail.finish();
        assert_eq!(reported, [1.0, 2.0, 3.0, 4.0], "each row reported once");
        assert_eq!(epochs(tail).0, [1.0, 2.0, 3.0, 4.0]);
    }

    /// Rows longer than the compared head: a rewrite with the same first 4 KiB is still seen,
    /// and a last row without its newline is kept when the next version replaces it.
    #[test]
    fn long_rows_and_rows_without_a_newline_survive_a_rewrite() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("m.jsonl");
        let tag = "x".repeat(2 * HEAD);
        let mut tail = Tail::new(path.clone());
        for e in 1..=4 {
            let line = format!(
                "{{\"tag\": \"{tag}\", \"epoch\": {e}, \"loss\": {}}}\n",
                1.0 / f64::from(e)
            );
            std::fs::write(&path, &line).unwrap();
            tail.read_new();
        }
        tail.finish();
        let path = d.path().join("bare.jsonl");
        let mut bare = Tail::new(path.clone());
        for e in 1..=3 {
            std::fs::write(&path, row(e).trim_end()).unwrap();
            bare.read_new();
        }
        bare.finish();
        assert_eq!(epochs(tail).0, [1.0, 2.0, 3.0, 4.0]);
        let (epochs, notes) = epochs(bare);
        assert_eq!(epochs, [1.0, 2.0, 3.0]);
        assert!(notes.iter().all(|n| !n.contains("not JSON")), "{notes:?}");
    }

    #[test]
    fn a_burst_larger_than_a_read_is_read_to_its_end_after_the_program_exits() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("m.jsonl");
        let mut tail = Tail::new(path.clone());
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let pad = "x".repeat(200);
        let n = (CHUNK as usize / 200) * 2 + 7;
        for i in 0..n {
            writeln!(f, "{{\"step\": {i}, \"pad\": \"{pad}\"}}").unwrap();
        }
        // The last line has no newline: a program may end without one.
        write!(f, "{{\"step\": {n}}}").unwrap();
        drop(f);
        tail.read_new();
        tail.finish();
        let (curve, notes) = tail.into_curve();
        assert_eq!(curve.len(), n + 1);
        assert_eq!(curve.last()["step"], n as f64);
        assert!(notes.is_empty(), "{notes:?}");
    }
}
