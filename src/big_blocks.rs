//! The allocator: the system's, with a small cache of very large blocks (32 MB or more). glibc
//! serves such blocks with a fresh `mmap` and returns them with `munmap`, so a training step
//! that frees and allocates the same large activations each step pays a page fault for every
//! 4 KB of them. A fused group's stacked activations are that size (16 CNN members: 480 MB per
//! layer output). Freed large blocks are kept here, up to `CAP` bytes, and handed back to the
//! next request of exactly their size; a block kept longest makes room for a newer one, so
//! sizes a run no longer asks for (data loading's) do not stay. The rest is the system
//! allocator, untouched.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, Ordering};

/// Blocks this large or larger are cached.
const MIN: usize = 32 << 20;
/// The most bytes kept at once.
const CAP: usize = 1 << 30;
/// The most blocks kept at once.
const SLOTS: usize = 16;

/// The system allocator with a cache of large freed blocks.
pub struct BigBlocks;

/// A kept block: its address (0: the slot is free), its size, and when it was kept.
type Block = (usize, usize, u64);

struct Cache {
    blocks: [Block; SLOTS],
    bytes: usize,
    kept: u64,
}

static LOCK: AtomicBool = AtomicBool::new(false);
static mut CACHE: Cache = Cache {
    blocks: [(0, 0, 0); SLOTS],
    bytes: 0,
    kept: 0,
};

/// Runs `f` on the cache under a spin lock (held for a few instructions; it never allocates).
fn with_cache<T>(f: impl FnOnce(&mut Cache) -> T) -> T {
    while LOCK
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        std::hint::spin_loop();
    }
    // SAFETY: the lock gives this thread the only access to CACHE until it is released below.
    let out = f(unsafe { &mut *std::ptr::addr_of_mut!(CACHE) });
    LOCK.store(false, Ordering::Release);
    out
}

fn cached(l: Layout) -> bool {
    l.size() >= MIN && l.align() <= 16
}

/// A kept block of exactly `size` bytes, taken out of the cache.
fn take(size: usize) -> Option<*mut u8> {
    with_cache(|c| {
        let slot = c.blocks.iter_mut().find(|b| b.0 != 0 && b.1 == size)?;
        let p = std::mem::take(slot).0;
        c.bytes -= size;
        Some(p as *mut u8)
    })
}

/// Keeps a freed block, making room by giving back the blocks kept longest, which the caller
/// frees (outside the lock); a block larger than the whole cache is not kept.
fn keep(p: *mut u8, size: usize) -> Option<[Block; SLOTS]> {
    if size > CAP {
        return None;
    }
    Some(with_cache(|c| {
        let mut out = [(0, 0, 0); SLOTS];
        let mut n = 0;
        while c.bytes + size > CAP || c.blocks.iter().all(|b| b.0 != 0) {
            let oldest = (c.blocks.iter_mut().filter(|b| b.0 != 0))
                .min_by_key(|b| b.2)
                .expect("a kept block while the cache is full");
            c.bytes -= oldest.1;
            out[n] = std::mem::take(oldest);
            n += 1;
        }
        c.kept += 1;
        let slot = c.blocks.iter_mut().find(|b| b.0 == 0).expect("a free slot");
        *slot = (p as usize, size, c.kept);
        c.bytes += size;
        out
    }))
}

/// Gives blocks back to the system.
fn free(blocks: &[Block]) {
    for &(p, size, _) in blocks.iter().filter(|b| b.0 != 0) {
        // SAFETY: a kept block came from `System` with this size and an alignment of at most
        // 16, which `System` (malloc's `free`) releases whatever the alignment said.
        unsafe { System.dealloc(p as *mut u8, Layout::from_size_align_unchecked(size, 16)) }
    }
}

// SAFETY: every block handed out comes from `System` with a layout of the same size and an
// alignment of at most 16 (what `System` gives any allocation of that size, being malloc), and
// goes back to `System` or to the cache, never both.
unsafe impl GlobalAlloc for BigBlocks {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if cached(l)
            && let Some(p) = take(l.size())
        {
            return p;
        }
        // SAFETY: the caller's layout, passed on.
        unsafe { System.alloc(l) }
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        if cached(l)
            && let Some(p) = take(l.size())
        {
            // SAFETY: the block holds `l.size()` bytes.
            unsafe { std::ptr::write_bytes(p, 0, l.size()) };
            return p;
        }
        // SAFETY: the caller's layout, passed on.
        unsafe { System.alloc_zeroed(l) }
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        if cached(l)
            && let Some(given_back) = keep(p, l.size())
        {
            free(&given_back);
            return;
        }
        // SAFETY: `p` came from `System` with this layout (see above).
        unsafe { System.dealloc(p, l) }
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's block and layout; the new layout keeps its alignment.
        unsafe {
            let new = Layout::from_size_align_unchecked(new_size, l.align());
            if !cached(l) && !cached(new) {
                return System.realloc(p, l, new_size);
            }
            let q = self.alloc(new);
            if !q.is_null() {
                std::ptr::copy_nonoverlapping(p, q, l.size().min(new_size));
                self.dealloc(p, l);
            }
            q
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_block_is_reused_for_its_size_only_and_zeroed_when_asked() {
        let a = BigBlocks;
        let big = Layout::from_size_align(MIN + 4096, 8).unwrap();
        let other = Layout::from_size_align(MIN + 8192, 8).unwrap();
        // SAFETY: each block is used within its layout and freed once, with that layout.
        unsafe {
            let p = a.alloc(big);
            p.write_bytes(7, big.size());
            a.dealloc(p, big);
            let q = a.alloc_zeroed(big);
            assert_eq!(q, p, "the kept block is handed back");
            assert!(
                std::slice::from_raw_parts(q, big.size())
                    .iter()
                    .all(|b| *b == 0)
            );
            let r = a.alloc(other);
            assert_ne!(r, p);
            a.dealloc(r, other);
            a.dealloc(q, big);
            // Filling the cache gives back the blocks kept longest, not the newest.
            let many: Vec<*mut u8> = (0..SLOTS + 2).map(|_| a.alloc(big)).collect();
            many.iter().for_each(|p| a.dealloc(*p, big));
            let again = a.alloc(big);
            assert!(many.contains(&again));
            a.dealloc(again, big);
        }
    }
}
