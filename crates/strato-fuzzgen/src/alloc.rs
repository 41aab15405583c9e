//! An allocation meter: a global allocator that forwards to the system's and counts the
//! bytes each thread holds, so a fuzz target or property test can bound what one hostile
//! input makes a parser hold.
//!
//! Install it in a binary with `#[global_allocator] static A: Meter = Meter;` and wrap the
//! work in [`peak_during`]. Memory freed by another thread than the one that allocated it
//! is counted against the freeing thread, which only ever makes a peak look smaller than
//! it was on the allocating thread; the harnesses here are single-threaded.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The counting allocator.
pub struct Meter;

thread_local! {
    /// Bytes this thread holds now (may go negative when it frees others' memory).
    static HELD: Cell<isize> = const { Cell::new(0) };
    /// The most it held since the last [`peak_during`] began.
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    // try_with: nothing is counted while the thread's locals are being torn down.
    let _ = HELD.try_with(|h| {
        let now = h.get().saturating_add(delta);
        h.set(now);
        let _ = PEAK.try_with(|p| {
            if now > p.get() {
                p.set(now);
            }
        });
    });
}

fn size(layout: Layout) -> isize {
    isize::try_from(layout.size()).unwrap_or(isize::MAX)
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the
// bookkeeping touches only const-initialised thread locals that never allocate.
unsafe impl GlobalAlloc for Meter {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as received.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(size(layout));
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as received.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count(size(layout));
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as received.
        unsafe { System.dealloc(ptr, layout) };
        count(-size(layout));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as received.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(isize::try_from(new_size).unwrap_or(isize::MAX) - size(layout));
        }
        p
    }
}

/// Bytes the current thread holds now (0 if the meter is not the global allocator).
pub fn held() -> isize {
    HELD.try_with(Cell::get).unwrap_or(0)
}

/// Runs `f` and returns its result with the most bytes the thread held during it beyond
/// what it held before.
pub fn peak_during<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let base = held();
    let _ = PEAK.try_with(|p| p.set(base));
    let r = f();
    let peak = PEAK.try_with(Cell::get).unwrap_or(base);
    (r, usize::try_from(peak - base).unwrap_or(0))
}

/// Whether the meter is the global allocator (an allocation shows up in [`held`]).
pub fn installed() -> bool {
    let before = held();
    let b = std::hint::black_box(vec![0u8; 4096]);
    let during = held();
    drop(b);
    during - before >= 4096
}

/// Runs `f` and panics if the thread held more than `bound` bytes beyond what it held
/// before at any point during it. The meter must be installed (else nothing is proven).
pub fn bounded<R>(what: &str, bound: usize, f: impl FnOnce() -> R) -> R {
    assert!(
        installed(),
        "the allocation meter is not the global allocator"
    );
    let (r, peak) = peak_during(f);
    assert!(
        peak <= bound,
        "{what} held {peak} bytes at its peak, over the bound of {bound}"
    );
    r
}
