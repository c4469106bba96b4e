//! Failures on a GPU backend's own threads. cubecl runs each device's queue on a server thread
//! named `DS{U|D}-{type}-{index}`, which catches a failing task's panic (an allocation the
//! device refuses, a kernel that does not compile), logs "Task failed" and goes on. The trial
//! that queued the task gets no error and trains on with what the failed task left behind: on
//! lavapipe, a CNN whose loss did not move for two epochs was reported `ok`. The panic hook
//! files such panics here; a GPU trial that sees one on its device fails with its message.
//! Which trial queued the failed task is not known: with `--per-device K`, every trial on the
//! device at the time fails, since any of their tensors may be the one left unwritten.

use super::Device;
use std::panic::PanicHookInfo;
use std::sync::{Mutex, PoisonError};

/// A cubecl device id `(type, index)`, how many failures were filed for it, and the latest
/// one's message.
type DeviceFaults = ((u16, u16), usize, String);

/// The failures filed, per device.
static FAULTS: Mutex<Vec<DeviceFaults>> = Mutex::new(Vec::new());

/// Files a panic of the current thread when it is a cubecl device thread; true when it was.
pub fn record(info: &PanicHookInfo<'_>) -> bool {
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .map(ToString::to_string)
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| info.to_string());
    record_message(&tidy(&message))
}

/// The cause in a panic message, without the words of the `unwrap` that raised it.
fn tidy(message: &str) -> String {
    let message = message
        .strip_prefix("called `Result::unwrap()` on an `Err` value: ")
        .unwrap_or(message);
    let lines = message.lines().map(str::trim);
    let lines: Vec<&str> = lines
        .filter(|l| !l.is_empty() && *l != "No backtrace available")
        .collect();
    lines.join("; ")
}

fn record_message(message: &str) -> bool {
    let thread = std::thread::current();
    let Some(device) = thread.name().and_then(device_of_thread) else {
        return false;
    };
    let mut faults = FAULTS.lock().unwrap_or_else(PoisonError::into_inner);
    match faults.iter_mut().find(|f| f.0 == device) {
        Some(f) => (f.1, f.2) = (f.1 + 1, message.to_string()),
        None => faults.push((device, 1, message.to_string())),
    }
    true
}

/// The cubecl device id `(type, index)` in a device thread's name.
fn device_of_thread(name: &str) -> Option<(u16, u16)> {
    let rest = name
        .strip_prefix("DSU-")
        .or_else(|| name.strip_prefix("DSD-"))?;
    let (kind, index) = rest.split_once('-')?;
    Some((kind.parse().ok()?, index.parse().ok()?))
}

/// cubecl's id of the device a trial trains on (`CudaDevice::to_id`, and `WgpuDevice::to_id`
/// of the `DefaultDevice` the engine uses); `None` on the CPU.
fn cubecl_id(device: Device) -> Option<(u16, u16)> {
    match device {
        Device::Cpu => None,
        Device::Cuda(i) => Some((0, u16::try_from(i).unwrap_or(u16::MAX))),
        Device::Wgpu => Some((4, 0)),
    }
}

/// Watches one device for failures filed from the moment it is made.
pub struct Watch {
    device: Option<(u16, u16)>,
    /// The device's count of failures when the watch began.
    seen: usize,
}

impl Watch {
    /// Starts watching `device` (a CPU watch never sees anything).
    pub fn new(device: Device) -> Self {
        let device = cubecl_id(device);
        let seen = device.map_or(0, |d| filed(d).0);
        Watch { device, seen }
    }

    /// The message of the latest failure filed for the device since the watch began.
    pub fn fault(&self) -> Option<String> {
        let (count, message) = filed(self.device?);
        (count > self.seen).then_some(message)
    }
}

/// How many failures were filed for a device, and the latest one's message.
fn filed(device: (u16, u16)) -> (usize, String) {
    let faults = FAULTS.lock().unwrap_or_else(PoisonError::into_inner);
    faults
        .iter()
        .find(|f| f.0 == device)
        .map_or((0, String::new()), |f| (f.1, f.2.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panic_on(thread: &str, message: &'static str) {
        std::thread::Builder::new()
            .name(thread.into())
            .spawn(move || record_message(message))
            .unwrap()
            .join()
            .unwrap();
    }

    /// A failure on a device's thread reaches the watches of that device begun before it, and
    /// no other: not another GPU's, not the CPU's, not a later one.
    #[test]
    fn a_device_threads_panic_fails_only_that_devices_trials() {
        let (cuda3, cuda4, wgpu, cpu) = (
            Watch::new(Device::Cuda(3)),
            Watch::new(Device::Cuda(4)),
            Watch::new(Device::Wgpu),
            Watch::new(Device::Cpu),
        );
        panic_on("DSU-0-3", "can't allocate buffer of size: 188160000");
        panic_on("DSD-4-0", "wgpu: shader failed");
        panic_on("trial-7", "not a device thread");
        assert!(!record_message("the test's own thread is no device thread"));
        let fault = cuda3.fault();
        assert_eq!(
            fault.as_deref(),
            Some("can't allocate buffer of size: 188160000")
        );
        assert_eq!(cuda4.fault(), None);
        assert_eq!(wgpu.fault().as_deref(), Some("wgpu: shader failed"));
        assert_eq!(cpu.fault(), None);
        assert_eq!(Watch::new(Device::Cuda(3)).fault(), None);
    }

    #[test]
    fn a_fault_reads_as_its_cause() {
        let cubecl = "called `Result::unwrap()` on an `Err` value: can't allocate buffer of \
                      size: 156800000\nNo backtrace available";
        assert_eq!(tidy(cubecl), "can't allocate buffer of size: 156800000");
        assert_eq!(
            tidy("out of memory\n  at launch"),
            "out of memory; at launch"
        );
    }

    #[test]
    fn device_thread_names_are_read_as_cubecl_names_them() {
        assert_eq!(device_of_thread("DSU-0-12"), Some((0, 12)));
        assert_eq!(device_of_thread("DSD-4-0"), Some((4, 0)));
        assert_eq!(device_of_thread("DSX-0-1"), None);
        assert_eq!(device_of_thread("DSU-0"), None);
        assert_eq!(device_of_thread("main"), None);
    }
}
