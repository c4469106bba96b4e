//! MNIST and Fashion-MNIST in memory: the bundled 10k sample or the official files, seeded
//! splits and subsets, normalisation. Every random choice uses a generator seeded by the trial's own seed.

pub mod augment;
pub mod idx;

use crate::config::DataConfig;
pub use crate::config::{CLASSES, Dataset, FASHION_DIR, PIXELS};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// The bundled sample (data/mnist-10k), compiled into the binary so it trains anywhere.
static BUNDLED_IMAGES: &[u8] = include_bytes!("../../data/mnist-10k/images-idx3-ubyte.gz");
static BUNDLED_LABELS: &[u8] = include_bytes!("../../data/mnist-10k/labels-idx1-ubyte.gz");
/// On the bundled sample, `split: official` means the first 8,000 digits train, the last 2,000 test.
pub const BUNDLED_TRAIN: usize = 8000;

/// Raw digits as stored: 784 bytes per image.
#[derive(Debug, Clone)]
pub struct Digits {
    /// Grayscale bytes, 0 (background) to 255 (full ink), `PIXELS` per image, images back to back.
    pub pixels: Vec<u8>,
    /// The digit each image shows, 0 to 9, one per image.
    pub labels: Vec<u8>,
}

impl Digits {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    /// Whether it holds no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// The `PIXELS` raw bytes of image `i`, row by row; panics when `i` is out of range.
    pub fn image(&self, i: usize) -> &[u8] {
        &self.pixels[i * PIXELS..(i + 1) * PIXELS]
    }
}

/// A data source: the official train part and test part.
#[derive(Debug)]
pub struct Source {
    /// The official training part (60,000 digits in full MNIST, the bundled sample's first 8,000).
    pub train: Digits,
    /// The official test part (10,000 digits in full MNIST, the last 2,000 of the bundled sample).
    pub test: Digits,
    /// Where the digits came from, in words (recorded in each result's `data.source`).
    pub label: String,
}

/// Names the official files may have (LeCun's, and the dotted variant some mirrors use).
const OFFICIAL: [(&str, &str); 4] = [
    ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
];

fn find_official(dir: &Path, which: usize) -> Result<PathBuf, String> {
    let (a, b) = OFFICIAL[which];
    for name in [a, b] {
        for ext in ["", ".gz"] {
            let p = dir.join(format!("{name}{ext}"));
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    Err(format!(
        "{} does not hold `{a}` (or `{a}.gz`); a full-MNIST directory needs the four official files: {}",
        dir.display(),
        OFFICIAL
            .iter()
            .map(|(a, _)| *a)
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

fn load_source(data: Dataset, path: Option<&str>) -> Result<Source, String> {
    match path.or(data.default_dir()) {
        None => {
            let im = idx::maybe_gunzip(BUNDLED_IMAGES.to_vec(), "bundled images")?;
            let lb = idx::maybe_gunzip(BUNDLED_LABELS.to_vec(), "bundled labels")?;
            let (px, labels) = idx::parse_pair(&im, &lb, "bundled images", "bundled labels")?;
            let cut = BUNDLED_TRAIN * PIXELS;
            Ok(Source {
                train: Digits {
                    pixels: px[..cut].to_vec(),
                    labels: labels[..BUNDLED_TRAIN].to_vec(),
                },
                test: Digits {
                    pixels: px[cut..].to_vec(),
                    labels: labels[BUNDLED_TRAIN..].to_vec(),
                },
                label: "bundled MNIST sample (10,000 digits)".into(),
            })
        }
        Some(dir) => {
            let dir = Path::new(dir);
            if !dir.is_dir() {
                return Err(format!(
                    "{} directory {} does not exist: {}",
                    data.title(),
                    dir.display(),
                    data.install_hint()
                ));
            }
            let paths: Vec<PathBuf> = (0..4)
                .map(|i| find_official(dir, i))
                .collect::<Result<_, _>>()?;
            let read = |i: usize| idx::read_file(&paths[i]);
            let name = |i: usize| paths[i].display().to_string();
            let (tp, tl) = idx::parse_pair(&read(0)?, &read(1)?, &name(0), &name(1))?;
            let (sp, sl) = idx::parse_pair(&read(2)?, &read(3)?, &name(2), &name(3))?;
            Ok(Source {
                train: Digits {
                    pixels: tp,
                    labels: tl,
                },
                test: Digits {
                    pixels: sp,
                    labels: sl,
                },
                label: format!("{} from {}", data.title(), dir.display()),
            })
        }
    }
}

/// Sources are read once per process and shared by every trial that uses them.
pub fn source(data: Dataset, path: Option<&str>) -> Result<Arc<Source>, String> {
    type Key = (Dataset, Option<String>);
    static CACHE: OnceLock<Mutex<HashMap<Key, Arc<Source>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = (data, path.map(str::to_string));
    if let Some(s) = cache.lock().expect("data cache").get(&key) {
        return Ok(s.clone());
    }
    let s = Arc::new(load_source(data, path)?);
    cache.lock().expect("data cache").insert(key, s.clone());
    Ok(s)
}

/// One part of a split, normalised, with where each sample came from.
#[derive(Debug, Clone, Default)]
pub struct Part {
    /// Normalised pixels, 784 per sample.
    pub x: Vec<f32>,
    /// Labels, 0 to 9, one per sample.
    pub y: Vec<u8>,
    /// Raw bytes, kept for augmentation and for drawing misclassified digits.
    pub raw: Vec<u8>,
}

impl Part {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.y.len()
    }
    /// Whether it holds no samples.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }
}

/// The sizes and origin of a trial's data, recorded in its result.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct DataSummary {
    /// Where the digits came from, in words (the `Source` label).
    pub source: String,
    /// Training samples, after any `data.train_size` subset.
    pub train: usize,
    /// Validation samples (0 without a validation split).
    pub val: usize,
    /// Test samples.
    pub test: usize,
}

/// One trial's data: the training, validation and test parts, and their sizes.
#[derive(Debug, Clone)]
pub struct Splits {
    /// Training samples, shuffled by the split and cut to `data.train_size` when set.
    pub train: Part,
    /// Validation samples; empty when the split has no validation fraction.
    pub val: Part,
    /// Test samples; never affected by `data.train_size`.
    pub test: Part,
    /// Sizes and origin, recorded in the trial's result.
    pub summary: DataSummary,
}

/// Independent streams of one trial's generator, so adding a random choice in one place never
/// shifts the numbers drawn in another.
#[derive(Clone, Copy)]
pub enum Stream {
    /// Which samples go to train, validation and test.
    Split = 1,
    /// Which training samples a `data.train_size` subset keeps.
    Subset = 2,
    /// Initial weights and biases.
    Init = 3,
    /// Minibatch order (or, with `steps_per_epoch`, which samples each step draws).
    Batches = 4,
    /// Dropout masks.
    Dropout = 5,
    /// Data augmentation.
    Augment = 6,
}

/// A ChaCha8 generator seeded with `seed` and set to `stream`, so each kind of random choice is
/// reproducible on its own.
pub fn rng(seed: u64, stream: Stream) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(stream as u64);
    r
}

fn gather(src: &[&Digits], picks: &[(usize, usize)], mean: f32, std: f32) -> Part {
    let mut part = Part {
        x: Vec::with_capacity(picks.len() * PIXELS),
        y: Vec::with_capacity(picks.len()),
        raw: Vec::with_capacity(picks.len() * PIXELS),
    };
    for &(s, i) in picks {
        let img = src[s].image(i);
        part.raw.extend_from_slice(img);
        part.x
            .extend(img.iter().map(|&p| (f32::from(p) / 255.0 - mean) / std));
        part.y.push(src[s].labels[i]);
    }
    part
}

/// Takes `n` items off a shuffled list, keeping class proportions when `stratify` (per-class
/// rounding; the remainder is filled from the shuffled rest).
fn take(
    items: &mut Vec<(usize, usize)>,
    n: usize,
    stratify: bool,
    label: impl Fn(&(usize, usize)) -> u8,
) -> Vec<(usize, usize)> {
    if !stratify || items.is_empty() {
        let rest = items.split_off(n.min(items.len()));
        return std::mem::replace(items, rest);
    }
    let total = items.len();
    let mut counts = [0usize; CLASSES];
    for it in items.iter() {
        counts[usize::from(label(it))] += 1;
    }
    let mut quota: Vec<usize> = counts.iter().map(|c| c * n / total).collect();
    let mut taken = vec![];
    let mut rest = vec![];
    for it in items.drain(..) {
        let q = &mut quota[usize::from(label(&it))];
        if *q > 0 {
            *q -= 1;
            taken.push(it);
        } else {
            rest.push(it);
        }
    }
    while taken.len() < n && !rest.is_empty() {
        taken.push(rest.remove(0));
    }
    *items = rest;
    taken
}

/// Splits, subsets and normalises the data for one trial; a missing or broken file, or a subset
/// larger than its split, is an `Error::Data` naming the file or the sizes.
pub fn prepare(cfg: &DataConfig, seed: u64) -> crate::error::Result<Splits> {
    split(cfg, seed).map_err(crate::error::Error::Data)
}

fn split(cfg: &DataConfig, seed: u64) -> Result<Splits, String> {
    let data = Dataset::from_name(&cfg.source)
        .ok_or_else(|| format!("unknown data source `{}`", cfg.source))?;
    let src = source(data, cfg.path.as_deref())?;
    let sets = [&src.train, &src.test];
    let label = |it: &(usize, usize)| sets[it.0].labels[it.1];
    let s = &cfg.split;
    let mut r = rng(seed, Stream::Split);
    let (mut train, val, test) = if s.official {
        let mut pool: Vec<(usize, usize)> = (0..src.train.len()).map(|i| (0, i)).collect();
        pool.shuffle(&mut r);
        let n_val = (s.val * pool.len() as f64).round() as usize;
        let val = take(&mut pool, n_val, s.stratify, label);
        let test: Vec<(usize, usize)> = (0..src.test.len()).map(|i| (1, i)).collect();
        (pool, val, test)
    } else {
        let mut pool: Vec<(usize, usize)> = (0..src.train.len())
            .map(|i| (0, i))
            .chain((0..src.test.len()).map(|i| (1, i)))
            .collect();
        let total = pool.len() as f64;
        pool.shuffle(&mut r);
        let test = take(
            &mut pool,
            (s.test * total).round() as usize,
            s.stratify,
            label,
        );
        let val = take(
            &mut pool,
            (s.val * total).round() as usize,
            s.stratify,
            label,
        );
        (pool, val, test)
    };
    if let Some(n) = cfg.train_size {
        if n > train.len() {
            return Err(format!(
                "data.train_size is {n} but the training split holds only {} samples",
                train.len()
            ));
        }
        let mut r = rng(seed, Stream::Subset);
        train.shuffle(&mut r);
        train.truncate(n);
    }
    if train.is_empty() || test.is_empty() {
        return Err(format!(
            "the split leaves {} training and {} test samples; both need at least one",
            train.len(),
            test.len()
        ));
    }
    let (mean, std) = (cfg.normalize.mean as f32, cfg.normalize.std as f32);
    let summary = DataSummary {
        source: src.label.clone(),
        train: train.len(),
        val: val.len(),
        test: test.len(),
    };
    Ok(Splits {
        train: gather(&sets, &train, mean, std),
        val: gather(&sets, &val, mean, std),
        test: gather(&sets, &test, mean, std),
        summary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DataConfig, SplitConfig};

    #[test]
    fn bundled_sample_loads_with_its_documented_counts() {
        let s = source(Dataset::Mnist, None).unwrap();
        assert_eq!(s.train.len() + s.test.len(), 10_000);
        let mut counts = [0; 10];
        for l in s.train.labels.iter().chain(&s.test.labels) {
            counts[*l as usize] += 1;
        }
        assert_eq!(
            counts,
            [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
        );
    }

    #[test]
    fn fraction_split_sizes_and_subset_keeps_test_fixed() {
        let mut cfg = DataConfig {
            split: SplitConfig {
                official: false,
                train: 0.64,
                val: 0.2,
                test: 0.16,
                stratify: false,
            },
            ..Default::default()
        };
        let a = prepare(&cfg, 42).unwrap();
        assert_eq!(
            (a.train.len(), a.val.len(), a.test.len()),
            (6400, 2000, 1600)
        );
        cfg.train_size = Some(100);
        let b = prepare(&cfg, 42).unwrap();
        assert_eq!(b.train.len(), 100);
        assert_eq!(a.test.y, b.test.y);
        assert_eq!(a.val.y, b.val.y);
        cfg.train_size = Some(7000);
        let e = prepare(&cfg, 42).unwrap_err().to_string();
        assert!(e.contains("7000") && e.contains("6400"), "{e}");
    }

    #[test]
    fn official_split_and_normalisation() {
        let cfg = DataConfig {
            split: SplitConfig {
                val: 0.1,
                stratify: true,
                ..Default::default()
            },
            ..Default::default()
        };
        let s = prepare(&cfg, 1).unwrap();
        assert_eq!(
            (s.train.len(), s.val.len(), s.test.len()),
            (7200, 800, 2000)
        );
        assert!(s.train.x.iter().all(|v| (0.0..=1.0).contains(v)));
        let ones = s.val.y.iter().filter(|&&l| l == 1).count();
        assert!((80..=100).contains(&ones), "stratified val has {ones} ones");
    }

    #[test]
    fn missing_directory_names_the_files() {
        let e = prepare(
            &DataConfig {
                path: Some("/nonexistent/mnist".into()),
                ..Default::default()
            },
            1,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("/nonexistent/mnist") && e.contains("official"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let e = prepare(
            &DataConfig {
                path: Some(dir.path().display().to_string()),
                ..Default::default()
            },
            1,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("train-images-idx3-ubyte"), "{e}");
    }
}
