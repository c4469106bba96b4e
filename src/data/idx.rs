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

/// Decoded IDX contents: dimensions and the raw unsigned bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Idx {
    /// Size of each dimension, outermost first (`[n, 28, 28]` for MNIST images, `[n]` for labels).
    pub dims: Vec<usize>,
    /// The values, one byte each, row-major: exactly the product of `dims`.
    pub data: Vec<u8>,
}

/// Ungzips when the bytes start with the gzip magic.
pub fn maybe_gunzip(bytes: Vec<u8>, name: &str) -> Result<Vec<u8>, String> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = vec![];
        GzDecoder::new(&bytes[..])
            .take(MAX_DECODED)
            .read_to_end(&mut out)
            .map_err(|e| format!("{name}: broken gzip data: {e}"))?;
        Ok(out)
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
    let ndims = usize::from(bytes[3]);
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err(format!("{name}: truncated header"));
    }
    let dims: Vec<usize> = (0..ndims)
        .map(|i| {
            let o = 4 + 4 * i;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as usize
        })
        .collect();
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

/// Reads a file, ungzipping when needed.
pub fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    maybe_gunzip(bytes, &path.display().to_string())
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
}
