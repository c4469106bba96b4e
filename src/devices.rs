//! `--devices` and `--per-device` → the scheduler's slots. CUDA devices are checked before
//! anything trains: asking for a GPU that is not there is an error, never a silent fallback
//! (except with `auto`).

use crate::engine::Device;
use crate::error::{Error, Result};
use crate::scheduler::Slot;

/// How far past the core count `cpu:N` and `--threads` may go: some oversubscription is
/// useful (trials that wait on I/O), thousands of threads only crash or hang the run.
const MAX_OVERSUBSCRIPTION: usize = 8;
/// The most trials one GPU may be shared by.
const MAX_PER_DEVICE: usize = 64;

/// The CPU cores this process may use.
pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(std::num::NonZero::get)
        .unwrap_or(1)
}

/// How many CUDA GPUs the driver reports, or why none can be used.
pub fn cuda_device_count() -> Result<usize, String> {
    // Tests of GPU placement (program trials see CUDA_VISIBLE_DEVICES) on machines without one.
    if let Some(n) = std::env::var("HYPERSWEEP_TEST_FAKE_GPUS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return Ok(n);
    }
    #[cfg(feature = "cuda")]
    {
        let probe = std::panic::catch_unwind(|| {
            // cudarc loads libcuda dynamically and panics when it is missing.
            cudarc::driver::result::init().map_err(|e| format!("{e:?}"))?;
            cudarc::driver::result::device::get_count()
                .map(|n| n as usize)
                .map_err(|e| format!("{e:?}"))
        });
        match probe {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(e)) => Err(format!("the CUDA driver answered with an error: {e}")),
            Err(_) => Err(
                "the CUDA driver library (libcuda.so) could not be loaded: install the NVIDIA driver, \
                 or point LD_LIBRARY_PATH at the directory holding libcuda.so"
                    .into(),
            ),
        }
    }
    #[cfg(not(feature = "cuda"))]
    {
        Err("this hypersweep was built without the `cuda` feature".into())
    }
}

/// Memory this process could still take, in bytes: `MemAvailable` plus free swap from
/// /proc/meminfo, lowered to what is left under the cgroup's `memory.max` (a container's
/// limit); `None` where neither can be read.
pub fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
    let field = |name: &str| -> Option<u64> {
        let line = meminfo.as_deref()?.lines().find(|l| l.starts_with(name))?;
        let kib: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib.saturating_mul(1024))
    };
    let machine = field("MemAvailable:").map(|a| a.saturating_add(field("SwapFree:").unwrap_or(0)));
    let cgroup = cgroup_memory_left();
    match (machine, cgroup) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// What is left under this process's cgroup (v2) memory limit, when it has one.
fn cgroup_memory_left() -> Option<u64> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = own.lines().find_map(|l| l.strip_prefix("0::"))?.trim();
    let dir = std::path::Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'));
    let read = |name: &str| -> Option<u64> {
        std::fs::read_to_string(dir.join(name))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    // `max` (no limit) does not parse, and then there is nothing to lower.
    let limit = read("memory.max")?;
    Some(limit.saturating_sub(read("memory.current").unwrap_or(0)))
}

/// Total memory of CUDA GPU `i`, in bytes; `None` without a driver or such a GPU. A trial
/// needing more than the whole card can never fit on it.
pub fn cuda_total_memory(i: usize) -> Option<u64> {
    #[cfg(feature = "cuda")]
    {
        std::panic::catch_unwind(|| {
            cudarc::driver::result::init().ok()?;
            let dev = cudarc::driver::result::device::get(i32::try_from(i).ok()?).ok()?;
            // SAFETY: `dev` is a device handle the driver just returned.
            let bytes = unsafe { cudarc::driver::result::device::total_mem(dev) }.ok()?;
            u64::try_from(bytes).ok()
        })
        .ok()
        .flatten()
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = i;
        None
    }
}

/// Parses a device spec into slots. `pending` is how many trials will run (to share cores).
pub fn parse(
    spec: &str,
    per_device: usize,
    threads: Option<usize>,
    pending: usize,
    gpu_count: &dyn Fn() -> Result<usize, String>,
) -> Result<Vec<Slot>> {
    slots(spec, per_device, threads, pending, gpu_count).map_err(Error::Devices)
}

fn slots(
    spec: &str,
    per_device: usize,
    threads: Option<usize>,
    pending: usize,
    gpu_count: &dyn Fn() -> Result<usize, String>,
) -> Result<Vec<Slot>, String> {
    if per_device == 0 {
        return Err("--per-device must be at least 1".into());
    }
    if threads == Some(0) {
        return Err("--threads must be at least 1".into());
    }
    let machine = cores();
    if let Some(t) = threads.filter(|t| *t > MAX_OVERSUBSCRIPTION * machine) {
        return Err(format!(
            "--threads {t}: this machine has {machine} cores; at most {} threads per trial ({MAX_OVERSUBSCRIPTION} per core)",
            MAX_OVERSUBSCRIPTION * machine
        ));
    }
    if per_device > MAX_PER_DEVICE {
        return Err(format!(
            "--per-device {per_device}: at most {MAX_PER_DEVICE} trials can share one GPU"
        ));
    }
    let spec = spec.trim();
    let cpu_slots = |n: usize| -> Vec<Slot> {
        let running = n.min(pending.max(1)).max(1);
        let t = threads.unwrap_or((cores() / running).max(1));
        vec![
            Slot {
                device: Device::Cpu,
                threads: t
            };
            n
        ]
    };
    if spec == "cpu" {
        return Ok(cpu_slots(cores()));
    }
    if let Some(n) = spec.strip_prefix("cpu:") {
        let n: usize = n
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("`{spec}`: expected cpu:N with N ≥ 1 concurrent trials"))?;
        if n > MAX_OVERSUBSCRIPTION * machine {
            return Err(format!(
                "`{spec}`: this machine has {machine} cores; at most {} trials can run at once on CPU ({MAX_OVERSUBSCRIPTION} per core)",
                MAX_OVERSUBSCRIPTION * machine
            ));
        }
        return Ok(cpu_slots(n));
    }
    let gpu_slots = |ids: &[usize]| -> Vec<Slot> {
        ids.iter()
            .flat_map(|&i| {
                std::iter::repeat_n(
                    Slot {
                        device: Device::Cuda(i),
                        threads: threads.unwrap_or(1),
                    },
                    per_device,
                )
            })
            .collect()
    };
    if spec == "auto" {
        return match gpu_count() {
            Ok(n) if n > 0 => Ok(gpu_slots(&(0..n).collect::<Vec<_>>())),
            _ => Ok(cpu_slots(cores())),
        };
    }
    if spec == "cuda:all" || spec == "cuda" {
        let n = gpu_count().map_err(|e| format!("--devices {spec}: {e}"))?;
        if n == 0 {
            return Err(format!("--devices {spec}: the CUDA driver reports no GPU"));
        }
        return Ok(gpu_slots(&(0..n).collect::<Vec<_>>()));
    }
    let mut ids = vec![];
    for part in spec.split(',') {
        let part = part.trim();
        let id = part
            .strip_prefix("cuda:")
            .and_then(|i| i.parse::<usize>().ok())
            .ok_or_else(|| {
                format!("unknown device `{part}`: expected cpu, cpu:N, cuda:N[,cuda:M…], cuda:all or auto")
            })?;
        if ids.contains(&id) {
            return Err(format!("device cuda:{id} is listed twice"));
        }
        ids.push(id);
    }
    let n = gpu_count().map_err(|e| format!("--devices {spec}: {e}"))?;
    if let Some(bad) = ids.iter().find(|&&i| i >= n) {
        return Err(format!(
            "--devices {spec}: cuda:{bad} does not exist; the driver reports {n} GPU(s) (cuda:0 … cuda:{})",
            n.saturating_sub(1)
        ));
    }
    Ok(gpu_slots(&ids))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_gpus() -> Result<usize, String> {
        Ok(2)
    }
    fn no_driver() -> Result<usize, String> {
        Err("libcuda.so could not be loaded".into())
    }

    #[test]
    fn cpu_specs() {
        let s = parse("cpu:3", 1, None, 10, &two_gpus).unwrap();
        assert_eq!(s.len(), 3);
        assert!(s.iter().all(|s| s.device == Device::Cpu && s.threads >= 1));
        let s = parse("cpu:2", 1, Some(4), 10, &two_gpus).unwrap();
        assert_eq!(s[0].threads, 4);
        assert!(parse("cpu:0", 1, None, 1, &two_gpus).is_err());
    }

    #[test]
    fn gpu_specs_with_ordinals_and_sharing() {
        let s = parse("cuda:all", 2, None, 10, &two_gpus).unwrap();
        let devs: Vec<String> = s.iter().map(|s| s.device.to_string()).collect();
        assert_eq!(devs, ["cuda:0", "cuda:0", "cuda:1", "cuda:1"]);
        let s = parse("cuda:1", 3, None, 10, &two_gpus).unwrap();
        assert_eq!(s.len(), 3);
        assert!(s.iter().all(|s| s.device == Device::Cuda(1)));
        let e = parse("cuda:0,cuda:2", 1, None, 10, &two_gpus)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cuda:2 does not exist") && e.contains("2 GPU"),
            "{e}"
        );
        let e = parse("cuda:0", 1, None, 10, &no_driver)
            .unwrap_err()
            .to_string();
        assert!(e.contains("libcuda.so"), "{e}");
        assert!(
            parse("gpu:0", 1, None, 10, &two_gpus)
                .unwrap_err()
                .to_string()
                .contains("unknown device")
        );
    }

    #[test]
    fn auto_falls_back_only_when_asked() {
        let s = parse("auto", 1, None, 4, &no_driver).unwrap();
        assert!(s.iter().all(|s| s.device == Device::Cpu));
        let s = parse("auto", 1, None, 4, &two_gpus).unwrap();
        assert_eq!(s.len(), 2);
        assert!(parse("cuda:all", 1, None, 4, &no_driver).is_err());
    }
}
