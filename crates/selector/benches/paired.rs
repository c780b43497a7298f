//! Ours on epoll against a bare level-triggered epoll and mio, select for
//! select, in interleaved rounds on the same sockets (medians, ratios from
//! one run).
//!
//! ```text
//! cargo bench -p fdselector --bench paired
//! ```

mod common;

use common::*;
use selector::{BackendKind, Events};
use std::hint::black_box;
use std::time::Duration;

/// A bare level-triggered epoll, straight through rustix: the kernel's own
/// cost for the readiness model we promise, without our bookkeeping.
struct RawEpoll {
    epoll: std::os::fd::OwnedFd,
    buffer: Vec<rustix::event::epoll::Event>,
}

impl RawEpoll {
    fn new(work: &Workload) -> RawEpoll {
        use rustix::event::epoll;
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC).unwrap();
        for (i, socket) in work.sockets.iter().enumerate() {
            let data = epoll::EventData::new_u64(i as u64);
            epoll::add(&epoll, socket, data, epoll::EventFlags::IN).unwrap();
        }
        RawEpoll {
            epoll,
            buffer: Vec::with_capacity(EVENTS),
        }
    }

    fn wait_once(&mut self) -> usize {
        self.buffer.clear();
        let zero = rustix::event::Timespec::default();
        let spare = rustix::buffer::spare_capacity(&mut self.buffer);
        rustix::event::epoll::wait(&self.epoll, spare, Some(&zero)).unwrap();
        let mut sum = 0;
        for event in &self.buffer {
            sum += event.data.u64();
        }
        black_box(sum);
        self.buffer.len()
    }
}

/// Ours on epoll, a bare level-triggered epoll and mio, select for select,
/// interleaved: each round arms the 1%, times one select, drains, for each
/// of the three in turn (rotating which goes first). On a shared, noisy
/// machine the medians of these rounds give a steadier ratio than criterion
/// runs taken seconds apart, and the bare epoll splits our cost from the
/// kernel's cost of level triggering (mio registers edge-triggered).
fn paired_epoll_vs_mio() {
    raise_fd_limit();
    println!("\npaired: same sockets, interleaved rounds, 1% freshly ready, median ns per select");
    println!(
        "{:>8} {:>7} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "fds", "rounds", "ours", "bare LT", "mio", "ours/mio", "LT/mio"
    );
    for size in SIZES {
        let work = Workload::new(size);
        let mut selector = selector_with(BackendKind::Epoll, &work);
        let mut events = Events::with_capacity(EVENTS);
        let mut raw = RawEpoll::new(&work);
        let mut poll = mio_with(&work);
        let mut mio_events = mio::Events::with_capacity(EVENTS);
        let rounds = if size >= 10_000 { 2_000 } else { 6_000 };
        let mut times: [Vec<Duration>; 3] = Default::default();
        for round in 0..rounds {
            for k in 0..3 {
                let which = (round + k) % 3;
                let t = match which {
                    0 => timed_fresh(&work, 1, || select_once(&mut selector, &mut events)),
                    1 => timed_fresh(&work, 1, || raw.wait_once()),
                    _ => timed_fresh(&work, 1, || poll_once(&mut poll, &mut mio_events)),
                };
                times[which].push(t);
            }
        }
        let [ours, bare, theirs] = times.each_mut().map(|t| median(t).as_secs_f64() * 1e9);
        println!(
            "{size:>8} {rounds:>7} {ours:>10.0} {bare:>10.0} {theirs:>10.0} {:>10.3} {:>10.3}",
            ours / theirs,
            bare / theirs
        );
    }
}

fn main() {
    // Only in a real benchmark run (cargo passes --bench).
    if std::env::args().any(|a| a == "--bench") {
        paired_epoll_vs_mio();
    }
}
