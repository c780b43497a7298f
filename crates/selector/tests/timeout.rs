//! Timeouts: zero only looks, finite waits about that long, none waits for
//! an event. Bounds are generous; the machine may be busy.

mod util;

use selector::{BackendKind, Events, Interest, Token, Waker};
use std::io::Write;
use std::thread;
use std::time::Duration;
use util::{selector, Expect};

per_backend!(
    zero_timeout_returns_at_once,
    finite_timeout_returns_empty_after_it,
    finite_timeout_with_nothing_registered,
    sub_millisecond_timeout_is_not_a_busy_spin,
    no_timeout_woken_by_waker,
    no_timeout_woken_by_readiness,
    huge_timeout_is_accepted,
    never_returns_before_the_timeout,
);

/// Timeouts below, at and between milliseconds: with nothing ready, each
/// wait lasts at least what was asked (the kernel rounds up, never down).
fn never_returns_before_the_timeout(kind: BackendKind) {
    let (r, _w) = util::pipe();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector.register(&r, Token(1), Interest::READABLE).unwrap();
    for micros in [1, 200, 999, 1_000, 1_300, 2_700] {
        let timeout = Duration::from_micros(micros);
        for _ in 0..5 {
            let (result, elapsed) = util::timed(|| selector.select(&mut events, Some(timeout)));
            result.unwrap();
            assert!(events.is_empty(), "{:?}", util::seen(&events));
            assert!(
                elapsed >= timeout,
                "{kind}: {timeout:?} returned after {elapsed:?}"
            );
        }
    }
}

fn zero_timeout_returns_at_once(kind: BackendKind) {
    let (r, _w) = util::pipe();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector.register(&r, Token(1), Interest::READABLE).unwrap();
    for _ in 0..10 {
        let (result, elapsed) = util::timed(|| selector.select(&mut events, Some(Duration::ZERO)));
        result.unwrap();
        assert!(events.is_empty(), "{:?}", util::seen(&events));
        assert!(elapsed < Duration::from_millis(500), "took {elapsed:?}");
    }
}

fn finite_timeout_returns_empty_after_it(kind: BackendKind) {
    let (r, _w) = util::pipe();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector.register(&r, Token(1), Interest::READABLE).unwrap();
    let (result, elapsed) =
        util::timed(|| selector.select(&mut events, Some(Duration::from_millis(100))));
    result.unwrap();
    assert!(events.is_empty(), "{:?}", util::seen(&events));
    assert!(
        elapsed >= Duration::from_millis(80) && elapsed < Duration::from_secs(2),
        "a 100 ms timeout took {elapsed:?}"
    );
}

fn finite_timeout_with_nothing_registered(kind: BackendKind) {
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    let (result, elapsed) =
        util::timed(|| selector.select(&mut events, Some(Duration::from_millis(50))));
    result.unwrap();
    assert!(events.is_empty());
    assert!(
        elapsed >= Duration::from_millis(40) && elapsed < Duration::from_secs(2),
        "a 50 ms timeout took {elapsed:?}"
    );
}

/// 0.3 ms must round up to the backend's millisecond, not down to zero.
fn sub_millisecond_timeout_is_not_a_busy_spin(kind: BackendKind) {
    let (r, _w) = util::pipe();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector.register(&r, Token(1), Interest::READABLE).unwrap();
    for _ in 0..5 {
        let timeout = Duration::from_micros(300);
        let (result, elapsed) = util::timed(|| selector.select(&mut events, Some(timeout)));
        result.unwrap();
        assert!(events.is_empty());
        assert!(elapsed >= timeout, "a 0.3 ms timeout took {elapsed:?}");
    }
}

fn no_timeout_woken_by_waker(kind: BackendKind) {
    let (r, _w) = util::pipe();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector.register(&r, Token(1), Interest::READABLE).unwrap();
    let waker = Waker::new(&mut selector, Token(99)).unwrap();
    let waking = thread::spawn(move || {
        thread::sleep(Duration::from_millis(100));
        waker.wake().unwrap();
    });
    let (result, elapsed) = util::timed(|| selector.select(&mut events, None));
    result.unwrap();
    waking.join().unwrap();
    assert_eq!(util::seen(&events), [Expect::readable(99)]);
    assert!(
        elapsed >= Duration::from_millis(80) && elapsed < Duration::from_secs(5),
        "woken after {elapsed:?}"
    );
}

fn no_timeout_woken_by_readiness(kind: BackendKind) {
    let (r, mut w) = util::pipe();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector.register(&r, Token(1), Interest::READABLE).unwrap();
    let writing = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        w.write_all(b"now").unwrap();
        w
    });
    let (result, elapsed) = util::timed(|| selector.select(&mut events, None));
    result.unwrap();
    let _w = writing.join().unwrap();
    assert_eq!(util::seen(&events), [Expect::readable(1)]);
    assert!(
        elapsed >= Duration::from_millis(40),
        "woken after {elapsed:?}"
    );
}

/// A timeout too long for the syscall's milliseconds is clamped, not an
/// error (`Duration::MAX` also overflows `Instant`).
fn huge_timeout_is_accepted(kind: BackendKind) {
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    let waker = Waker::new(&mut selector, Token(7)).unwrap();
    for timeout in [Duration::from_secs(u64::from(u32::MAX)), Duration::MAX] {
        waker.wake().unwrap();
        selector.select(&mut events, Some(timeout)).unwrap();
        assert_eq!(util::seen(&events), [Expect::readable(7)]);
    }
}
