//! What a run is asked to do and the timeline it follows: the types every
//! other module shares. This module sits on the floor: it imports nothing
//! of echo-bench's but [`crate::stats`] and [`crate::shard`].

use crate::shard::Shard;
use crate::stats::Stats;
use hdrhistogram::Histogram;
use netaddr::Target;
use selector::BackendKind;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long, after the window, workers wait for echoes still owed.
pub const DRAIN: Duration = Duration::from_secs(3);

/// `--stall-after`'s default.
pub const STALL_AFTER: Duration = Duration::from_secs(2);

/// `--delay-threshold`'s default.
pub const DELAY_THRESHOLD: Duration = Duration::from_millis(20);

/// How messages travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// A byte stream: TCP, or a Unix-domain stream socket for `unix:` targets.
    Stream,
    /// UDP datagrams, one connected socket per "connection".
    Udp,
}

impl Transport {
    /// The name in reports: "tcp", "unix" or "udp".
    pub fn name(self, targets: &[Target]) -> &'static str {
        match (self, targets.first()) {
            (Transport::Udp, _) => "udp",
            (Transport::Stream, Some(Target::Unix(_))) => "unix",
            (Transport::Stream, _) => "tcp",
        }
    }
}

/// One measurement point.
#[derive(Clone, Debug)]
pub struct Config {
    /// The echo servers; connection `i` goes to `targets[i % len]`.
    pub targets: Vec<Target>,
    /// How messages travel.
    pub transport: Transport,
    /// Connections (UDP: sockets).
    pub connections: u64,
    /// Message size in bytes.
    pub size: usize,
    /// Measured window.
    pub duration: Duration,
    /// Load before the window, not counted.
    pub warmup: Duration,
    /// Messages in flight per connection.
    pub pipeline: usize,
    /// Open loop: messages per second over all connections.
    pub rate: Option<f64>,
    /// Open loop: reach `rate` linearly over this long from the start.
    pub ramp: Duration,
    /// New connections per second while connecting (all workers), if paced.
    pub connect_rate: Option<f64>,
    /// How long a TCP connect and its first echo may take.
    pub connect_timeout: Duration,
    /// How long a UDP datagram may take before it counts as lost.
    pub udp_timeout: Duration,
    /// Worker threads.
    pub threads: usize,
    /// Readiness backend for every worker.
    pub backend: BackendKind,
    /// Where client sockets bind.
    pub sources: Sources,
    /// Process to report CPU time and memory of.
    pub server_pid: Option<u32>,
    /// Length of one reporting interval, if intervals are reported.
    pub interval: Option<Duration>,
    /// Id of this process's first connection: its connections are
    /// `first_id..first_id + connections` of the whole run (0 unsharded).
    pub first_id: u64,
    /// The shard this process runs, if the run is sharded.
    pub shard: Option<Shard>,
    /// When the load starts (`--start-at`), connections made before.
    pub start_at: Option<std::time::SystemTime>,
    /// No echoed byte for this long while bytes are owed: a stall.
    pub stall_after: Duration,
    /// Messages slower than this (from their send): delayed.
    pub delay_threshold: Duration,
}

impl Config {
    /// The target of connection `id`, as an index into `targets`.
    pub fn target_of(&self, id: u64) -> usize {
        (id % self.targets.len().max(1) as u64) as usize
    }

    /// The workers' shares: connections split over the threads (never more
    /// threads than connections), the rate in proportion.
    pub fn shares(&self) -> Vec<Share> {
        let cfg = self;
        let threads = (cfg.threads.max(1) as u64).min(cfg.connections.max(1));
        let mut out = Vec::new();
        let mut first = cfg.first_id;
        for t in 0..threads {
            let count = cfg.connections / threads + u64::from(t < cfg.connections % threads);
            let rate = cfg.rate.map(|r| r * count as f64 / cfg.connections as f64);
            out.push(Share { first, count, rate });
            first += count;
        }
        out
    }
}

/// Source addresses for client sockets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Sources {
    /// Let the kernel choose, except that to a 127.x target every block of
    /// 20,000 connections moves to the next loopback address.
    #[default]
    Auto,
    /// The next address every 20,000 connections, from this one.
    Base(std::net::Ipv4Addr),
    /// These addresses, round-robin over the connections.
    List(Vec<IpAddr>),
}

/// Which connections one worker runs, and its share of the rate.
#[derive(Clone, Copy, Debug)]
pub struct Share {
    /// Global id of its first connection; ids are `first..first + count`.
    pub first: u64,
    /// How many connections.
    pub count: u64,
    /// Its part of `--rate`.
    pub rate: Option<f64>,
}

/// The common timeline, as instants.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    /// When load starts (warm-up).
    pub start: Instant,
    /// When counting starts.
    pub window_start: Instant,
    /// When sending stops.
    pub window_end: Instant,
    /// When waiting for owed echoes stops.
    pub drain_end: Instant,
}

impl Schedule {
    /// The schedule on a worker's clock: nanoseconds since `start`.
    pub fn marks(&self) -> Marks {
        Marks {
            window_start: ns(self.window_start - self.start),
            window_end: ns(self.window_end - self.start),
            drain_end: ns(self.drain_end - self.start),
        }
    }
}

/// [`Schedule`] in nanoseconds since its start.
#[derive(Clone, Copy, Debug)]
pub struct Marks {
    /// When counting starts.
    pub window_start: u64,
    /// When sending stops.
    pub window_end: u64,
    /// When waiting for owed echoes stops.
    pub drain_end: u64,
}

impl Marks {
    /// The next moment a worker must wake up for, whatever the sockets do.
    pub fn next_wake(&self, now: u64, sending: bool) -> u64 {
        if !sending {
            self.drain_end
        } else if now < self.window_start {
            self.window_start
        } else {
            self.window_end
        }
    }

    /// Cut the window short at `at` (an interruption); echoes still owed
    /// then get the usual drain, counted from `at`.
    pub fn stop_at(&mut self, at: u64) {
        if at < self.window_end {
            self.window_end = at;
            self.drain_end = self.drain_end.min(at + ns(DRAIN));
        }
    }
}

/// A duration in nanoseconds, saturating.
pub fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// What a worker says once its connects are done.
#[derive(Debug)]
pub struct Connected {
    /// Established connections.
    pub ok: u64,
    /// The first connect error, if any.
    pub first_error: Option<String>,
}

/// Live counters a worker publishes for the progress line.
#[derive(Debug, Default)]
pub struct Progress {
    /// Messages echoed since the start (warm-up included).
    pub echoed: AtomicU64,
    /// Failures so far.
    pub failures: AtomicU64,
}

/// Tells workers to stop early: the nanosecond (since the schedule's
/// start) at which the window ends, or `u64::MAX` while none is set.
#[derive(Debug)]
pub struct Stop {
    at: AtomicU64,
    /// Set before the schedule exists: give up connecting.
    early: AtomicBool,
}

impl Default for Stop {
    fn default() -> Self {
        Stop {
            at: AtomicU64::new(u64::MAX),
            early: AtomicBool::new(false),
        }
    }
}

impl Stop {
    /// End the window at `at` ns since the start.
    pub fn set(&self, at: u64) {
        self.early.store(true, Ordering::Relaxed);
        self.at.store(at, Ordering::Relaxed);
    }

    /// When the window must end, if it must end early.
    pub fn at(&self) -> Option<u64> {
        Some(self.at.load(Ordering::Relaxed)).filter(|&t| t != u64::MAX)
    }

    /// Whether a stop was asked for at all.
    pub fn asked(&self) -> bool {
        self.early.load(Ordering::Relaxed)
    }
}

/// One worker's measurements over one reporting interval.
#[derive(Debug)]
pub struct IntervalSample {
    /// Which interval: 0 is the first of the window.
    pub index: u64,
    /// Its end, ns since the window's start (the last is cut at the window's end).
    pub end: u64,
    /// Response time of the messages completed in it (ns).
    pub latency: Histogram<u64>,
    /// Service time of the same messages (ns), with `--rate` only.
    pub service: Option<Histogram<u64>>,
    /// Messages completed.
    pub messages: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Errors and mismatches so far (cumulative).
    pub failures: u64,
}

/// A worker's side of the start-up handshake.
#[derive(Debug)]
pub struct Handshake {
    /// Where to say how connecting went.
    pub ready: mpsc::Sender<Connected>,
    /// The schedule, or `None` to give up.
    pub go: mpsc::Receiver<Option<Schedule>>,
    /// Counters for the progress line.
    pub progress: Arc<Progress>,
    /// An early end of the run.
    pub stop: Arc<Stop>,
    /// Where interval samples go, when intervals are reported.
    pub intervals: Option<mpsc::Sender<IntervalSample>>,
}

impl Handshake {
    /// Say how connecting went, then wait for the schedule; `None` means
    /// the run is called off.
    pub fn connected(&self, stats: &[Stats]) -> Option<Schedule> {
        let _ = self.ready.send(Connected {
            ok: stats.iter().map(|s| s.connected).sum(),
            first_error: stats.iter().find_map(|s| s.first_error.clone()),
        });
        self.go.recv().ok().flatten()
    }
}

/// The measured result of one point.
#[derive(Debug)]
pub struct Outcome {
    /// Everything the workers counted, all targets together.
    pub stats: Stats,
    /// The same, per target (in `Config::targets` order).
    pub per_target: Vec<Stats>,
    /// The window's actual length.
    pub window: Duration,
    /// Server CPU microseconds spent in the window.
    pub server_cpu_us: Option<u64>,
    /// echo-bench's own CPU microseconds in the window.
    pub own_cpu_us: Option<u64>,
    /// Server (VmRSS, VmHWM) in kB at the end.
    pub server_rss_kb: Option<(u64, u64)>,
    /// The run was cut short by a signal.
    pub interrupted: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn config(connections: u64, threads: usize, rate: Option<f64>) -> Config {
        Config {
            targets: vec![netaddr::Target::Inet("127.0.0.1:7".parse().unwrap())],
            transport: Transport::Stream,
            connections,
            size: 64,
            duration: Duration::from_secs(1),
            warmup: Duration::ZERO,
            pipeline: 1,
            rate,
            ramp: Duration::ZERO,
            udp_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            connect_rate: None,
            threads,
            backend: selector::BackendKind::Auto,
            sources: crate::plan::Sources::Auto,
            server_pid: None,
            interval: None,
            first_id: 0,
            shard: None,
            start_at: None,
            stall_after: crate::plan::STALL_AFTER,
            delay_threshold: crate::plan::DELAY_THRESHOLD,
        }
    }

    #[test]
    fn connections_and_rate_split_over_threads() {
        let s = config(10, 3, Some(1000.0)).shares();
        let counts: Vec<u64> = s.iter().map(|s| s.count).collect();
        assert_eq!(counts, [4, 3, 3]);
        let firsts: Vec<u64> = s.iter().map(|s| s.first).collect();
        assert_eq!(firsts, [0, 4, 7]);
        let total: f64 = s.iter().filter_map(|s| s.rate).sum();
        assert!((total - 1000.0).abs() < 1e-6);
        // Never more threads than connections.
        assert_eq!(config(2, 8, None).shares().len(), 2);
    }
}
