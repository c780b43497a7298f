//! Each library's register / modify loops (`registration-ops`) and its
//! edge-triggered selects (`select-ops`), each in a function of its own, for
//! an instruction counter (callgrind).
//!
//! ```text
//! cargo bench -p fdselector --bench ops --no-run
//! valgrind --tool=callgrind --callgrind-out-file=cg.out target/release/deps/ops-HASH --bench select-ops
//! callgrind_annotate --inclusive=yes cg.out | grep 'ops::ops_'
//! ```

mod common;

use common::*;
use mio::unix::SourceFd;
use selector::{BackendKind, Events, Interest, Mode, Selector, Token};
use std::net::UdpSocket;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

/// Calls in each loop of [`registration_ops`].
const OPS_CALLS: usize = 10_000;

#[inline(never)]
fn ops_ours_register(selector: &mut Selector, socket: &UdpSocket) {
    for _ in 0..OPS_CALLS {
        selector
            .register_with(socket, Token(20_000), Interest::READABLE, Mode::Oneshot)
            .unwrap();
        selector.unregister(socket).unwrap();
    }
}

#[inline(never)]
fn ops_ours_modify(selector: &mut Selector, socket: &UdpSocket) {
    for i in 0..OPS_CALLS {
        let interest = if i % 2 == 0 {
            Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        selector.modify(socket, Token(20_000), interest).unwrap();
    }
}

/// mio's registration of `fd` in the `ops_*` loops.
fn ops_mio_add(poll: &mio::Poll, fd: RawFd) {
    poll.registry()
        .register(
            &mut SourceFd(&fd),
            mio::Token(20_000),
            mio::Interest::READABLE,
        )
        .unwrap();
}

#[inline(never)]
fn ops_mio_register(poll: &mio::Poll, fd: RawFd) {
    for _ in 0..OPS_CALLS {
        ops_mio_add(poll, fd);
        poll.registry().deregister(&mut SourceFd(&fd)).unwrap();
    }
}

#[inline(never)]
fn ops_mio_modify(poll: &mio::Poll, fd: RawFd) {
    for i in 0..OPS_CALLS {
        let interest = if i % 2 == 0 {
            mio::Interest::WRITABLE
        } else {
            mio::Interest::READABLE
        };
        poll.registry()
            .reregister(&mut SourceFd(&fd), mio::Token(20_000), interest)
            .unwrap();
    }
}

#[inline(never)]
fn ops_polling_register(poller: &polling::Poller, socket: &UdpSocket) {
    for _ in 0..OPS_CALLS {
        // SAFETY: `socket` outlives the registration, deleted on the next line.
        unsafe { poller.add(socket, polling::Event::readable(20_000)) }.unwrap();
        poller.delete(socket).unwrap();
    }
}

#[inline(never)]
fn ops_polling_modify(poller: &polling::Poller, socket: &UdpSocket) {
    for i in 0..OPS_CALLS {
        let event = if i % 2 == 0 {
            polling::Event::writable(20_000)
        } else {
            polling::Event::readable(20_000)
        };
        poller.modify(socket, event).unwrap();
    }
}

/// Register + unregister and modify on epoll, 10,000 of each per library,
/// each loop in a function of its own (`ops_*`), so that an instruction
/// counter splits the libraries' own cost per call from the kernel's (which
/// is the same: the same epoll_ctl calls):
/// `valgrind --tool=callgrind target/release/deps/ops-HASH --bench registration-ops`,
/// then `callgrind_annotate --inclusive=yes callgrind.out.PID | grep ops_`.
/// Prints wall-clock ns per call as well, one pass, for orientation only.
fn registration_ops() {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let fd = socket.as_raw_fd();
    let mut selector = Selector::with_backend(BackendKind::Epoll).unwrap();
    let poll = mio::Poll::new().unwrap();
    let poller = polling::Poller::new().unwrap();
    let per_call = |start: Instant| start.elapsed().as_secs_f64() * 1e9 / OPS_CALLS as f64;
    println!(
        "
registration-ops: epoll, {OPS_CALLS} calls each, ns per call (one pass)"
    );
    println!("  {:<10} {:>12} {:>8}", "", "reg+unreg", "modify");

    let start = Instant::now();
    ops_ours_register(&mut selector, &socket);
    let reg = per_call(start);
    selector
        .register_with(&socket, Token(20_000), Interest::READABLE, Mode::Oneshot)
        .unwrap();
    let start = Instant::now();
    ops_ours_modify(&mut selector, &socket);
    println!("  {:<10} {reg:>12.0} {:>8.0}", "ours", per_call(start));
    selector.unregister(&socket).unwrap();

    let start = Instant::now();
    ops_mio_register(&poll, fd);
    let reg = per_call(start);
    ops_mio_add(&poll, fd);
    let start = Instant::now();
    ops_mio_modify(&poll, fd);
    println!("  {:<10} {reg:>12.0} {:>8.0}", "mio", per_call(start));
    poll.registry().deregister(&mut SourceFd(&fd)).unwrap();

    let start = Instant::now();
    ops_polling_register(&poller, &socket);
    let reg = per_call(start);
    // SAFETY: `socket` outlives the registration, deleted below.
    unsafe { poller.add(&socket, polling::Event::readable(20_000)) }.unwrap();
    let start = Instant::now();
    ops_polling_modify(&poller, &socket);
    println!("  {:<10} {reg:>12.0} {:>8.0}", "polling", per_call(start));
    poller.delete(&socket).unwrap();
}

#[inline(never)]
fn ops_ours_select(selector: &mut Selector, events: &mut Events) -> usize {
    select_once(selector, events)
}

#[inline(never)]
fn ops_mio_select(poll: &mut mio::Poll, events: &mut mio::Events) -> usize {
    poll_once(poll, events)
}

#[inline(never)]
fn ops_polling_select(poller: &polling::Poller, events: &mut polling::Events) -> usize {
    wait_once(poller, events)
}

/// One edge-triggered select of 100 freshly ready among 10,000, 200 times
/// per library (ours, mio, polling), each in a function of its own
/// (`ops_*_select`), for an instruction counter as with
/// [`registration_ops`]: `--bench select-ops`. Divide by 20,000 for
/// instructions per event.
fn select_ops() {
    raise_fd_limit();
    let work = Workload::new(10_000);
    let mut selector = selector_in(BackendKind::Epoll, Mode::Edge, &work);
    let mut events = Events::with_capacity(EVENTS);
    let mut poll = mio_with(&work);
    let mut mio_events = mio::Events::with_capacity(EVENTS);
    let poller = polling_with(polling::PollMode::Edge, &work);
    let capacity = std::num::NonZeroUsize::new(EVENTS).expect("not zero");
    let mut polling_events = polling::Events::with_capacity(capacity);
    let mut seen = [0usize; 3];
    for _ in 0..200 {
        work.arm();
        seen[0] += ops_ours_select(&mut selector, &mut events);
        seen[1] += ops_mio_select(&mut poll, &mut mio_events);
        seen[2] += ops_polling_select(&poller, &mut polling_events);
        work.drain();
    }
    println!("\nselect-ops: events seen by ours, mio, polling: {seen:?} (20,000 each when nothing strayed)");
}

fn main() {
    // Only in a real benchmark run (cargo passes --bench), and only when no
    // filter excludes them.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bench_run = args.iter().any(|a| a == "--bench");
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let wants = |name: &str| filters.iter().all(|f| name.contains(f.as_str()));
    if bench_run && wants("registration-ops") {
        registration_ops();
    }
    if bench_run && wants("select-ops") {
        select_ops();
    }
}
