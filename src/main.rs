//! hypersweep's entry point: parse the command line, call the library, print an error once,
//! exit with a code that says whose problem it was.

use clap::Parser;
use hypersweep::app;
use hypersweep::cli::{Cli, Command};
use std::process::ExitCode;

/// Keeps freed training buffers in the process instead of returning them to the kernel.
///
/// A CNN step allocates and frees ~200 MB of activations and gradients (30 MB each for the first
/// layer at batch 600). glibc's defaults hand such blocks back to the kernel (mmap/munmap, heap
/// trimming), so every step page-faults them in again: 12.7% of CPU time in `clear_page` in the
/// profile. Keeping them (mmap only above glibc's 32 MiB maximum, trim only past 512 MiB free)
/// made the CNN 12% faster on one thread and 22% on two (benches/RESULTS.md). Settings given in
/// glibc's own `MALLOC_*_` environment variables win.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let set = |var: &str, param: libc::c_int, value: libc::c_int| {
            if std::env::var_os(var).is_none() {
                // SAFETY: mallopt only changes allocator parameters; called before any thread.
                unsafe { libc::mallopt(param, value) };
            }
        };
        set("MALLOC_MMAP_THRESHOLD_", libc::M_MMAP_THRESHOLD, 32 << 20);
        set("MALLOC_TRIM_THRESHOLD_", libc::M_TRIM_THRESHOLD, 512 << 20);
        set("MALLOC_TOP_PAD_", libc::M_TOP_PAD, 64 << 20);
    }
}

/// The system allocator, with large blocks kept for reuse (`big_blocks.rs`).
#[global_allocator]
static ALLOCATOR: hypersweep::big_blocks::BigBlocks = hypersweep::big_blocks::BigBlocks;

fn main() -> ExitCode {
    tune_allocator();
    // clap exits 2 on a usage error; here 2 means our bug, and a bad flag is the user's (1).
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 1 } else { 0 });
        }
    };
    let log = hypersweep::logging::init(cli.verbose);
    // A panicking trial is recorded as failed by the scheduler; its message goes to the log,
    // not through the progress display. A panic on a GPU backend's thread is also filed for the
    // trials on that device, which cubecl would not tell.
    std::panic::set_hook(Box::new(|info| {
        hypersweep::engine::gpu_faults::record(info);
        tracing::error!("panic: {info}");
    }));
    let result = match &cli.command {
        Command::Validate { file } => app::validate(file).map(|s| hypersweep::outln!("{s}")),
        Command::Patterns { file, log } => app::patterns(file, log).map(|s| hypersweep::output::out(&s)),
        Command::Plan {
            file,
            json,
            data_dir,
            no_estimate,
            run,
        } => {
            let opts = app::estimate::Options {
                slots: &run.slots,
                out: &run.out,
            };
            let estimate = (!*no_estimate).then_some(&opts);
            app::plan_text(file, *json, data_dir.as_deref(), (estimate, &run.slots)).map(|s| hypersweep::output::out(&s))
        }
        Command::Serve(a) => hypersweep::serve::serve(&hypersweep::serve::Options {
            dirs: a.dirs.clone(),
            host: a.host.clone(),
            port: a.port,
            eta: app::estimate::status_line,
        }),
        Command::Status { path, out } => app::status(path, out).map(|s| hypersweep::output::out(&s)),
        Command::Report { dirs, out } => {
            if dirs.len() == 1 {
                hypersweep::report::write(&dirs[0]).map(|p| hypersweep::outln!("report: {}", p.display()))
            } else {
                let out = out.clone().unwrap_or_else(|| dirs[0].clone());
                hypersweep::report::compare(dirs, &out)
                    .map(|p| hypersweep::outln!("comparison: {}", p.display()))
            }
        }
        Command::Bench {
            models,
            threads,
            device,
            epochs,
            train_size,
        } => models.split(',').try_for_each(|m| {
            let dev = hypersweep::devices::parse(device, 1, Some(*threads), 1, &hypersweep::devices::cuda_device_count)?[0]
                .device;
            let r = hypersweep::bench::throughput(m.trim(), dev, *threads, *epochs, *train_size)?;
            hypersweep::outln!(
                "{}",
                serde_json::json!({
                    "side": "hypersweep", "model": r.model, "device": r.device, "threads": r.threads, "samples": r.samples,
                    "seconds": r.seconds, "samples_per_second": r.samples_per_second,
                    "test_accuracy": r.test_accuracy,
                })
            );
            Ok(())
        }),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut out = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "hypersweep", &mut out);
            hypersweep::output::out(&String::from_utf8_lossy(&out));
            Ok(())
        }
        Command::Run(args) => return finish_training(app::run(args, &log)),
        Command::Worker(args) => return finish_training(app::worker(args, &log)),
        Command::Submit(args) => app::submit(args).map(|s| hypersweep::output::out(&s)),
    };
    exit_code(result)
}

/// The exit code of `run` and `worker`: 130 when interrupted, 3 when trials failed, 4 when trials
/// are left without a result (held by other processes).
fn finish_training(outcome: hypersweep::Result<app::RunOutcome>) -> ExitCode {
    match outcome {
        Ok(o) if o.interrupted => {
            hypersweep::errln!(
                "interrupted: rerun the same command to finish the remaining trials"
            );
            ExitCode::from(130)
        }
        Ok(o) if o.failed > 0 => {
            hypersweep::errln!(
                "{} trial(s) failed; see their error in the table and the report (retry with --rerun-failed)",
                o.failed
            );
            ExitCode::from(3)
        }
        Ok(o) if o.left > 0 => {
            hypersweep::errln!(
                "the sweep is not complete: {} trial(s) have no result yet (see above); rerun the same command once their holders are done or gone",
                o.left
            );
            ExitCode::from(4)
        }
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => exit_code(Err(e)),
    }
}

/// Prints an error once and turns it into the exit code that says whose problem it was.
fn exit_code(result: hypersweep::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = e.exit_code();
            if code == 2 {
                hypersweep::errln!("internal error: {e}");
            } else {
                hypersweep::errln!("error: {e}");
            }
            ExitCode::from(code)
        }
    }
}
