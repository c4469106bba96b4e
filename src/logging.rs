//! tracing set-up: stderr at the level of -v/-vv (RUST_LOG overrides), and a log file in the
//! results directory at info level once a run knows where that is.

use crate::error::{IoContext, Result};
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

/// A log file that can be opened after the subscriber is installed.
#[derive(Clone, Default)]
pub struct LogFile(Arc<Mutex<Option<File>>>);

impl LogFile {
    /// Starts appending log lines (info and above) to `path`; until then they are dropped.
    pub fn open(&self, path: &Path) -> Result<()> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .at("open the log", path)?;
        *self.0.lock().expect("log file") = Some(f);
        Ok(())
    }
}

/// A writer onto the shared log file; discards what it is given while no file is open.
pub struct LogWriter(Arc<Mutex<Option<File>>>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.lock().expect("log file").as_mut() {
            Some(f) => f.write(buf),
            None => Ok(buf.len()),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self.0.lock().expect("log file").as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl<'a> MakeWriter<'a> for LogFile {
    type Writer = LogWriter;
    fn make_writer(&'a self) -> Self::Writer {
        LogWriter(self.0.clone())
    }
}

/// Installs the tracing subscriber (stderr at warn, info with `-v`, debug with `-vv`; RUST_LOG
/// overrides) and returns the log file to open once the results directory is known.
pub fn init(verbose: u8) -> LogFile {
    let level = match verbose {
        0 => LevelFilter::WARN,
        1 => LevelFilter::INFO,
        _ => LevelFilter::DEBUG,
    };
    let stderr_filter = EnvFilter::builder()
        .with_default_directive(level.into())
        .from_env_lossy()
        // burn and cubecl are chatty at info; our own events are what users want.
        .add_directive("cubecl=warn".parse().expect("directive"))
        .add_directive("burn=warn".parse().expect("directive"));
    let file = LogFile::default();
    let file_layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(file.clone())
        .log_internal_errors(false)
        .with_filter(EnvFilter::new("info,cubecl=warn,burn=warn"));
    let stderr_layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        // Its report of a failed write is an `eprintln!`, which panics when stderr is a closed
        // pipe: a log line that cannot be written is dropped instead (src/output.rs).
        .log_internal_errors(false)
        .with_filter(stderr_filter);
    let _ = tracing_subscriber::registry()
        .with(stderr_layer)
        .with(file_layer)
        .try_init();
    file
}
