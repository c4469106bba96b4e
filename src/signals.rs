//! Ctrl-C and SIGTERM during a run. The first Ctrl-C (SIGINT) stops new trials, the second one
//! stops the running trials too; one SIGTERM stops both at once, since a cluster scheduler that
//! sends it waits only a short grace period before SIGKILL. SIGHUP (the terminal was closed)
//! counts as a SIGTERM. One more of any of them while running trials stop kills them at once
//! instead of waiting out their grace period. Stopped trials are recorded
//! `interrupted` and the run exits with what it saved. SIGUSR1 does the same: it is what Slurm
//! sends before a time limit or preemption (`--signal=B:USR1@90`), and the trials' claims are
//! released so that the requeued task, or another worker, trains them again. The flags themselves live in `Cancel`;
//! the scheduler announces each stage as soon as its flag is set.

use crate::scheduler::Cancel;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use signal_hook::iterator::{Handle, Signals};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Turns SIGINT, SIGTERM, SIGHUP and SIGUSR1 into presses of a `Cancel` for as long as it lives; dropping it
/// stops watching.
pub struct Watch {
    handle: Handle,
    thread: Option<JoinHandle<()>>,
}

/// Starts watching for SIGINT and SIGTERM on behalf of `cancel`. Without a watch (the handlers
/// could not be installed, which is logged) the signals keep their default action: the process
/// ends at once, which loses nothing saved.
pub fn watch(cancel: &Arc<Cancel>) -> Option<Watch> {
    let mut signals = match Signals::new([SIGINT, SIGTERM, SIGHUP, SIGUSR1]) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot handle Ctrl-C and SIGTERM: {e}");
            return None;
        }
    };
    let handle = signals.handle();
    let cancel = cancel.clone();
    let thread = std::thread::spawn(move || {
        for signal in signals.forever() {
            if signal == SIGINT {
                cancel.press();
            } else {
                let name = crate::program::child::signal_name(signal);
                tracing::warn!("{name}: stopping running trials");
                cancel.stop_all();
            }
        }
    });
    Some(Watch {
        handle,
        thread: Some(thread),
    })
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
