//! The one error type of the library: every failure a user can meet, and the exit code it gives.
//! A problem with what the user said or has (a bad file, a flag, missing data, a directory in the
//! way) exits 1 and names the file or path; only our own bugs exit 2 as "internal".

use crate::spec::SpecError;
use std::path::{Path, PathBuf};

/// Everything that can stop a command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The sweep file is unreadable or wrong (its message names file, line, column and key).
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// `--devices`, `--per-device` or `--threads` ask for something this machine cannot give.
    #[error("{0}")]
    Devices(String),
    /// The data a trial needs is missing or broken.
    #[error("{0}")]
    Data(String),
    /// Another live process trains trials in the results directory.
    #[error(
        "another hypersweep process (pid {pid}) is training trials in {}; wait for it to finish or stop it (kill {pid})",
        dir.display()
    )]
    Locked {
        /// The results directory.
        dir: PathBuf,
        /// The process holding it.
        pid: u32,
    },
    /// A path given as a results directory is not one (or was written by an older hypersweep).
    #[error("{} is not a results directory ({why})", path.display())]
    NotResults {
        /// The path the user gave.
        path: PathBuf,
        /// What is missing.
        why: String,
    },
    /// Any other problem with the user's input (a flag, a command that cannot apply yet).
    #[error("{0}")]
    Input(String),
    /// A file operation failed; the path and what we tried are named.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What we tried: "read", "write", "create", "rename", …
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's answer.
        source: std::io::Error,
    },
    /// A trial could not train (recorded as that trial's failure, never the sweep's).
    #[error("{0}")]
    Trial(String),
    /// Our bug: something that should not fail did.
    #[error("{0}")]
    Internal(String),
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// 1 for the user's problems, 2 for ours.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Internal(_) => 2,
            _ => 1,
        }
    }

    /// An I/O failure at `path`.
    pub fn io(op: &'static str, path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }

    /// Adds what we were doing in front of the message, keeping the kind (and exit code).
    pub fn context(self, what: &str) -> Error {
        match self {
            Error::Internal(m) => Error::Internal(format!("{what}: {m}")),
            Error::Input(m) => Error::Input(format!("{what}: {m}")),
            other => other,
        }
    }
}

/// Names the path and operation of an `io::Result`.
pub trait IoContext<T> {
    /// Turns an I/O error into `Error::Io` at `path`.
    fn at(self, op: &'static str, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, op: &'static str, path: &Path) -> Result<T> {
        self.map_err(|e| Error::io(op, path, e))
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Internal(format!("JSON: {e}"))
    }
}

impl From<polars::error::PolarsError> for Error {
    fn from(e: polars::error::PolarsError) -> Self {
        Error::Internal(format!("polars: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_internal_errors_exit_2() {
        assert_eq!(Error::Internal("bug".into()).exit_code(), 2);
        assert_eq!(Error::Data("no file".into()).exit_code(), 1);
        let e = Error::io(
            "write",
            Path::new("/ro/x"),
            std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        );
        assert_eq!(e.exit_code(), 1);
        assert!(e.to_string().starts_with("cannot write /ro/x: "), "{e}");
    }
}
