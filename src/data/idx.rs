//! The IDX format of the MNIST files (raw or gzipped), with errors that say what is wrong.

use flate2::read::GzDecoder;
use std::io::Read;
use std::path::Path;

/// Magic number of an IDX images file: unsigned bytes, 3 dimensions.
pub const IMAGES_MAGIC: u32 = 2051;
/// Magic number of an IDX labels file: unsigned bytes, 1 dimension.
pub const LABELS_MAGIC: u32 = 2049;
/// More than the full MNIST set needs; a guard against a corrupt header asking for terabytes.
const MAX_DECODED: u64 = 1 << 31;
/// More items (images or labels) than any IDX file here may hold; full MNIST has 70,000.
const MAX_ITEMS: u64 = 10_000_000;

/// Decoded IDX contents: dimensions and the raw unsigned bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Idx {
    /// Size of each dimension, outermost first (`[n, 28, 28]` for MNIST images, `[n]` for labels).
    pub dims: Vec<usize>,
    /// The values, one byte each, row-major: exactly the product of `dims`.
    pub data: Vec<u8>,
}

/// The dimensions in an IDX header (magic, then one big-endian u32 per dimension); `None` when
/// the bytes end inside the header.
fn header_dims(bytes: &[u8]) -> Option<Vec<usize>> {
    let ndims = usize::from(*bytes.get(3)?);
    let dims = bytes.get(4..4 + 4 * ndims)?;
    Some(
        dims.chunks_exact(4)
            .map(|d| u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize)
            .collect(),
    )
}

/// Reads an IDX file from `r` (raw bytes or a gzip stream being inflated), never more than its
/// header promises plus one byte (so that `parse` can tell there is more): a gzip bomb or
/// gigabytes of trailing data cost nothing, and absurd dimensions are refused before anything
/// is read. An unknown magic number or a cut header returns what was read, for `parse` to name.
/// `broken` says what a read error means (`broken gzip data`).
fn read_bounded(mut r: impl Read, name: &str, broken: &str) -> Result<Vec<u8>, String> {
    let mut out = vec![];
    let read = |r: &mut dyn Read, n: u64, out: &mut Vec<u8>| {
        r.take(n)
            .read_to_end(out)
            .map_err(|e| format!("{name}: {broken}: {e}"))
    };
    read(&mut r, 4, &mut out)?;
    let magic = out
        .get(..4)
        .map(|m| u32::from_be_bytes([m[0], m[1], m[2], m[3]]));
    if !matches!(magic, Some(IMAGES_MAGIC | LABELS_MAGIC)) {
        return Ok(out);
    }
    read(&mut r, 4 * u64::from(out[3]), &mut out)?;
    let Some(dims) = header_dims(&out) else {
        return Ok(out);
    };
    let items = dims.first().map_or(0, |&n| n as u64);
    let bytes = dims
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d as u64))
        .filter(|&b| b <= MAX_DECODED && items <= MAX_ITEMS);
    let Some(bytes) = bytes else {
        return Err(format!(
            "{name}: the header claims dimensions {dims:?}, more than an IDX file here may hold \
             (at most {MAX_ITEMS} items and {MAX_DECODED} bytes); the file is corrupt"
        ));
    };
    read(&mut r, bytes + 1, &mut out)?;
    Ok(out)
}

/// Ungzips when the bytes start with the gzip magic, reading no more than the IDX header inside
/// promises (see `read_bounded`).
pub fn maybe_gunzip(bytes: Vec<u8>, name: &str) -> Result<Vec<u8>, String> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        read_bounded(GzDecoder::new(&bytes[..]), name, "broken gzip data")
    } else {
        Ok(bytes)
    }
}

/// Parses IDX bytes (already ungzipped) expecting `magic` (2051 images, 2049 labels).
pub fn parse(bytes: &[u8], magic: u32, name: &str) -> Result<Idx, String> {
    if bytes.len() < 4 {
        return Err(format!(
            "{name}: too short to be an IDX file ({} bytes)",
            bytes.len()
        ));
    }
    let found = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if found != magic {
        let what = if magic == IMAGES_MAGIC {
            "images"
        } else {
            "labels"
        };
        return Err(format!(
            "{name}: wrong magic number {found} (expected {magic} for an IDX {what} file)"
        ));
    }
    let Some(dims) = header_dims(bytes) else {
        return Err(format!("{name}: truncated header"));
    };
    let header = 4 + 4 * dims.len();
    let expected = dims
        .iter()
        .try_fold(1usize, |a, d| a.checked_mul(*d))
        .ok_or_else(|| format!("{name}: dimensions {dims:?} overflow"))?;
    let body = &bytes[header..];
    if body.len() < expected {
        return Err(format!(
            "{name}: truncated: the header promises {expected} bytes of data ({dims:?}) but {} follow",
            body.len()
        ));
    }
    if body.len() > expected {
        return Err(format!(
            "{name}: more data follows the {expected} bytes the header promises ({dims:?}); \
             the file is not what its header says"
        ));
    }
    Ok(Idx {
        dims,
        data: body[..expected].to_vec(),
    })
}

/// Reads an images file and a labels file into (pixels, labels), checking they agree.
pub fn parse_pair(
    images: &[u8],
    labels: &[u8],
    images_name: &str,
    labels_name: &str,
) -> Result<(Vec<u8>, Vec<u8>), String> {
    let im = parse(images, IMAGES_MAGIC, images_name)?;
    let lb = parse(labels, LABELS_MAGIC, labels_name)?;
    if im.dims.len() != 3 || im.dims[1] != 28 || im.dims[2] != 28 {
        return Err(format!(
            "{images_name}: expected N×28×28 images, found dimensions {:?}",
            im.dims
        ));
    }
    if lb.dims.len() != 1 {
        return Err(format!(
            "{labels_name}: expected one dimension, found {:?}",
            lb.dims
        ));
    }
    if im.dims[0] != lb.dims[0] {
        return Err(format!(
            "{images_name} holds {} images but {labels_name} holds {} labels",
            im.dims[0], lb.dims[0]
        ));
    }
    if let Some(bad) = lb.data.iter().find(|l| **l > 9) {
        return Err(format!("{labels_name}: label {bad} is not a digit 0–9"));
    }
    Ok((im.data, lb.data))
}

/// Reads a file, ungzipping when needed; never more than its IDX header promises (plus one
/// byte), whatever the file or its gzip stream holds.
pub fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::BufRead;
    let name = path.display().to_string();
    let cannot = |e: std::io::Error| format!("cannot read {name}: {e}");
    let mut r = std::io::BufReader::new(std::fs::File::open(path).map_err(cannot)?);
    if r.fill_buf().map_err(cannot)?.starts_with(&[0x1f, 0x8b]) {
        read_bounded(GzDecoder::new(r), &name, "broken gzip data")
    } else {
        read_bounded(r, &name, "cannot read")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(magic: u32, dims: &[u32]) -> Vec<u8> {
        let mut v = magic.to_be_bytes().to_vec();
        for d in dims {
            v.extend(d.to_be_bytes());
        }
        v
    }

    #[test]
    fn reads_hand_made_files() {
        let mut im = header(IMAGES_MAGIC, &[2, 28, 28]);
        im.extend((0..2 * 784).map(|i| (i % 256) as u8));
        let mut lb = header(LABELS_MAGIC, &[2]);
        lb.extend([3, 7]);
        let (px, l) = parse_pair(&im, &lb, "im", "lb").unwrap();
        assert_eq!(px.len(), 1568);
        assert_eq!(px[300], 44);
        assert_eq!(l, vec![3, 7]);
    }

    #[test]
    fn gzip_is_detected() {
        use flate2::{Compression, write::GzEncoder};
        use std::io::Write;
        let mut lb = header(LABELS_MAGIC, &[3]);
        lb.extend([1, 2, 3]);
        let mut enc = GzEncoder::new(vec![], Compression::default());
        enc.write_all(&lb).unwrap();
        let gz = enc.finish().unwrap();
        let raw = maybe_gunzip(gz, "x").unwrap();
        assert_eq!(parse(&raw, LABELS_MAGIC, "x").unwrap().data, vec![1, 2, 3]);
        assert!(
            maybe_gunzip(vec![0x1f, 0x8b, 0, 1, 2], "x")
                .unwrap_err()
                .contains("gzip")
        );
    }

    #[test]
    fn broken_files_give_clear_errors() {
        let e = parse(&header(1234, &[1]), LABELS_MAGIC, "f").unwrap_err();
        assert!(
            e.contains("wrong magic number 1234") && e.contains("2049"),
            "{e}"
        );
        let mut short = header(IMAGES_MAGIC, &[2, 28, 28]);
        short.extend([0; 100]);
        let e = parse(&short, IMAGES_MAGIC, "f").unwrap_err();
        assert!(e.contains("truncated"), "{e}");
        assert!(
            parse(&[0, 0], IMAGES_MAGIC, "f")
                .unwrap_err()
                .contains("too short")
        );
        let mut im = header(IMAGES_MAGIC, &[2, 28, 28]);
        im.extend([0; 1568]);
        let mut lb = header(LABELS_MAGIC, &[3]);
        lb.extend([1, 2, 3]);
        let e = parse_pair(&im, &lb, "im", "lb").unwrap_err();
        assert!(e.contains("2 images") && e.contains("3 labels"), "{e}");
        let mut lb = header(LABELS_MAGIC, &[2]);
        lb.extend([1, 12]);
        assert!(
            parse_pair(&im, &lb, "im", "lb")
                .unwrap_err()
                .contains("label 12")
        );
        let mut lb = header(LABELS_MAGIC, &[2]);
        lb.extend([1, 2]);
        let e = parse_pair(&im[..im.len() - 1], &lb, "im", "lb").unwrap_err();
        assert!(e.contains("truncated"), "{e}");
    }

    /// `header` followed by `zeros` zero bytes, gzipped, written in pieces so the test itself
    /// never holds the inflated size.
    fn gzip_of(header: &[u8], zeros: usize) -> Vec<u8> {
        use flate2::{Compression, write::GzEncoder};
        use std::io::Write;
        let mut enc = GzEncoder::new(vec![], Compression::fast());
        enc.write_all(header).unwrap();
        let chunk = vec![0u8; 1 << 20];
        let mut left = zeros;
        while left > 0 {
            let n = left.min(chunk.len());
            enc.write_all(&chunk[..n]).unwrap();
            left -= n;
        }
        enc.finish().unwrap()
    }

    #[test]
    fn a_gzip_bomb_is_read_no_further_than_its_header_promises() {
        // The header claims 10 images; the stream inflates to 50 MB.
        let gz = gzip_of(&header(IMAGES_MAGIC, &[10, 28, 28]), 50 << 20);
        assert!(gz.len() < 1 << 20, "the bomb is small: {} bytes", gz.len());
        let t0 = std::time::Instant::now();
        let raw = maybe_gunzip(gz.clone(), "bomb.gz").unwrap();
        assert!(raw.len() <= 16 + 10 * 784 + 1, "read {} bytes", raw.len());
        let e = parse(&raw, IMAGES_MAGIC, "bomb.gz").unwrap_err();
        assert!(
            e.contains("bomb.gz") && e.contains("more data follows"),
            "{e}"
        );
        // The same through a file on disk.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("train-images-idx3-ubyte.gz");
        std::fs::write(&path, &gz).unwrap();
        let raw = read_file(&path).unwrap();
        assert!(raw.len() <= 16 + 10 * 784 + 1, "read {} bytes", raw.len());
        assert!(t0.elapsed() < std::time::Duration::from_secs(5));
        // A well-formed gzipped file still reads whole.
        let ok = gzip_of(&header(IMAGES_MAGIC, &[10, 28, 28]), 10 * 784);
        let raw = maybe_gunzip(ok, "ok.gz").unwrap();
        assert_eq!(parse(&raw, IMAGES_MAGIC, "ok.gz").unwrap().data.len(), 7840);
    }

    #[test]
    fn absurd_header_dimensions_are_refused_before_reading() {
        for (magic, dims) in [
            (IMAGES_MAGIC, vec![100_000_000, 28, 28]),
            (IMAGES_MAGIC, vec![u32::MAX, u32::MAX, u32::MAX]),
            (IMAGES_MAGIC, vec![3_000_000, 28, 28]),
            (LABELS_MAGIC, vec![20_000_000]),
        ] {
            let gz = gzip_of(&header(magic, &dims), 100);
            let e = maybe_gunzip(gz, "huge.gz").unwrap_err();
            assert!(
                e.contains("huge.gz") && e.contains("the header claims"),
                "{e}"
            );
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("raw-idx");
            std::fs::write(&path, header(magic, &dims)).unwrap();
            let e = read_file(&path).unwrap_err();
            assert!(
                e.contains("raw-idx") && e.contains("the header claims"),
                "{e}"
            );
        }
        // A file with a wrong magic number still says so.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wrong");
        std::fs::write(&path, header(1234, &[5])).unwrap();
        let raw = read_file(&path).unwrap();
        assert!(
            parse(&raw, LABELS_MAGIC, "wrong")
                .unwrap_err()
                .contains("wrong magic")
        );
    }
}
