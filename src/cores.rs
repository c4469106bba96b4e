//! The machine's cores shared among the CPU trials running now. Without `--threads`, each
//! running trial's share is an equal part of the cores, asked again before every training step:
//! when a sweep's tail leaves one trial running, it gets every core from its next step on. With
//! `--threads`, a trial keeps that many threads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The cores the CPU trials of one run share, and who holds a seat now, in order of arrival.
#[derive(Debug)]
pub struct CoreShare {
    cores: usize,
    seated: Mutex<Vec<u64>>,
    tickets: AtomicU64,
}

impl PartialEq for CoreShare {
    fn eq(&self, other: &Self) -> bool {
        self.cores == other.cores
    }
}

impl CoreShare {
    /// A share of `cores` (at least 1).
    pub fn new(cores: usize) -> Arc<CoreShare> {
        Arc::new(CoreShare {
            cores: cores.max(1),
            seated: Mutex::new(vec![]),
            tickets: AtomicU64::new(0),
        })
    }

    /// The cores shared.
    pub fn cores(&self) -> usize {
        self.cores
    }

    /// Takes a seat for a trial that starts now; it is given back when the last clone of the
    /// returned [`Threads`] is dropped.
    pub fn sit(self: &Arc<Self>) -> Threads {
        let ticket = self.tickets.fetch_add(1, Ordering::SeqCst);
        self.seated.lock().expect("seats").push(ticket);
        Threads(Budget::Seat(Arc::new(Seat {
            share: self.clone(),
            ticket,
        })))
    }

    /// The threads of the seat `ticket`: the cores split evenly over the seats, the remainder
    /// going to the seats taken first; at least 1 (more trials than cores share them).
    fn threads_of(&self, ticket: u64) -> usize {
        let seated = self.seated.lock().expect("seats");
        let n = seated.len().max(1);
        let rank = seated.iter().position(|t| *t == ticket).unwrap_or(n);
        (self.cores / n + usize::from(rank < self.cores % n)).max(1)
    }
}

#[derive(Debug)]
struct Seat {
    share: Arc<CoreShare>,
    ticket: u64,
}

impl Drop for Seat {
    fn drop(&mut self) {
        let mut seated = self.share.seated.lock().expect("seats");
        seated.retain(|t| *t != self.ticket);
    }
}

#[derive(Debug, Clone)]
enum Budget {
    Fixed(usize),
    Seat(Arc<Seat>),
}

/// How many CPU threads a running trial may use: fixed, or its share of the cores now.
#[derive(Debug, Clone)]
pub struct Threads(Budget);

impl Threads {
    /// Always `n` threads (`--threads`, GPU slots, tests).
    pub fn fixed(n: usize) -> Threads {
        Threads(Budget::Fixed(n.max(1)))
    }

    /// The threads the trial may use from now on.
    pub fn now(&self) -> usize {
        match &self.0 {
            Budget::Fixed(n) => *n,
            Budget::Seat(s) => s.share.threads_of(s.ticket),
        }
    }
}

/// A rayon pool of the size asked last, rebuilt only when the size changes, so that a trial's
/// steps run on as many threads as its share holds when each starts.
#[derive(Default)]
pub struct Pool(Option<rayon::ThreadPool>);

impl Pool {
    /// Runs `f` on `threads` threads: on the calling thread's own pool when it already has that
    /// many (no pool is built), else on this pool, (re)built to that size.
    pub fn run<R: Send>(&mut self, threads: usize, f: impl FnOnce() -> R + Send) -> R {
        if rayon::current_num_threads() == threads {
            return f();
        }
        if self.0.as_ref().map(rayon::ThreadPool::current_num_threads) != Some(threads) {
            match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
                Ok(p) => self.0 = Some(p),
                // No new threads to be had: go on with the threads there are.
                Err(_) => return f(),
            }
        }
        self.0.as_ref().expect("built above").install(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_split_the_cores_and_follow_the_trials_still_running() {
        let share = CoreShare::new(4);
        let a = share.sit();
        assert_eq!(a.now(), 4, "alone, a trial has every core");
        let b = share.sit();
        let c = share.sit();
        // 4 cores over 3 trials: the first seated gets the remainder.
        assert_eq!((a.now(), b.now(), c.now()), (2, 1, 1));
        let a2 = a.clone();
        drop(a);
        assert_eq!(a2.now(), 2, "a seat stays while a clone holds it");
        drop(a2);
        assert_eq!((b.now(), c.now()), (2, 2));
        drop(b);
        assert_eq!(c.now(), 4);
        let many: Vec<Threads> = (0..6).map(|_| share.sit()).collect();
        assert!(
            many.iter().all(|t| t.now() == 1),
            "more trials than cores: 1 each"
        );
        assert_eq!(Threads::fixed(3).now(), 3);
    }

    #[test]
    fn a_pool_runs_on_the_threads_asked() {
        let mut pool = Pool::default();
        for n in [1, 3, 3, 2] {
            assert_eq!(pool.run(n, rayon::current_num_threads), n);
        }
    }
}
