//! What the benchmarks share: the backend list, the workload (UDP sockets,
//! 1% made ready), each library's select, the paired rounds, and the order
//! statistics.

#![allow(dead_code)] // each bench binary uses its own part

use mio::unix::SourceFd;
use selector::{BackendKind, Events, Interest, Mode, Selector, Token};
use std::hint::black_box;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Registered descriptors in the select benchmarks.
pub const SIZES: [usize; 3] = [10, 1_000, 10_000];

/// Events buffer size for every library.
pub const EVENTS: usize = 1024;

/// Every concrete backend this OS has, from the library's own list.
pub fn backends() -> Vec<BackendKind> {
    BackendKind::CONCRETE.to_vec()
}

/// The median of `samples` (sorted in place); zero for none.
pub fn median(samples: &mut [Duration]) -> Duration {
    percentile(samples, 50.0)
}

/// The `p`th percentile of `samples` (sorted in place), nearest rank; zero
/// for none.
pub fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort_unstable();
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

/// Registered sockets; the first of every hundred (at least one) is the
/// 1% that gets made ready.
pub struct Workload {
    pub sockets: Vec<UdpSocket>,
    pub sender: UdpSocket,
    pub ready: usize,
    /// Addresses of the 1%, to send to.
    pub ready_addrs: Vec<std::net::SocketAddr>,
}

impl Workload {
    pub fn new(size: usize) -> Workload {
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

    pub fn ready_sockets(&self) -> impl Iterator<Item = &UdpSocket> {
        self.sockets.iter().step_by(100).take(self.ready)
    }

    /// Makes the 1% readable: one datagram each.
    pub fn arm(&self) {
        for addr in &self.ready_addrs {
            self.sender.send_to(b"ready", addr).unwrap();
        }
    }

    /// Reads whatever waits on sockets outside the 1%. The ports are
    /// ephemeral, so a datagram meant for an earlier owner of one (another
    /// program's UDP test on this machine) can land here.
    pub fn drain_strays(&self) {
        let mut buf = [0u8; 64];
        for (i, socket) in self.sockets.iter().enumerate() {
            if i % 100 == 0 && i / 100 < self.ready {
                continue;
            }
            while socket.recv(&mut buf).is_ok() {}
        }
    }

    /// Reads the datagrams `arm` sent, so nothing is ready any more.
    pub fn drain(&self) {
        let mut buf = [0u8; 16];
        for socket in self.ready_sockets() {
            socket.recv(&mut buf).unwrap();
        }
    }
}

/// Raises the soft descriptor limit to the hard one: 10,000 sockets need it.
pub fn raise_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = limit.maximum;
    if let Err(e) = setrlimit(Resource::Nofile, limit) {
        eprintln!("could not raise RLIMIT_NOFILE: {e}");
    }
}

/// Waits (bounded) until `count` reports the workload's ready sockets.
pub fn settle(what: &str, expected: usize, mut count: impl FnMut() -> usize) {
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

pub fn selector_with(kind: BackendKind, work: &Workload) -> Selector {
    let mut selector = Selector::with_backend(kind).unwrap();
    for (i, socket) in work.sockets.iter().enumerate() {
        selector
            .register(socket, Token(i), Interest::READABLE)
            .unwrap();
    }
    selector
}

pub fn mio_with(work: &Workload) -> mio::Poll {
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
pub fn select_once(selector: &mut Selector, events: &mut Events) -> usize {
    selector.select(events, Some(Duration::ZERO)).unwrap();
    let mut sum = 0;
    for event in &*events {
        sum += event.token().0;
    }
    black_box(sum);
    events.len()
}

/// The same for mio.
pub fn poll_once(poll: &mut mio::Poll, events: &mut mio::Events) -> usize {
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

pub fn selector_in(kind: BackendKind, mode: Mode, work: &Workload) -> Selector {
    let mut selector = Selector::with_backend(kind).unwrap();
    for (i, socket) in work.sockets.iter().enumerate() {
        selector
            .register_with(socket, Token(i), Interest::READABLE, mode)
            .unwrap();
    }
    selector
}

pub fn polling_with(mode: polling::PollMode, work: &Workload) -> polling::Poller {
    let poller = polling::Poller::new().unwrap();
    for (i, socket) in work.sockets.iter().enumerate() {
        // SAFETY: every socket outlives its registration: the poller is
        // dropped (with its registrations) before the workload.
        unsafe { poller.add_with_mode(socket, polling::Event::readable(i), mode) }.unwrap();
    }
    poller
}

pub fn wait_once(poller: &polling::Poller, events: &mut polling::Events) -> usize {
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
pub type Contender<'a> = (
    &'static str,
    Box<dyn FnMut() -> usize + 'a>,
    Box<dyn FnMut() + 'a>,
);

/// Interleaved rounds (the order rotating), each arming the 1%, timing one
/// select per contender, draining and re-arming; medians in ns.
pub fn paired_rounds(work: &Workload, rounds: usize, contenders: &mut [Contender<'_>]) -> Vec<f64> {
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

/// Times only the select: the 1% are made ready before it and drained after
/// it, outside the clock, so each select finds them freshly ready. This is
/// the workload mio can share: it registers edge-triggered, so a datagram
/// left waiting is reported once, not on every call.
/// A select that saw something else (a stray datagram) is done again.
pub fn timed_fresh(work: &Workload, iters: u64, mut select: impl FnMut() -> usize) -> Duration {
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
