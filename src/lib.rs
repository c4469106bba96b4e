//! hypersweep: a declarative hyperparameter sweep orchestrator. A YAML file (`spec`) expands
//! into trials (`plan`), which the `scheduler` runs over a device pool with the burn `engine`,
//! the `store` keeps on disk, and `report` turns into tables and plots. `trial` holds the
//! vocabulary they share and `error` the one error type.

pub use error::{Error, Result};

pub mod app;
pub mod bench;
pub mod big_blocks;
pub mod cli;
pub mod config;
pub mod cores;
pub mod data;
pub mod devices;
pub mod engine;
pub mod error;
pub mod estimate;
pub mod events;
pub mod format;
pub mod logging;
pub mod output;
pub mod plan;
pub mod program;
pub mod progress;
pub mod report;
pub mod scheduler;
pub mod search;
pub mod serve;
pub mod signals;
pub mod spec;
pub mod store;
pub mod trial;
