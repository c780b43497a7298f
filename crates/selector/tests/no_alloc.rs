//! Steady-state `Selector::select` does not allocate: after a warm-up call,
//! further calls with events ready make no heap allocation, on any backend.
//!
//! A counting global allocator counts, per thread, the allocations made
//! while a thread has counting switched on, so tests running beside each
//! other do not disturb one another.

mod util;

use selector::{BackendKind, Events, Interest, Token, Waker};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::Duration;

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn note_allocation() {
    // try_with: the thread may be tearing its locals down.
    let counting = COUNTING.try_with(Cell::get).unwrap_or(false);
    if counting {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
    }
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// bookkeeping touches only const-initialised thread locals, which do not
// allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// How many allocations `f` makes on this thread.
fn allocations_in(f: impl FnOnce()) -> usize {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(Cell::get)
}

per_backend!(
    steady_select_does_not_allocate,
    the_counter_sees_allocations,
);

fn steady_select_does_not_allocate(kind: BackendKind) {
    const PAIRS: usize = 50;
    const CALLS: usize = 200;
    let pairs: Vec<(UnixStream, UnixStream)> =
        (0..PAIRS).map(|_| UnixStream::pair().unwrap()).collect();
    let file = util::regular_file();
    let mut selector = util::selector(kind);
    let waker = Waker::new(&mut selector, Token(PAIRS + 1)).unwrap();
    // A registry exists (its wake descriptor is registered), unused here.
    let _registry = selector.registry().unwrap();
    for (i, (a, b)) in pairs.iter().enumerate() {
        selector.register(b, Token(i), Interest::READABLE).unwrap();
        if i % 5 == 0 {
            (&*a).write_all(b"ready").unwrap();
        }
    }
    // Always ready (epoll keeps regular files on a side list).
    selector
        .register(&file, Token(PAIRS), Interest::BOTH)
        .unwrap();
    let mut events = Events::with_capacity(64);

    // Warm-up: buffers reach their working size.
    waker.wake().unwrap();
    selector
        .select(&mut events, Some(Duration::from_secs(1)))
        .unwrap();
    let ready = PAIRS / 5 + 2;
    assert_eq!(events.len(), ready, "{:?}", util::seen(&events));

    let mut seen = 0;
    let allocations = allocations_in(|| {
        for i in 0..CALLS {
            if i % 2 == 0 {
                waker.wake().unwrap();
            }
            let timeout = if i % 3 == 0 {
                Some(Duration::ZERO)
            } else {
                Some(Duration::from_millis(100))
            };
            selector.select(&mut events, timeout).unwrap();
            seen += events.len();
        }
    });
    assert_eq!(allocations, 0, "{kind}: {CALLS} selects allocated");
    // The calls did report events: half of them the waker too.
    assert_eq!(seen, CALLS * (ready - 1) + CALLS / 2);
}

/// The counter is live: a first registration (the table grows) and a new
/// events buffer do allocate, and it sees them.
fn the_counter_sees_allocations(kind: BackendKind) {
    let (a, b) = UnixStream::pair().unwrap();
    let mut selector = util::selector(kind);
    let allocations = allocations_in(|| {
        selector.register(&b, Token(1), Interest::READABLE).unwrap();
        std::hint::black_box(Events::with_capacity(16));
    });
    assert!(allocations > 0, "{kind}: the counter counted nothing");
    drop(a);
}
