//! The integration tests, one crate (one link of the library): reading sweep files, runs on the
//! scripted engine, reports, and the few tests that really train. Tiny data, few epochs: the
//! real studies run in sweeps/.

// A test's own notes may print as they like; the binary's prints go through src/output.rs.
#![allow(clippy::disallowed_macros)]

mod browser;
mod common;
mod estimate;
mod faults;
mod fusion;
mod gpu;
mod parsing;
mod programs;
mod reports;
mod resume;
mod runs;
mod search;
mod serve;
mod slurm;
mod training;
mod workers;
