//! The Waker: one event per select however many wakes came before it, none
//! lost, from any number of threads at once.

mod util;

use selector::{BackendKind, Events, Interest, Token, Waker};
use std::io::Write;
use std::sync::{mpsc, Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};
use util::{expect_events, expect_no_events, selector, Expect};

per_backend!(
    wake_before_select_returns_at_once,
    wakes_coalesce_into_one_event,
    waker_event_beside_others,
    wakers_each_have_their_token,
    many_threads_no_lost_wake,
    many_threads_free_running,
);

const WAKER: usize = 1000;

fn wake_before_select_returns_at_once(kind: BackendKind) {
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    let waker = Waker::new(&mut selector, Token(WAKER)).unwrap();
    waker.wake().unwrap();
    let (result, elapsed) = util::timed(|| selector.select(&mut events, None));
    result.unwrap();
    assert_eq!(util::seen(&events), [Expect::readable(WAKER)]);
    assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
    // Reported once: the selector drained it.
    expect_no_events(&mut selector, &mut events);
}

fn wakes_coalesce_into_one_event(kind: BackendKind) {
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    let waker = Waker::new(&mut selector, Token(WAKER)).unwrap();
    let clone = waker.clone();
    for _ in 0..100 {
        waker.wake().unwrap();
        clone.wake().unwrap();
    }
    expect_events(&mut selector, &mut events, &[Expect::readable(WAKER)]);
    expect_no_events(&mut selector, &mut events);
    clone.wake().unwrap();
    expect_events(&mut selector, &mut events, &[Expect::readable(WAKER)]);
}

fn waker_event_beside_others(kind: BackendKind) {
    let (r, mut w) = util::pipe();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector.register(&r, Token(1), Interest::READABLE).unwrap();
    let waker = Waker::new(&mut selector, Token(WAKER)).unwrap();
    assert_eq!(selector.len(), 2, "the waker is a registration too");
    w.write_all(b"x").unwrap();
    waker.wake().unwrap();
    expect_events(
        &mut selector,
        &mut events,
        &[Expect::readable(1), Expect::readable(WAKER)],
    );
    expect_events(&mut selector, &mut events, &[Expect::readable(1)]);
}

/// Any number of wakers, each reported under its own token, each drained
/// on its own.
fn wakers_each_have_their_token(kind: BackendKind) {
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    let wakers: Vec<Waker> = (0..3)
        .map(|i| Waker::new(&mut selector, Token(WAKER + i)).unwrap())
        .collect();
    assert_eq!(selector.len(), 3);
    wakers[2].wake().unwrap();
    expect_events(&mut selector, &mut events, &[Expect::readable(WAKER + 2)]);
    expect_no_events(&mut selector, &mut events);
    wakers[0].wake().unwrap();
    wakers[1].wake().unwrap();
    wakers[1].wake().unwrap();
    expect_events(
        &mut selector,
        &mut events,
        &[Expect::readable(WAKER), Expect::readable(WAKER + 1)],
    );
    expect_no_events(&mut selector, &mut events);
}

/// Rounds of: every thread wakes at once (a barrier lines them up), the
/// selector learns all have returned from `wake`, then one select must
/// report exactly one waker event and the next nothing.
fn many_threads_no_lost_wake(kind: BackendKind) {
    const THREADS: usize = 8;
    const ROUNDS: usize = 100;
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    let waker = Waker::new(&mut selector, Token(WAKER)).unwrap();
    let start = Arc::new(Barrier::new(THREADS + 1));
    let (woke_tx, woke_rx) = mpsc::channel();
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (waker, start, woke) = (waker.clone(), Arc::clone(&start), woke_tx.clone());
            thread::spawn(move || {
                for _ in 0..ROUNDS {
                    start.wait();
                    waker.wake().unwrap();
                    woke.send(()).unwrap();
                }
            })
        })
        .collect();
    for round in 0..ROUNDS {
        start.wait();
        for _ in 0..THREADS {
            woke_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        }
        selector
            .select(&mut events, Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(
            util::seen(&events),
            [Expect::readable(WAKER)],
            "round {round}"
        );
        selector.select(&mut events, Some(Duration::ZERO)).unwrap();
        assert!(
            events.is_empty(),
            "round {round}: {:?}",
            util::seen(&events)
        );
    }
    for thread in threads {
        thread.join().unwrap();
    }
}

/// Threads wake as fast as they can while the selector loops: every select
/// reports the waker at most once, and the loop keeps being woken until the
/// threads are done.
fn many_threads_free_running(kind: BackendKind) {
    const THREADS: usize = 8;
    const WAKES: usize = 2000;
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    let waker = Waker::new(&mut selector, Token(WAKER)).unwrap();
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let waker = waker.clone();
            thread::spawn(move || {
                for _ in 0..WAKES {
                    waker.wake().unwrap();
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut reported = 0;
    while !threads.iter().all(|t| t.is_finished()) {
        assert!(Instant::now() < deadline, "threads never finished");
        selector
            .select(&mut events, Some(Duration::from_millis(100)))
            .unwrap();
        assert!(events.len() <= 1, "{:?}", util::seen(&events));
        reported += events.len();
    }
    for thread in threads {
        thread.join().unwrap();
    }
    // Every wake has returned: if the loop drained none of them (or not the
    // last), this select must see what is pending.
    selector.select(&mut events, Some(Duration::ZERO)).unwrap();
    assert!(events.len() <= 1);
    reported += events.len();
    assert!((1..=THREADS * WAKES).contains(&reported), "{reported}");
    expect_no_events(&mut selector, &mut events);
    waker.wake().unwrap();
    expect_events(&mut selector, &mut events, &[Expect::readable(WAKER)]);
}
