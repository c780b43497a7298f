//! Many registrations, descriptor numbers above `FD_SETSIZE` (1024), and
//! more ready descriptors than the events buffer holds.

mod util;

use selector::{BackendKind, Events, Interest, Token};
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use util::{expect_events, expect_no_events, selector, Expect};

per_backend!(
    fds_above_1023,
    unregister_highest_then_lower_still_work,
    many_registrations_few_ready,
    more_ready_than_the_buffer_holds,
);

/// The first number past select(2)'s fixed-size `fd_set`.
const FD_SETSIZE: i32 = 1024;

/// Skips (with a note) where the hard limit leaves no room above 1023.
fn room_above_fd_setsize() -> bool {
    let limit = util::raise_fd_limit();
    if limit < 2100 {
        eprintln!("skipped: RLIMIT_NOFILE hard limit {limit} leaves no room above {FD_SETSIZE}");
        return false;
    }
    true
}

fn fds_above_1023(kind: BackendKind) {
    if !room_above_fd_setsize() {
        return;
    }
    let pipes: Vec<(File, File)> = [FD_SETSIZE, 1500, 2000]
        .into_iter()
        .map(|min| {
            let (r, w) = util::pipe();
            (File::from(util::dup_at_least(&r, min)), w)
        })
        .collect();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    for (i, (r, _)) in pipes.iter().enumerate() {
        assert!(r.as_raw_fd() >= FD_SETSIZE);
        selector.register(r, Token(i), Interest::READABLE).unwrap();
    }
    expect_no_events(&mut selector, &mut events);
    (&pipes[0].1).write_all(b"a").unwrap();
    (&pipes[2].1).write_all(b"c").unwrap();
    expect_events(
        &mut selector,
        &mut events,
        &[Expect::readable(0), Expect::readable(2)],
    );
    selector
        .modify(&pipes[2].0, Token(7), Interest::BOTH)
        .unwrap();
    expect_events(
        &mut selector,
        &mut events,
        &[Expect::readable(0), Expect::readable(7)],
    );
    selector.unregister(&pipes[0].0).unwrap();
    expect_events(&mut selector, &mut events, &[Expect::readable(7)]);
}

fn unregister_highest_then_lower_still_work(kind: BackendKind) {
    if !room_above_fd_setsize() {
        return;
    }
    let (low, mut low_w) = util::pipe();
    let (r, mut high_w) = util::pipe();
    let high = File::from(util::dup_at_least(&r, 3000));
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector
        .register(&low, Token(1), Interest::READABLE)
        .unwrap();
    selector
        .register(&high, Token(2), Interest::READABLE)
        .unwrap();
    high_w.write_all(b"h").unwrap();
    expect_events(&mut selector, &mut events, &[Expect::readable(2)]);
    selector.unregister(&high).unwrap();
    expect_no_events(&mut selector, &mut events);
    low_w.write_all(b"l").unwrap();
    expect_events(&mut selector, &mut events, &[Expect::readable(1)]);
    // And the high number can come back.
    selector
        .register(&high, Token(3), Interest::READABLE)
        .unwrap();
    expect_events(
        &mut selector,
        &mut events,
        &[Expect::readable(1), Expect::readable(3)],
    );
}

fn many_registrations_few_ready(kind: BackendKind) {
    util::raise_fd_limit();
    const PAIRS: usize = 600;
    let pairs: Vec<(UnixStream, UnixStream)> =
        (0..PAIRS).map(|_| UnixStream::pair().unwrap()).collect();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(1024);
    for (i, (_, b)) in pairs.iter().enumerate() {
        selector.register(b, Token(i), Interest::READABLE).unwrap();
    }
    assert_eq!(selector.len(), PAIRS);
    expect_no_events(&mut selector, &mut events);
    let ready: Vec<usize> = (0..PAIRS).step_by(37).collect();
    for &i in &ready {
        (&pairs[i].0).write_all(b"!").unwrap();
    }
    let expected: Vec<Expect> = ready.iter().map(|&i| Expect::readable(i)).collect();
    expect_events(&mut selector, &mut events, &expected);
    for &i in &ready {
        selector.unregister(&pairs[i].1).unwrap();
    }
    expect_no_events(&mut selector, &mut events);
}

/// select and poll report every ready descriptor, growing the buffer; epoll
/// hands out at most a buffer's worth per call, round-robin, so every one
/// is seen within a few calls. Also for buffers smaller than a `Vec`
/// rounds a small request up to.
fn more_ready_than_the_buffer_holds(kind: BackendKind) {
    for capacity in [1, 2, 8] {
        more_ready_than(kind, capacity);
    }
}

fn more_ready_than(kind: BackendKind, capacity: usize) {
    const READY: usize = 40;
    let pairs: Vec<(UnixStream, UnixStream)> =
        (0..READY).map(|_| UnixStream::pair().unwrap()).collect();
    let mut selector = selector(kind);
    for (i, (a, b)) in pairs.iter().enumerate() {
        (&*a).write_all(b"!").unwrap();
        selector.register(b, Token(i), Interest::READABLE).unwrap();
    }
    let mut events = Events::with_capacity(capacity);
    assert_eq!(events.capacity(), capacity);
    let mut seen = [false; READY];
    for _ in 0..2 * READY {
        selector
            .select(&mut events, Some(std::time::Duration::from_secs(1)))
            .unwrap();
        match kind {
            BackendKind::Epoll => assert!(
                events.len() <= capacity,
                "{} events in a buffer of {capacity}",
                events.len()
            ),
            _ => assert_eq!(events.len(), READY),
        }
        for event in &events {
            assert!(event.is_readable());
            seen[event.token().0] = true;
        }
        if seen.iter().all(|&s| s) {
            return;
        }
    }
    let missing: Vec<usize> = (0..READY).filter(|&i| !seen[i]).collect();
    panic!("{kind}, buffer of {capacity}: never reported {missing:?}");
}
