//! The command line: clap types for `run`, `plan`, `validate`, `status` and `report`.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// The `hypersweep` command line.
#[derive(Parser, Debug)]
#[command(
    name = "hypersweep",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("HYPERSWEEP_COMMIT"), ")"),
    about = "Declarative hyperparameter sweeps: one YAML file, every trial trained, nothing lost",
    long_about = "Declarative hyperparameter sweeps: one YAML file describes a study, `run` trains every \
trial on CPU cores or CUDA GPUs and keeps each result safe on disk, `report` turns the results into \
tables (Parquet/CSV) and a Markdown + HTML report with plots.\n\nExit codes: 0 ok, 1 a problem with \
your input, 2 an internal failure, 3 the sweep ran but some trials failed, 130 interrupted."
)]
pub struct Cli {
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
    /// More log output on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check a sweep file and count its trials; trains nothing.
    Validate {
        /// The sweep file (YAML).
        file: PathBuf,
    },
    /// Read a saved log of a program as a trial would: the rows of metrics that the sweep's
    /// `program.patterns` (and `name=value` lines) give, and how often each pattern matched.
    Patterns {
        /// The sweep file (YAML) with a `program:`.
        file: PathBuf,
        /// A log of the program's output (stdout and stderr) from a run by hand.
        #[arg(long, value_name = "LOG")]
        log: PathBuf,
    },
    /// List the trials a sweep file expands into (id, name, varied values) with a cost
    /// estimate: each trial's time and the sweep's wall time on the devices `run` would use,
    /// from speeds of finished trials or a short probe (about a second) on this machine.
    Plan {
        /// The sweep file (YAML).
        file: PathBuf,
        /// Print a JSON array of {id, name, params, estimate} with each trial's full config.
        #[arg(long)]
        json: bool,
        /// Use the full MNIST IDX files in this directory instead of the bundled sample.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Only the trials: no estimate, no probe.
        #[arg(long)]
        no_estimate: bool,
        /// The devices, parallelism and results root of the run to estimate.
        #[command(flatten)]
        run: EstimateArgs,
    },
    /// Train every trial of a sweep not already done, then write the report. Several `run`s
    /// (or workers) of one sweep share the work: each trial is claimed by one of them.
    Run(RunArgs),
    /// Train the unclaimed trials of an existing results directory until none remain (what a
    /// cluster task runs).
    Worker(WorkerArgs),
    /// Record the plan and submit a Slurm job array of workers plus a report job; returns at
    /// once with the job ids.
    Submit(SubmitArgs),
    /// Counts by status, running trials, the best trial so far and the time spent.
    Status {
        /// A results directory (results/<sweep>) or the sweep file.
        path: PathBuf,
        /// The results root when PATH is a sweep file.
        #[arg(long, default_value = "results", value_name = "DIR")]
        out: PathBuf,
    },
    /// Training throughput of the benchmark models (linear, mlp, cnn) on the bundled data;
    /// prints one JSON line per model. Used by scripts/bench-cpu.sh.
    Bench {
        /// Models to time, comma-separated.
        #[arg(long, default_value = "linear,mlp,cnn")]
        models: String,
        /// CPU threads the trial may use.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// `cpu` or `cuda:N`.
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Epochs to train each model.
        #[arg(long, default_value_t = 2)]
        epochs: usize,
        /// Train on this many samples per epoch (default: the 8,000 of the bundled split).
        #[arg(long)]
        train_size: Option<usize>,
    },
    /// Print a completion script for a shell: `hypersweep completions bash >
    /// ~/.local/share/bash-completion/completions/hypersweep` (zsh: a file `_hypersweep` in a
    /// directory of `$fpath`; fish: `~/.config/fish/completions/hypersweep.fish`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Watch sweeps live in the browser: prints one URL and serves, until Ctrl-C, a page per
    /// sweep (counts, time left, the trials table, live curves, each trial's details) that
    /// follows the results directory as trials run. Read-only.
    Serve(ServeArgs),
    /// Build summary tables (Parquet, CSV) and report.md/report.html from a results directory;
    /// with two or more directories, put the sweeps side by side.
    Report {
        /// Results directories (results/<sweep>).
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Where a side-by-side comparison is written (default: the first directory).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

/// Options of `hypersweep serve`.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Results directories (results/<sweep>), or folders of them such as results/.
    #[arg(default_value = "results")]
    pub dirs: Vec<PathBuf>,
    /// The address to listen on. Any address but a loopback one (127.0.0.1, for a cluster's
    /// login node 0.0.0.0) requires a token, which the printed URL carries.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// The port (0: any free one); by default 8765, or the next free one up to 8774.
    #[arg(long)]
    pub port: Option<u16>,
}

/// The run `plan` estimates: the same flags as `run`'s.
#[derive(Args, Debug, Clone)]
pub struct EstimateArgs {
    /// Results root; finished trials in DIR/<sweep name>/ are skipped and give the speeds.
    #[arg(long, default_value = "results", value_name = "DIR")]
    pub out: PathBuf,
    /// Where the trials would train.
    #[command(flatten)]
    pub slots: SlotArgs,
}

/// Where trials train: `--devices`, `--per-device`, `--threads` (for `run`, `worker`, `plan`).
#[derive(Args, Debug, Clone)]
pub struct SlotArgs {
    /// Devices: `cpu` (one trial per core), `cpu:N` (N trials at once), `cuda:0,cuda:1`,
    /// `cuda:all`, `wgpu` (the GPU wgpu finds: Vulkan, Metal, DX12), or `auto` (every GPU if a
    /// CUDA driver answers, else cpu).
    #[arg(long, default_value = "cpu", value_name = "SPEC")]
    pub devices: String,
    /// Trials sharing one GPU at a time.
    #[arg(long, default_value_t = 1, value_name = "K")]
    pub per_device: usize,
    /// CPU threads each trial may use, fixed (default: the running trials share the cores,
    /// and a trial's share grows at its next epoch when others end).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Train up to K trials of one shape as one model (`auto`: 8 on a GPU, 1 on CPU);
    /// overrides the sweep file's `fuse:`.
    #[arg(long, value_name = "K|auto")]
    pub fuse: Option<crate::spec::Fuse>,
}

impl SlotArgs {
    /// The slots these flags give for `pending` trials; a bad flag is an `Error::Devices`.
    pub fn slots(&self, pending: usize) -> crate::error::Result<Vec<crate::scheduler::Slot>> {
        crate::devices::parse(
            &self.devices,
            self.per_device,
            self.threads,
            pending,
            &crate::devices::cuda_device_count,
        )
    }
}

/// Options of `hypersweep run`.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// The sweep file (YAML).
    pub file: PathBuf,
    /// Results root; the sweep writes to DIR/<sweep name>/.
    #[arg(long, default_value = "results", value_name = "DIR")]
    pub out: PathBuf,
    /// Use the full MNIST IDX files in this directory instead of the bundled sample.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Start over: move the existing results directory aside (nothing is deleted); refused
    /// while another process trains trials there.
    #[arg(long)]
    pub fresh: bool,
    /// Serve the live view of this sweep while it runs (as `hypersweep serve`, on 127.0.0.1),
    /// on PORT or by default 8765 or the next free port.
    #[arg(long, value_name = "PORT", num_args = 0..=1, require_equals = false)]
    pub serve: Option<Option<u16>>,
    /// How trials are trained.
    #[command(flatten)]
    pub train: TrainArgs,
}

/// Options of `hypersweep submit`.
#[derive(Args, Debug, Clone)]
pub struct SubmitArgs {
    /// The sweep file (YAML).
    pub file: PathBuf,
    /// Results root; the sweep writes to DIR/<sweep name>/ (a file system the nodes share).
    #[arg(long, default_value = "results", value_name = "DIR")]
    pub out: PathBuf,
    /// Worker tasks in the job array.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub tasks: usize,
    /// Tasks running at once (the array's `%P`); all of them when absent.
    #[arg(long, value_name = "P")]
    pub parallel: Option<usize>,
    /// Slurm partition.
    #[arg(long, value_name = "NAME")]
    pub partition: Option<String>,
    /// GPUs per task; its trials train on them (`--devices cuda:all` in the task).
    #[arg(long, value_name = "G")]
    pub gpus_per_task: Option<usize>,
    /// CPUs per task; a CPU task trains one trial at a time with this many threads.
    #[arg(long, default_value_t = 1, value_name = "C")]
    pub cpus_per_task: usize,
    /// Time limit per task (Slurm's format: `30`, `2:00:00`, `1-0`).
    #[arg(long, value_name = "T")]
    pub time: Option<String>,
    /// An extra `#SBATCH` line for the worker script (repeatable): `--sbatch=--mem=8G`.
    #[arg(long = "sbatch", value_name = "ARG", allow_hyphen_values = true)]
    pub sbatch: Vec<String>,
    /// Print the worker script and submit nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The `--devices` of each worker (default: `cuda:all` with GPUs, else `cpu:1`).
    #[arg(long, value_name = "SPEC")]
    pub devices: Option<String>,
    /// The `--fuse` of each worker (default: the sweep file's `fuse:`).
    #[arg(long, value_name = "K|auto")]
    pub fuse: Option<crate::spec::Fuse>,
    /// Seconds before a time limit that Slurm warns a task (USR1): its running trials write
    /// their checkpoint and the task requeues itself. A requeued or preempted task (SIGTERM)
    /// resumes its trials from their checkpoints.
    #[arg(long, default_value_t = 90, value_name = "S")]
    pub signal_before: u32,
}

/// Options of `hypersweep worker`.
#[derive(Args, Debug, Clone)]
pub struct WorkerArgs {
    /// A results directory written by `run` or `submit` (results/<sweep>).
    pub dir: PathBuf,
    /// How trials are trained.
    #[command(flatten)]
    pub train: TrainArgs,
}

/// How `run` and `worker` train: devices, threads, which trials, what they print.
#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    /// Where the trials train.
    #[command(flatten)]
    pub slots: SlotArgs,
    /// Retry trials whose stored status is failed (interrupted ones are always retried).
    #[arg(long)]
    pub rerun_failed: bool,
    /// No progress display; errors and the final line only.
    #[arg(short, long)]
    pub quiet: bool,
    /// Do not write the report at the end.
    #[arg(long)]
    pub no_report: bool,
}
