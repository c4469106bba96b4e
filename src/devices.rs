//! `--devices` and `--per-device` → the scheduler's slots. CUDA devices are checked before
//! anything trains: asking for a GPU that is not there is an error, never a silent fallback
//! (except with `auto`).

use crate::cores::CoreShare;
use crate::error::{Error, Result};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use std::fmt;

/// One place a trial can run: a device and the CPU threads the trial may use.
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    /// The device trials in this slot train on.
    pub device: Device,
    /// CPU threads a trial in this slot may use (the size of its thread pool); with `share`,
    /// what it would get with every slot busy.
    pub threads: usize,
    /// The cores this slot's trials share with the other running CPU trials (no `--threads`):
    /// a trial's threads are then its share, asked again before each training step.
    pub share: Option<Arc<CoreShare>>,
}

/// Where a trial trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Device {
    /// The CPU, through burn's Flex backend.
    Cpu,
    /// A CUDA GPU, by device index (`cuda:N`).
    Cuda(usize),
    /// The GPU wgpu finds (Vulkan, Metal, DX12): AMD, Intel and Apple GPUs, or Mesa's software
    /// Vulkan driver (`wgpu`).
    Wgpu,
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
            Device::Wgpu => write!(f, "wgpu"),
        }
    }
}

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
        if !cuda_driver_loads() {
            return Err(NO_DRIVER.into());
        }
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
            Err(_) => Err(NO_DRIVER.into()),
        }
    }
    #[cfg(not(feature = "cuda"))]
    {
        Err("this hypersweep was built without the `cuda` feature".into())
    }
}

#[cfg(feature = "cuda")]
const NO_DRIVER: &str = "the CUDA driver library (libcuda.so) could not be loaded: install the NVIDIA \
     driver, or point LD_LIBRARY_PATH at the directory holding libcuda.so";

/// Whether the CUDA driver library can be loaded, tried under the names cudarc tries. cudarc
/// panics when none loads, and a caught panic is still reported by the panic hook; a user asking
/// for `cuda:0` on a machine without a driver must see only the one-line error.
#[cfg(feature = "cuda")]
fn cuda_driver_loads() -> bool {
    let names = ["cuda", "nvcuda"]
        .into_iter()
        .flat_map(cudarc::get_lib_name_candidates);
    names.into_iter().any(|name| {
        let Ok(c_name) = std::ffi::CString::new(name) else {
            return false;
        };
        // SAFETY: dlopen with a valid C string; the handle is closed at once (the library
        // stays mapped only while cudarc holds its own handle).
        unsafe {
            let handle = libc::dlopen(c_name.as_ptr(), libc::RTLD_LAZY | libc::RTLD_LOCAL);
            if handle.is_null() {
                return false;
            }
            libc::dlclose(handle);
        }
        true
    })
}

/// The adapter `--devices wgpu` trains on, named for the log (`llvmpipe (Vulkan, Cpu)`), or why
/// there is none. Asked of wgpu's native backends (Vulkan, Metal, DX12), which are what burn's
/// Wgpu backend uses; cubecl would panic at the first trial instead.
pub fn wgpu_adapter() -> Result<String, String> {
    #[cfg(feature = "wgpu")]
    {
        let instance = wgpu::Instance::default();
        let adapters = block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY));
        let mut found: Vec<_> = adapters.iter().map(wgpu::Adapter::get_info).collect();
        // The one burn's default device picks: a discrete GPU before an integrated, virtual or
        // software one.
        found.sort_by_key(|a| match a.device_type {
            wgpu::DeviceType::DiscreteGpu => 0,
            wgpu::DeviceType::IntegratedGpu => 1,
            wgpu::DeviceType::VirtualGpu => 2,
            wgpu::DeviceType::Cpu => 3,
            wgpu::DeviceType::Other => 4,
        });
        found
            .first()
            .map(|a| format!("{} ({:?}, {:?})", a.name, a.backend, a.device_type))
            .ok_or_else(|| {
                "wgpu found no GPU (Vulkan, Metal or DX12): install the GPU's driver, or Mesa's \
                 software Vulkan driver (Debian: apt-get install mesa-vulkan-drivers)"
                    .into()
            })
    }
    #[cfg(not(feature = "wgpu"))]
    {
        Err("this hypersweep was built without the `wgpu` feature".into())
    }
}

/// Waits for a future that native wgpu answers at once (adapter enumeration).
#[cfg(feature = "wgpu")]
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
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
        if !cuda_driver_loads() {
            return None;
        }
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

/// `wgpu` (or `wgpu:0`): K slots on the adapter wgpu finds, once it is known to exist.
fn wgpu_slots(spec: &str, per_device: usize, threads: Option<usize>) -> Result<Vec<Slot>, String> {
    if spec != "wgpu" && spec != "wgpu:0" {
        return Err(format!(
            "--devices {spec}: one wgpu GPU per run, `wgpu` (the best one found); choose another with \
             CUBECL_WGPU_DEFAULT_DEVICE=DiscreteGpu(1) (or IntegratedGpu(N), Cpu)"
        ));
    }
    let adapter = wgpu_adapter().map_err(|e| format!("--devices {spec}: {e}"))?;
    tracing::info!("wgpu trains on {adapter}");
    Ok(vec![
        Slot {
            device: Device::Wgpu,
            threads: threads.unwrap_or(1),
            share: None,
        };
        per_device
    ])
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
        let share = threads.is_none().then(|| CoreShare::new(cores()));
        vec![
            Slot {
                device: Device::Cpu,
                threads: t,
                share,
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
                        share: None,
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
    if spec == "wgpu" || spec.starts_with("wgpu:") {
        return wgpu_slots(spec, per_device, threads);
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
        let alone = ["cpu", "wgpu", "auto", "cuda", "cuda:all"];
        if alone.contains(&part) || part.starts_with("cpu:") || part.starts_with("wgpu:") {
            return Err(format!(
                "`{part}` cannot be listed with other devices in `--devices {spec}`: only \
                 cuda:N devices make a list (cuda:0,cuda:1); cpu, wgpu, cuda:all and auto \
                 stand alone"
            ));
        }
        let id = part
            .strip_prefix("cuda:")
            .and_then(|i| i.parse::<usize>().ok())
            .ok_or_else(|| {
                format!(
                    "unknown device `{part}`: expected cpu, cpu:N, cuda:N[,cuda:M…], cuda:all, wgpu or auto"
                )
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
        let e = parse("wgpu,cpu", 1, None, 10, &two_gpus)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`wgpu` cannot be listed with other devices"),
            "{e}"
        );
        let e = parse("cuda:0,cpu:2", 1, None, 10, &two_gpus)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`cpu:2` cannot be listed"), "{e}");
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
