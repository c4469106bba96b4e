//! `hypersweep submit`: the plan recorded in the results directory, a worker script and a report
//! script in `results/<sweep>/slurm/` (readable, resubmittable by hand), one job array of
//! workers and a report job that runs after it. Returns at once: Slurm runs the rest, and the
//! results directory is the only thing the tasks share.

use super::load_plan;
use super::run::record_plan;
use super::train::check_data;
use crate::cli::SubmitArgs;
use crate::error::{Error, IoContext, Result};
use crate::store::{Store, SweepInfo, write_atomic};
use std::path::Path;
use std::process::Command;

/// Writes the scripts and submits them (or, with `--dry-run`, prints the worker script).
pub fn submit(args: &SubmitArgs) -> Result<String> {
    if args.tasks == 0 || args.parallel == Some(0) {
        return Err(Error::Input(
            "--tasks and --parallel must be at least 1".into(),
        ));
    }
    let (spec, plan) = load_plan(&args.file, None)?;
    check_data(&plan.trials)?;
    let store = Store::new(&args.out, &plan.name);
    let dir = std::path::absolute(store.dir()).at("resolve", store.dir())?;
    let exe = std::env::current_exe().at("find", Path::new("the hypersweep binary"))?;
    let worker = worker_script(args, &plan.name, &dir, &exe);
    if args.dry_run {
        return Ok(worker);
    }
    let sbatch = which("sbatch").ok_or_else(|| {
        Error::Input("submit needs Slurm: no `sbatch` on PATH (use `run` on this machine)".into())
    })?;
    record_plan(&store, &SweepInfo::new(&plan, &spec), &spec.source, false)?;
    let slurm = dir.join("slurm");
    crate::store::create_dir(&slurm)?;
    let worker_path = slurm.join("worker.sbatch");
    let report_path = slurm.join("report.sbatch");
    write_atomic(&worker_path, worker.as_bytes())?;
    write_atomic(
        &report_path,
        report_script(&plan.name, &dir, &exe).as_bytes(),
    )?;
    let array = sbatch_run(&sbatch, &[], &worker_path)?;
    let report = sbatch_run(
        &sbatch,
        &[format!("--dependency=afterany:{array}")],
        &report_path,
    )?;
    // `status` asks squeue about these.
    write_atomic(
        &slurm.join(JOBS_FILE),
        format!("{array}\n{report}\n").as_bytes(),
    )?;
    Ok(format!(
        "submitted job array {array} ({} task(s){}) and report job {report} (after it)\n\
         scripts: {}\n\
         follow: hypersweep status {}    (squeue -j {array},{report})\n",
        args.tasks,
        args.parallel
            .map(|p| format!(", at most {p} at once"))
            .unwrap_or_default(),
        slurm.display(),
        dir.display(),
    ))
}

/// The job ids of the last `submit` of a sweep, one a line, under `slurm/`.
pub const JOBS_FILE: &str = "jobs";

/// What Slurm says about the sweep's last submitted jobs, when `squeue` is on PATH: one line
/// per job or array task still queued or running.
pub fn squeue_text(dir: &Path) -> Option<String> {
    let ids = std::fs::read_to_string(dir.join("slurm").join(JOBS_FILE)).ok()?;
    let ids: Vec<&str> = ids.split_whitespace().collect();
    let squeue = which("squeue")?;
    let out = Command::new(squeue)
        .args(["-h", "-o", "%i %j %T %M %R", "-j", &ids.join(",")])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<String> = text.lines().map(|l| format!("    slurm: {l}\n")).collect();
    Some(if lines.is_empty() {
        format!("  slurm jobs {} have left the queue\n", ids.join(", "))
    } else {
        lines.concat()
    })
}

/// A program on PATH, like the shell finds it.
fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

/// `sbatch --parsable [extra] script` → the job id.
fn sbatch_run(sbatch: &Path, extra: &[String], script: &Path) -> Result<String> {
    let out = Command::new(sbatch)
        .arg("--parsable")
        .args(extra)
        .arg(script)
        .output()
        .at("run", sbatch)?;
    if !out.status.success() {
        return Err(Error::Input(format!(
            "sbatch refused {}: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    // `--parsable` prints `jobid` or `jobid;cluster`.
    let text = String::from_utf8_lossy(&out.stdout);
    let id = text
        .trim()
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    if id.is_empty() {
        return Err(Error::Input(format!(
            "sbatch printed no job id for {}",
            script.display()
        )));
    }
    Ok(id)
}

/// Quotes a word for bash.
fn sh(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// The job array script: each task runs `hypersweep worker` on the results directory. Slurm's
/// USR1 before a time limit or preemption reaches the worker (it records its trials
/// interrupted, releases their claims and exits) and the task requeues itself.
fn worker_script(args: &SubmitArgs, name: &str, dir: &Path, exe: &Path) -> String {
    let mut s = format!(
        "#!/bin/bash\n# Written by `hypersweep submit` for sweep `{name}`; resubmit by hand: sbatch {}\n",
        dir.join("slurm/worker.sbatch").display()
    );
    let mut directive = |d: String| s += &format!("#SBATCH {d}\n");
    directive(format!("--job-name=hs-{name}"));
    let parallel = args.parallel.map(|p| format!("%{p}")).unwrap_or_default();
    directive(format!("--array=0-{}{parallel}", args.tasks - 1));
    directive(format!("--output={}/slurm/worker-%A_%a.out", dir.display()));
    directive(format!("--signal=B:USR1@{}", args.signal_before));
    directive("--requeue".into());
    directive(format!("--cpus-per-task={}", args.cpus_per_task));
    if let Some(p) = &args.partition {
        directive(format!("--partition={p}"));
    }
    if let Some(g) = args.gpus_per_task {
        directive(format!("--gpus-per-task={g}"));
    }
    if let Some(t) = &args.time {
        directive(format!("--time={t}"));
    }
    for extra in &args.sbatch {
        directive(extra.clone());
    }
    let devices = args.devices.clone().unwrap_or_else(|| {
        if args.gpus_per_task.is_some_and(|g| g > 0) {
            "cuda:all".into()
        } else {
            "cpu:1".into()
        }
    });
    s += &format!(
        "\nset -u\n\
         # The worker runs in the background so that this shell can pass Slurm's USR1 on to it\n\
         # and put the task back in the queue; the worker releases what it was training.\n\
         requeue=0\n\
         trap 'requeue=1; kill -USR1 \"$worker\" 2>/dev/null' USR1\n\
         {} worker {} --devices {}{} --threads \"${{SLURM_CPUS_PER_TASK:-{}}}\" --quiet --no-report &\n\
         worker=$!\n\
         wait \"$worker\"; status=$?\n\
         # A trapped signal ends the first wait early: wait for the worker itself.\n\
         if kill -0 \"$worker\" 2>/dev/null; then wait \"$worker\"; status=$?; fi\n\
         # Saved and released: back in the queue, where a new run of this task picks up the rest.\n\
         if [ \"$requeue\" = 1 ]; then scontrol requeue \"${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}\"; fi\n\
         # 4: the trials left are held by this array's other tasks, which train them; this task's\n\
         # share is done (its output names them).\n\
         if [ \"$status\" = 4 ]; then status=0; fi\n\
         exit \"$status\"\n",
        sh(&exe.display().to_string()),
        sh(&dir.display().to_string()),
        sh(&devices),
        args.fuse
            .map(|f| format!(" --fuse {f}"))
            .unwrap_or_default(),
        args.cpus_per_task,
    );
    s
}

/// The report job: tables and report once every worker task has ended, however it ended.
fn report_script(name: &str, dir: &Path, exe: &Path) -> String {
    format!(
        "#!/bin/bash\n# Written by `hypersweep submit`: the report of sweep `{name}` after its workers.\n\
         #SBATCH --job-name=hs-{name}-report\n\
         #SBATCH --output={}/slurm/report-%j.out\n\
         #SBATCH --cpus-per-task=1\n\
         exec {} report {}\n",
        dir.display(),
        sh(&exe.display().to_string()),
        sh(&dir.display().to_string()),
    )
}
