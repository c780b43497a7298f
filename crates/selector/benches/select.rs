//! Microbenchmarks: the cost of register / modify / unregister, and of one
//! `select()` with 10, 1,000 and 10,000 registered descriptors of which 1%
//! are ready, on each backend, with `mio::Poll` on the same workload.
//!
//! ```text
//! cargo bench -p fdselector --bench select
//! ```
//!
//! The workload is one UDP socket per registration (bound to 127.0.0.1:0),
//! registered for reading; every hundredth one (at least one) gets a
//! datagram. A select uses a zero timeout and its handling sums the ready
//! tokens, for ours and for mio alike. Two groups:
//!
//! - `select/N`: before each select the 1% get a datagram, after it they
//!   are read, and only the select is timed. mio registers edge-triggered,
//!   so this fresh readiness is the workload it can share with us.
//! - `select-level/N`: the 1% keep their datagram, so our level-triggered
//!   backends report them on every call (mio would report them once).
//!
//! After them, two paired runs (interleaved rounds on the same sockets,
//! medians, ratios from one run): `paired` (ours against a bare epoll and
//! mio) and `modes` (level, oneshot and edge against mio and polling, at
//! 10,000 registered with 100 freshly ready, and the register / modify
//! costs of each mode). Select one with a filter: `-- modes`. Last,
//! `registration-ops` and `select-ops`: each library's register / modify
//! loops, and its edge-triggered selects, in functions of their own, for an
//! instruction counter (see [`registration_ops`]).
//!
//! Results and the machine they came from are in docs/selector.md.

use criterion::{criterion_group, BenchmarkId, Criterion, SamplingMode};
use mio::unix::SourceFd;
use selector::{BackendKind, Events, Interest, Mode, Selector, Token};
use std::hint::black_box;
use std::net::UdpSocket;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

const SIZES: [usize; 3] = [10, 1_000, 10_000];
const BACKENDS: [BackendKind; 3] = [BackendKind::Epoll, BackendKind::Poll, BackendKind::Select];
const EVENTS: usize = 1024;

/// Registered sockets; the first of every hundred (at least one) is the
/// 1% that gets made ready.
struct Workload {
    sockets: Vec<UdpSocket>,
    sender: UdpSocket,
    ready: usize,
    /// Addresses of the 1%, to send to.
    ready_addrs: Vec<std::net::SocketAddr>,
}

impl Workload {
    fn new(size: usize) -> Workload {
        let sockets: Vec<UdpSocket> = (0..size)
            .map(|i| {
                let socket = UdpSocket::bind("127.0.0.1:0")
                    .unwrap_or_else(|e| panic!("socket {i} of {size}: {e}"));
                socket.set_nonblocking(true).unwrap();
                socket
            })
            .collect();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let ready = (size / 100).max(1);
        let ready_addrs = sockets
            .iter()
            .step_by(100)
            .take(ready)
            .map(|s| s.local_addr().unwrap())
            .collect();
        Workload {
            sockets,
            sender,
            ready,
            ready_addrs,
        }
    }

    fn ready_sockets(&self) -> impl Iterator<Item = &UdpSocket> {
        self.sockets.iter().step_by(100).take(self.ready)
    }

    /// Makes the 1% readable: one datagram each.
    fn arm(&self) {
        for addr in &self.ready_addrs {
            self.sender.send_to(b"ready", addr).unwrap();
        }
    }

    /// Reads whatever waits on sockets outside the 1%. The ports are
    /// ephemeral, so a datagram meant for an earlier owner of one (another
    /// program's UDP test on this machine) can land here.
    fn drain_strays(&self) {
        let mut buf = [0u8; 64];
        for (i, socket) in self.sockets.iter().enumerate() {
            if i % 100 == 0 && i / 100 < self.ready {
                continue;
            }
            while socket.recv(&mut buf).is_ok() {}
        }
    }

    /// Reads the datagrams `arm` sent, so nothing is ready any more.
    fn drain(&self) {
        let mut buf = [0u8; 16];
        for socket in self.ready_sockets() {
            socket.recv(&mut buf).unwrap();
        }
    }
}

/// Raises the soft descriptor limit to the hard one: 10,000 sockets need it.
fn raise_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = limit.maximum;
    if let Err(e) = setrlimit(Resource::Nofile, limit) {
        eprintln!("could not raise RLIMIT_NOFILE: {e}");
    }
}

/// Waits (bounded) until `count` reports the workload's ready sockets.
fn settle(what: &str, expected: usize, mut count: impl FnMut() -> usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let n = count();
        if n == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {n} ready, expected {expected}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn selector_with(kind: BackendKind, work: &Workload) -> Selector {
    let mut selector = Selector::with_backend(kind).unwrap();
    for (i, socket) in work.sockets.iter().enumerate() {
        selector
            .register(socket, Token(i), Interest::READABLE)
            .unwrap();
    }
    selector
}

fn mio_with(work: &Workload) -> mio::Poll {
    let poll = mio::Poll::new().unwrap();
    for (i, socket) in work.sockets.iter().enumerate() {
        poll.registry()
            .register(
                &mut SourceFd(&socket.as_raw_fd()),
                mio::Token(i),
                mio::Interest::READABLE,
            )
            .unwrap();
    }
    poll
}

/// One select and the handling of its events, for ours.
fn select_once(selector: &mut Selector, events: &mut Events) -> usize {
    selector.select(events, Some(Duration::ZERO)).unwrap();
    let mut sum = 0;
    for event in &*events {
        sum += event.token().0;
    }
    black_box(sum);
    events.len()
}

/// The same for mio.
fn poll_once(poll: &mut mio::Poll, events: &mut mio::Events) -> usize {
    poll.poll(events, Some(Duration::ZERO)).unwrap();
    let mut n = 0;
    let mut sum = 0;
    for event in &*events {
        sum += event.token().0;
        n += 1;
    }
    black_box(sum);
    n
}

/// Times only the select: the 1% are made ready before it and drained after
/// it, outside the clock, so each select finds them freshly ready. This is
/// the workload mio can share: it registers edge-triggered, so a datagram
/// left waiting is reported once, not on every call.
/// A select that saw something else (a stray datagram) is done again.
fn timed_fresh(work: &Workload, iters: u64, mut select: impl FnMut() -> usize) -> Duration {
    let mut total = Duration::ZERO;
    let mut strays = 0;
    let mut done = 0;
    while done < iters {
        work.arm();
        let start = Instant::now();
        let n = select();
        let elapsed = start.elapsed();
        work.drain();
        if n == work.ready {
            total += elapsed;
            done += 1;
        } else {
            strays += 1;
            assert!(
                strays < 100,
                "selects keep seeing {n} ready, not {}",
                work.ready
            );
            work.drain_strays();
        }
    }
    total
}

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
        for kind in BACKENDS {
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
        for kind in BACKENDS {
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
    for kind in BACKENDS {
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

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

fn selector_in(kind: BackendKind, mode: Mode, work: &Workload) -> Selector {
    let mut selector = Selector::with_backend(kind).unwrap();
    for (i, socket) in work.sockets.iter().enumerate() {
        selector
            .register_with(socket, Token(i), Interest::READABLE, mode)
            .unwrap();
    }
    selector
}

fn polling_with(mode: polling::PollMode, work: &Workload) -> polling::Poller {
    let poller = polling::Poller::new().unwrap();
    for (i, socket) in work.sockets.iter().enumerate() {
        // SAFETY: every socket outlives its registration: the poller is
        // dropped (with its registrations) before the workload.
        unsafe { poller.add_with_mode(socket, polling::Event::readable(i), mode) }.unwrap();
    }
    poller
}

fn wait_once(poller: &polling::Poller, events: &mut polling::Events) -> usize {
    events.clear();
    poller.wait(events, Some(Duration::ZERO)).unwrap();
    let mut n = 0;
    let mut sum = 0;
    for event in events.iter() {
        sum += event.key;
        n += 1;
    }
    black_box(sum);
    n
}

/// One contender in a paired run: a select to time and what re-arms the
/// ready registrations afterwards (oneshot), outside the clock.
type Contender<'a> = (
    &'static str,
    Box<dyn FnMut() -> usize + 'a>,
    Box<dyn FnMut() + 'a>,
);

/// Interleaved rounds (the order rotating), each arming the 1%, timing one
/// select per contender, draining and re-arming; medians in ns.
fn paired_rounds(work: &Workload, rounds: usize, contenders: &mut [Contender<'_>]) -> Vec<f64> {
    let n = contenders.len();
    let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(rounds); n];
    let mut strays = 0;
    for round in 0..rounds {
        for k in 0..n {
            let which = (round + k) % n;
            let (_, select, rearm) = &mut contenders[which];
            loop {
                work.arm();
                let start = Instant::now();
                let seen = select();
                let elapsed = start.elapsed();
                work.drain();
                rearm();
                if seen == work.ready {
                    times[which].push(elapsed);
                    break;
                }
                strays += 1;
                assert!(
                    strays < 1000,
                    "selects keep seeing {seen}, not {}",
                    work.ready
                );
                work.drain_strays();
            }
        }
    }
    times
        .iter_mut()
        .map(|t| median(t).as_secs_f64() * 1e9)
        .collect()
}

/// Level, oneshot and edge selects against mio and polling, at 10,000
/// registered and 100 freshly ready; then register / modify per mode.
fn paired_modes() {
    raise_fd_limit();
    let work = Workload::new(10_000);
    let ready: Vec<usize> = (0..work.sockets.len())
        .step_by(100)
        .take(work.ready)
        .collect();
    let mut events = Events::with_capacity(EVENTS);
    let mut mio_events = mio::Events::with_capacity(EVENTS);
    let capacity = std::num::NonZeroUsize::new(EVENTS).expect("not zero");
    let mut polling_events = polling::Events::with_capacity(capacity);
    let print = |title: &str, names: &[&str], medians: &[f64], base: usize| {
        println!("\nmodes: {title}, 10,000 registered, 100 freshly ready, median ns per select");
        for (name, ns) in names.iter().zip(medians) {
            println!(
                "  {name:<18} {ns:>10.0}   x{:.3} of {}",
                ns / medians[base],
                names[base]
            );
        }
    };
    let nothing = || Box::new(|| {}) as Box<dyn FnMut()>;

    // Level: ours on epoll against polling's level mode (mio has none).
    {
        let mut ours = selector_in(BackendKind::Epoll, Mode::Level, &work);
        let theirs = polling_with(polling::PollMode::Level, &work);
        let mut c: Vec<Contender<'_>> = vec![
            (
                "ours epoll",
                Box::new(|| select_once(&mut ours, &mut events)),
                nothing(),
            ),
            (
                "polling",
                Box::new(|| wait_once(&theirs, &mut polling_events)),
                nothing(),
            ),
        ];
        let m = paired_rounds(&work, 2_000, &mut c);
        let names: Vec<&str> = c.iter().map(|c| c.0).collect();
        print("level", &names, &m, 1);
    }
    // Oneshot: each ready registration re-armed after its select.
    {
        let mut ours = selector_in(BackendKind::Epoll, Mode::Oneshot, &work);
        let ours_cell = std::cell::RefCell::new(&mut ours);
        let theirs = polling_with(polling::PollMode::Oneshot, &work);
        let mut c: Vec<Contender<'_>> = vec![
            (
                "ours epoll",
                Box::new(|| select_once(&mut ours_cell.borrow_mut(), &mut events)),
                Box::new(|| {
                    for &i in &ready {
                        let socket = &work.sockets[i];
                        ours_cell
                            .borrow_mut()
                            .modify(socket, Token(i), Interest::READABLE)
                            .unwrap();
                    }
                }),
            ),
            (
                "polling",
                Box::new(|| wait_once(&theirs, &mut polling_events)),
                Box::new(|| {
                    for &i in &ready {
                        theirs
                            .modify(&work.sockets[i], polling::Event::readable(i))
                            .unwrap();
                    }
                }),
            ),
        ];
        let m = paired_rounds(&work, 2_000, &mut c);
        let names: Vec<&str> = c.iter().map(|c| c.0).collect();
        print("oneshot", &names, &m, 1);
    }
    // Edge: ours on epoll against mio (edge only) and polling's edge mode.
    {
        let mut ours = selector_in(BackendKind::Epoll, Mode::Edge, &work);
        let mut poll = mio_with(&work);
        let theirs = polling_with(polling::PollMode::Edge, &work);
        let mut c: Vec<Contender<'_>> = vec![
            (
                "ours epoll",
                Box::new(|| select_once(&mut ours, &mut events)),
                nothing(),
            ),
            (
                "mio",
                Box::new(|| poll_once(&mut poll, &mut mio_events)),
                nothing(),
            ),
            (
                "polling",
                Box::new(|| wait_once(&theirs, &mut polling_events)),
                nothing(),
            ),
        ];
        let m = paired_rounds(&work, 2_000, &mut c);
        let names: Vec<&str> = c.iter().map(|c| c.0).collect();
        print("edge", &names, &m, 1);
    }
    // poll and select have no counterpart on Linux (polling uses epoll):
    // ours alone, level and emulated oneshot, fewer rounds (ms a call).
    for kind in [BackendKind::Poll, BackendKind::Select] {
        let mut level = selector_in(kind, Mode::Level, &work);
        let mut oneshot = selector_in(kind, Mode::Oneshot, &work);
        let oneshot_cell = std::cell::RefCell::new(&mut oneshot);
        let mut level_events = Events::with_capacity(EVENTS);
        let mut c: Vec<Contender<'_>> = vec![
            (
                "level",
                Box::new(|| select_once(&mut level, &mut level_events)),
                nothing(),
            ),
            (
                "oneshot",
                Box::new(|| select_once(&mut oneshot_cell.borrow_mut(), &mut events)),
                Box::new(|| {
                    for &i in &ready {
                        let socket = &work.sockets[i];
                        oneshot_cell
                            .borrow_mut()
                            .modify(socket, Token(i), Interest::READABLE)
                            .unwrap();
                    }
                }),
            ),
        ];
        let m = paired_rounds(&work, 100, &mut c);
        let names: Vec<&str> = c.iter().map(|c| c.0).collect();
        print(&format!("{kind}"), &names, &m, 0);
    }
    paired_registration(&work);
}

/// register + unregister and modify, ns per operation (median of rounds of
/// 200, interleaved), beside the workload's 10,000 registrations.
fn paired_registration(work: &Workload) {
    const OPS: u32 = 200;
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let fd = socket.as_raw_fd();
    let token = 20_000;
    let mut ours: Vec<(String, Selector, Mode)> = Vec::new();
    for kind in BACKENDS {
        for mode in [Mode::Level, Mode::Oneshot, Mode::Edge] {
            if kind.supports(mode) {
                ours.push((
                    format!("ours {kind} {mode}"),
                    selector_in(kind, mode, work),
                    mode,
                ));
            }
        }
    }
    let poll = mio_with(work);
    let theirs = polling_with(polling::PollMode::Oneshot, work);
    let rounds = 200;
    let n = ours.len() + 2;
    let mut reg: Vec<Vec<Duration>> = vec![Vec::new(); n];
    let mut modify: Vec<Vec<Duration>> = vec![Vec::new(); n];
    for round in 0..rounds {
        for k in 0..n {
            let which = (round + k) % n;
            let (r, m) = if which < ours.len() {
                let (_, selector, mode) = &mut ours[which];
                let mode = *mode;
                let start = Instant::now();
                for _ in 0..OPS {
                    selector
                        .register_with(&socket, Token(token), Interest::READABLE, mode)
                        .unwrap();
                    selector.unregister(&socket).unwrap();
                }
                let r = start.elapsed();
                selector
                    .register_with(&socket, Token(token), Interest::READABLE, mode)
                    .unwrap();
                let start = Instant::now();
                for i in 0..OPS {
                    let interest = if i % 2 == 0 {
                        Interest::WRITABLE
                    } else {
                        Interest::READABLE
                    };
                    selector.modify(&socket, Token(token), interest).unwrap();
                }
                let m = start.elapsed();
                selector.unregister(&socket).unwrap();
                (r, m)
            } else if which == ours.len() {
                let registry = poll.registry();
                let start = Instant::now();
                for _ in 0..OPS {
                    registry
                        .register(
                            &mut SourceFd(&fd),
                            mio::Token(token),
                            mio::Interest::READABLE,
                        )
                        .unwrap();
                    registry.deregister(&mut SourceFd(&fd)).unwrap();
                }
                let r = start.elapsed();
                registry
                    .register(
                        &mut SourceFd(&fd),
                        mio::Token(token),
                        mio::Interest::READABLE,
                    )
                    .unwrap();
                let start = Instant::now();
                for i in 0..OPS {
                    let interest = if i % 2 == 0 {
                        mio::Interest::WRITABLE
                    } else {
                        mio::Interest::READABLE
                    };
                    registry
                        .reregister(&mut SourceFd(&fd), mio::Token(token), interest)
                        .unwrap();
                }
                let m = start.elapsed();
                registry.deregister(&mut SourceFd(&fd)).unwrap();
                (r, m)
            } else {
                let start = Instant::now();
                for _ in 0..OPS {
                    // SAFETY: `socket` outlives the registration, deleted
                    // on the next line.
                    unsafe { theirs.add(&socket, polling::Event::readable(token)) }.unwrap();
                    theirs.delete(&socket).unwrap();
                }
                let r = start.elapsed();
                // SAFETY: as above; deleted after the modify loop.
                unsafe { theirs.add(&socket, polling::Event::readable(token)) }.unwrap();
                let start = Instant::now();
                for i in 0..OPS {
                    let event = if i % 2 == 0 {
                        polling::Event::writable(token)
                    } else {
                        polling::Event::readable(token)
                    };
                    theirs.modify(&socket, event).unwrap();
                }
                let m = start.elapsed();
                theirs.delete(&socket).unwrap();
                (r, m)
            };
            reg[which].push(r / OPS);
            modify[which].push(m / OPS);
        }
    }
    let mut names: Vec<String> = ours.iter().map(|o| o.0.clone()).collect();
    names.push("mio (edge)".into());
    names.push("polling (oneshot)".into());
    println!("\nregistration beside 10,000 others, median ns per operation");
    println!("  {:<24} {:>12} {:>12}", "", "reg+unreg", "modify");
    for (i, name) in names.iter().enumerate() {
        let r = median(&mut reg[i]).as_secs_f64() * 1e9;
        let m = median(&mut modify[i]).as_secs_f64() * 1e9;
        println!("  {name:<24} {r:>12.0} {m:>12.0}");
    }
}

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
/// `valgrind --tool=callgrind target/release/deps/select-HASH --bench registration-ops`,
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
    benches();
    Criterion::default().configure_from_args().final_summary();
    if bench_run && wants("paired") {
        paired_epoll_vs_mio();
    }
    if bench_run && wants("modes") {
        paired_modes();
    }
    if bench_run && wants("registration-ops") {
        registration_ops();
    }
    if bench_run && wants("select-ops") {
        select_ops();
    }
}
