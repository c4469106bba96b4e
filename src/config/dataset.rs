//! The data sets a sweep can name in `data.source`: what each is called, where it is found, and
//! what its ten classes are — the one place the report and the loader learn them from.

/// Pixels in one image: 28 × 28, one byte each in the raw files.
pub const PIXELS: usize = 784;
/// Number of classes: ten in every data set here.
pub const CLASSES: usize = 10;

/// A data set of 28×28 grayscale images in ten classes, in the official IDX files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dataset {
    /// Handwritten digits: the bundled 10k sample, or the official files under `data.path`.
    Mnist,
    /// Zalando's clothing images: Debian's `dataset-fashion-mnist` package, or `data.path`.
    FashionMnist,
}

/// Where Debian's `dataset-fashion-mnist` package puts the four files.
pub const FASHION_DIR: &str = "/usr/share/datasets/fashion-mnist";

const FASHION_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

impl Dataset {
    /// The `data.source` values, for error messages.
    pub const NAMES: &'static str = "`mnist` or `fashion-mnist`";

    /// From `data.source`.
    pub fn from_name(name: &str) -> Option<Dataset> {
        match name {
            "mnist" => Some(Dataset::Mnist),
            "fashion-mnist" => Some(Dataset::FashionMnist),
            _ => None,
        }
    }

    /// From a result's `data.source` label (`Source::label`), for reports of stored results.
    pub fn from_label(label: &str) -> Dataset {
        if label.starts_with(Dataset::FashionMnist.title()) {
            Dataset::FashionMnist
        } else {
            Dataset::Mnist
        }
    }

    /// The name the report and the labels use.
    pub fn title(self) -> &'static str {
        match self {
            Dataset::Mnist => "MNIST",
            Dataset::FashionMnist => "Fashion-MNIST",
        }
    }

    /// What one sample is, in the plural: "digits" or "images".
    pub fn items(self) -> &'static str {
        match self {
            Dataset::Mnist => "digits",
            Dataset::FashionMnist => "images",
        }
    }

    /// The name of class `i` (0–9).
    pub fn class(self, i: usize) -> String {
        match self {
            Dataset::Mnist => i.to_string(),
            Dataset::FashionMnist => FASHION_CLASSES
                .get(i)
                .map_or(i.to_string(), |c| (*c).into()),
        }
    }

    /// Where the files are when `data.path` is not given; `None` for MNIST (the bundled sample).
    pub fn default_dir(self) -> Option<&'static str> {
        match self {
            Dataset::Mnist => None,
            Dataset::FashionMnist => Some(FASHION_DIR),
        }
    }

    /// What to do when the directory is missing.
    pub fn install_hint(self) -> &'static str {
        match self {
            Dataset::Mnist => "it should hold the four official MNIST files",
            Dataset::FashionMnist => {
                "install Debian's package (apt-get install dataset-fashion-mnist), or give the \
                 directory of the four official files in data.path or --data-dir"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_labels_and_classes_round_trip() {
        for d in [Dataset::Mnist, Dataset::FashionMnist] {
            assert_eq!(Dataset::from_label(&format!("{} from /x", d.title())), d);
        }
        assert_eq!(
            Dataset::from_label("bundled MNIST sample (10,000 digits)"),
            Dataset::Mnist
        );
        assert_eq!(
            Dataset::from_name("fashion-mnist"),
            Some(Dataset::FashionMnist)
        );
        assert_eq!(Dataset::from_name("cifar"), None);
        assert_eq!(Dataset::FashionMnist.class(9), "Ankle boot");
        assert_eq!(Dataset::Mnist.class(9), "9");
    }
}
