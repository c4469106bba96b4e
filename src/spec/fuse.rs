//! `fuse:` (and `--fuse`): how many trials may train as one model, as the user writes it.

use serde::{Deserialize, Serialize};

/// How many trials may train as one model: `--fuse K` or `fuse: K` (1 is no fusion), or
/// `auto`, which picks K from the devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Fuse {
    /// At most this many trials a group.
    Size(usize),
    /// 8 on a GPU; no fusion on CPU, where it measured slower (benches/RESULTS.md);
    /// `plan::fusion::group_size` resolves it.
    Auto,
}

impl std::str::FromStr for Fuse {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "auto" {
            return Ok(Fuse::Auto);
        }
        match s.parse::<usize>() {
            Ok(k) if k >= 1 => Ok(Fuse::Size(k)),
            _ => Err(format!(
                "`{s}`: expected a number of trials (1 or more) or `auto`"
            )),
        }
    }
}

impl TryFrom<String> for Fuse {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Fuse> for String {
    fn from(f: Fuse) -> String {
        f.to_string()
    }
}

impl std::fmt::Display for Fuse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fuse::Size(k) => write!(f, "{k}"),
            Fuse::Auto => f.write_str("auto"),
        }
    }
}
