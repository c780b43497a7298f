//! Criterion microbenchmarks: the cost of register / modify / unregister,
//! and of one `select()` with 10, 1,000 and 10,000 registered descriptors of
//! which 1% are ready, on each backend, with `mio::Poll` on the same
//! workload.
//!
//! ```text
//! cargo bench -p fdselector --bench select
//! ```
//!
//! The workload is one UDP socket per registration (bound to 127.0.0.1:0),
//! registered for reading; every hundredth one (at least one) gets a
//! datagram. A select uses a zero timeout and its handling sums the ready
//! tokens, for ours and for mio alike. Three groups:
//!
//! - `select/N`: before each select the 1% get a datagram, after it they
//!   are read, and only the select is timed. mio registers edge-triggered,
//!   so this fresh readiness is the workload it can share with us.
//! - `select-level/N`: the 1% keep their datagram, so our level-triggered
//!   backends report them on every call (mio would report them once).
//! - `registration`: register + unregister and modify beside 1,000 others.
//!
//! The paired comparisons are `--bench paired` and `--bench modes`; the
//! instruction counts `--bench ops`. Results are in docs/selector.md.

mod common;

use common::*;
use criterion::{criterion_group, BenchmarkId, Criterion, SamplingMode};
use mio::unix::SourceFd;
use selector::{Events, Interest, Selector, Token};
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// `select()` with 1% freshly ready per call, every backend and mio.
fn bench_select(c: &mut Criterion) {
    raise_fd_limit();
    for size in SIZES {
        let work = Workload::new(size);
        let mut group = c.benchmark_group(format!("select/{size}"));
        // The clock runs only around the select, while arming and draining
        // take many times longer: keep the wall time down.
        group.measurement_time(Duration::from_millis(300));
        group.warm_up_time(Duration::from_millis(100));
        // poll and select take milliseconds a call at 10,000: the same
        // number of calls per sample keeps them within the time.
        group.sampling_mode(SamplingMode::Flat);
        for kind in backends() {
            let mut selector = selector_with(kind, &work);
            let mut events = Events::with_capacity(EVENTS);
            group.bench_function(BenchmarkId::from_parameter(kind), |b| {
                b.iter_custom(|iters| {
                    timed_fresh(&work, iters, || select_once(&mut selector, &mut events))
                })
            });
        }
        let mut poll = mio_with(&work);
        let mut events = mio::Events::with_capacity(EVENTS);
        group.bench_function(BenchmarkId::from_parameter("mio"), |b| {
            b.iter_custom(|iters| timed_fresh(&work, iters, || poll_once(&mut poll, &mut events)))
        });
        group.finish();
    }
}

/// `select()` with 1% ready and left ready (level-triggered, so reported on
/// every call): the cost curve of our backends alone.
fn bench_select_level(c: &mut Criterion) {
    raise_fd_limit();
    for size in SIZES {
        let work = Workload::new(size);
        work.arm();
        let mut group = c.benchmark_group(format!("select-level/{size}"));
        for kind in backends() {
            let mut selector = selector_with(kind, &work);
            let mut events = Events::with_capacity(EVENTS);
            settle(&format!("{kind} with {size}"), work.ready, || {
                work.drain_strays();
                select_once(&mut selector, &mut events)
            });
            group.bench_function(BenchmarkId::from_parameter(kind), |b| {
                b.iter(|| select_once(&mut selector, &mut events))
            });
        }
        group.finish();
    }
}

/// One registration's life: register + unregister, and modify, beside 1,000
/// other registrations (so the tables are not trivially small).
fn bench_registration(c: &mut Criterion) {
    raise_fd_limit();
    let others = Workload::new(1_000);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let fd = socket.as_raw_fd();
    let mut group = c.benchmark_group("registration");
    for kind in backends() {
        let mut selector = Selector::with_backend(kind).unwrap();
        for (i, other) in others.sockets.iter().enumerate() {
            selector
                .register(other, Token(i), Interest::READABLE)
                .unwrap();
        }
        group.bench_function(BenchmarkId::new("register+unregister", kind), |b| {
            b.iter(|| {
                selector
                    .register(&socket, Token(usize::MAX), Interest::READABLE)
                    .unwrap();
                selector.unregister(&socket).unwrap();
            })
        });
        selector
            .register(&socket, Token(usize::MAX), Interest::READABLE)
            .unwrap();
        let mut writable = false;
        group.bench_function(BenchmarkId::new("modify", kind), |b| {
            b.iter(|| {
                writable = !writable;
                let interest = if writable {
                    Interest::WRITABLE
                } else {
                    Interest::READABLE
                };
                selector
                    .modify(&socket, Token(usize::MAX), interest)
                    .unwrap();
            })
        });
    }

    let poll = mio::Poll::new().unwrap();
    for (i, other) in others.sockets.iter().enumerate() {
        poll.registry()
            .register(
                &mut SourceFd(&other.as_raw_fd()),
                mio::Token(i),
                mio::Interest::READABLE,
            )
            .unwrap();
    }
    let registry = poll.registry();
    group.bench_function(BenchmarkId::new("register+unregister", "mio"), |b| {
        b.iter(|| {
            registry
                .register(
                    &mut SourceFd(&fd),
                    mio::Token(usize::MAX),
                    mio::Interest::READABLE,
                )
                .unwrap();
            registry.deregister(&mut SourceFd(&fd)).unwrap();
        })
    });
    registry
        .register(
            &mut SourceFd(&fd),
            mio::Token(usize::MAX),
            mio::Interest::READABLE,
        )
        .unwrap();
    let mut writable = false;
    group.bench_function(BenchmarkId::new("modify", "mio"), |b| {
        b.iter(|| {
            writable = !writable;
            let interest = if writable {
                mio::Interest::WRITABLE
            } else {
                mio::Interest::READABLE
            };
            registry
                .reregister(&mut SourceFd(&fd), mio::Token(usize::MAX), interest)
                .unwrap();
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench_registration, bench_select, bench_select_level
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
