//! One measurement: start the workers, wait until every one has connected,
//! hand them a common schedule (warm-up, window, drain), watch the server,
//! show progress, and add up what the workers counted.

use crate::report::Report;
use crate::stats::Stats;
use crate::{client, server, udp};
use anyhow::{anyhow, bail, Result};
use selector::BackendKind;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// How long, after the window, workers wait for echoes still owed.
pub const DRAIN: Duration = Duration::from_secs(3);

/// One measurement point.
#[derive(Clone, Debug)]
pub struct Config {
    /// The echo server.
    pub addr: SocketAddr,
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
    /// UDP instead of TCP.
    pub udp: bool,
    /// How long a TCP connect and its first echo may take.
    pub connect_timeout: Duration,
    /// How long a UDP datagram may take before it counts as lost.
    pub udp_timeout: Duration,
    /// Worker threads.
    pub threads: usize,
    /// Readiness backend for every worker.
    pub backend: BackendKind,
    /// First source address to bind, if set.
    pub source_base: Option<Ipv4Addr>,
    /// Process to report CPU time and memory of.
    pub server_pid: Option<u32>,
    /// Print a live status line on stderr.
    pub progress: bool,
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
    pub window_start: u64,
    pub window_end: u64,
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

/// A worker's side of the start-up handshake.
#[derive(Debug)]
pub struct Handshake {
    /// Where to say how connecting went.
    pub ready: mpsc::Sender<Connected>,
    /// The schedule, or `None` to give up.
    pub go: mpsc::Receiver<Option<Schedule>>,
    /// Counters for the progress line.
    pub progress: Arc<Progress>,
}

impl Handshake {
    /// Say how connecting went, then wait for the schedule; `None` means
    /// the run is called off.
    pub fn connected(&self, stats: &Stats) -> Option<Schedule> {
        let _ = self.ready.send(Connected {
            ok: stats.connected,
            first_error: stats.first_error.clone(),
        });
        self.go.recv().ok().flatten()
    }
}

/// The measured result of one point.
#[derive(Debug)]
pub struct Outcome {
    /// Everything the workers counted.
    pub stats: Stats,
    /// The window's actual length.
    pub window: Duration,
    /// Server CPU microseconds spent in the window.
    pub server_cpu_us: Option<u64>,
    /// echo-bench's own CPU microseconds in the window.
    pub own_cpu_us: Option<u64>,
    /// Server (VmRSS, VmHWM) in kB at the end.
    pub server_rss_kb: Option<(u64, u64)>,
}

fn shares(cfg: &Config) -> Vec<Share> {
    let threads = (cfg.threads.max(1) as u64).min(cfg.connections.max(1));
    let mut out = Vec::new();
    let mut first = 0;
    for t in 0..threads {
        let count = cfg.connections / threads + u64::from(t < cfg.connections % threads);
        let rate = cfg.rate.map(|r| r * count as f64 / cfg.connections as f64);
        out.push(Share { first, count, rate });
        first += count;
    }
    out
}

/// Run one point and return what it measured.
///
/// # Errors
///
/// When no connection could be established (with the first connect
/// error), a worker fails to set up, or the server process cannot be read.
pub fn run_point(cfg: &Config) -> Result<Outcome> {
    if let Some(pid) = cfg.server_pid {
        server::cpu_us(pid)?;
    }
    let (ready_tx, ready_rx) = mpsc::channel();
    let mut workers = Vec::new();
    for (t, share) in shares(cfg).into_iter().enumerate() {
        let (go_tx, go_rx) = mpsc::channel();
        let progress = Arc::new(Progress::default());
        let hs = Handshake {
            ready: ready_tx.clone(),
            go: go_rx,
            progress: Arc::clone(&progress),
        };
        let cfg = cfg.clone();
        let handle = thread::Builder::new()
            .name(format!("worker-{t}"))
            .spawn(move || {
                if cfg.udp {
                    udp::run(&cfg, share, hs)
                } else {
                    client::run(&cfg, share, hs)
                }
            })
            .map_err(|e| anyhow!("start worker thread: {e}"))?;
        workers.push((handle, go_tx, progress));
    }
    drop(ready_tx);

    let mut connected = 0;
    let mut first_error = None;
    for _ in 0..workers.len() {
        // A worker that failed before connecting drops its sender; its error
        // comes out of join below.
        let Ok(c) = ready_rx.recv() else { break };
        connected += c.ok;
        first_error = first_error.or(c.first_error);
    }
    let start = Instant::now();
    let window_start = start + cfg.warmup;
    let window_end = window_start + cfg.duration;
    let schedule = Schedule {
        start,
        window_start,
        window_end,
        drain_end: window_end + DRAIN,
    };
    let go = (connected > 0).then_some(schedule);
    for (_, tx, _) in &workers {
        let _ = tx.send(go);
    }

    let mut cpu = (None, None);
    if go.is_some() {
        cpu = watch(cfg, &schedule, &workers)?;
    }
    let mut stats = Stats::new();
    let mut failure = None;
    for (handle, _, _) in workers {
        match handle.join() {
            Ok(Ok(s)) => stats.merge(&s),
            Ok(Err(e)) => failure = failure.or(Some(e)),
            Err(_) => failure = failure.or(Some(anyhow!("a worker thread panicked"))),
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    if connected == 0 {
        match first_error {
            Some(e) => bail!("{e}"),
            None => bail!("no connection to {} could be established", cfg.addr),
        }
    }
    if cfg.udp && stats.connected > 0 && stats.silent >= stats.connected {
        // Not loss under load: nothing answers at all.
        stats.errors.unserved += stats.silent;
        let addr = cfg.addr;
        stats
            .note(|| format!("no echo from {addr} on any socket: is a UDP echo server listening?"));
    }
    // A server that died during the run has no /proc entry left: the report
    // still comes out, without its figures, and says so.
    let server_rss_kb = cfg.server_pid.and_then(|pid| server::rss_kb(pid).ok());
    if let (Some(pid), None) = (cfg.server_pid, server_rss_kb) {
        stats.note(|| format!("server process {pid} is gone: no CPU or memory figures"));
    }
    Ok(Outcome {
        stats,
        window: cfg.duration,
        server_cpu_us: cpu.0,
        own_cpu_us: cpu.1,
        server_rss_kb,
    })
}

type Workers = [(
    thread::JoinHandle<Result<Stats>>,
    mpsc::Sender<Option<Schedule>>,
    Arc<Progress>,
)];

/// Sleep through the run, sampling the server's CPU time and our own at the
/// window's edges, and drawing the progress line.
fn watch(cfg: &Config, s: &Schedule, workers: &Workers) -> Result<(Option<u64>, Option<u64>)> {
    let tick = Duration::from_millis(250);
    let me = std::process::id();
    let mut cpu_start = None;
    let mut own_start = None;
    let mut sampled = false;
    let mut last = (Instant::now(), 0u64);
    loop {
        let now = Instant::now();
        if !sampled && now >= s.window_start {
            sampled = true;
            cpu_start = cfg.server_pid.map(server::cpu_us).transpose()?;
            own_start = server::cpu_us(me).ok();
        }
        if now >= s.window_end {
            break;
        }
        if cfg.progress {
            let echoed: u64 = workers
                .iter()
                .map(|w| w.2.echoed.load(Ordering::Relaxed))
                .sum();
            let failures: u64 = workers
                .iter()
                .map(|w| w.2.failures.load(Ordering::Relaxed))
                .sum();
            let dt = now.duration_since(last.0).as_secs_f64();
            let rate = if dt > 0.0 {
                (echoed - last.1) as f64 / dt
            } else {
                0.0
            };
            last = (now, echoed);
            let (phase, t) = if now < s.window_start {
                ("warm-up", now.duration_since(s.start))
            } else {
                ("run", now.duration_since(s.window_start))
            };
            let mut err = std::io::stderr().lock();
            let _ = write!(
                err,
                "\r{phase:>7} {:5.1}s  {:>12} msg/s  {failures} errors   ",
                t.as_secs_f64(),
                Report::thousands(rate as u64)
            );
            let _ = err.flush();
        }
        let next = if now < s.window_start {
            s.window_start
        } else {
            s.window_end
        };
        thread::sleep(tick.min(next.duration_since(now)));
    }
    let cpu = match (cfg.server_pid, cpu_start) {
        (Some(pid), Some(before)) => server::cpu_us(pid)
            .ok()
            .map(|now| now.saturating_sub(before)),
        _ => None,
    };
    let own = own_start.and_then(|before| Some(server::cpu_us(me).ok()?.saturating_sub(before)));
    if cfg.progress {
        let _ = write!(std::io::stderr(), "\r{:60}\r", "");
    }
    Ok((cpu, own))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(connections: u64, threads: usize, rate: Option<f64>) -> Config {
        Config {
            addr: "127.0.0.1:7".parse().unwrap(),
            connections,
            size: 64,
            duration: Duration::from_secs(1),
            warmup: Duration::ZERO,
            pipeline: 1,
            rate,
            udp: false,
            udp_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            threads,
            backend: BackendKind::Auto,
            source_base: None,
            server_pid: None,
            progress: false,
        }
    }

    #[test]
    fn connections_and_rate_split_over_threads() {
        let s = shares(&config(10, 3, Some(1000.0)));
        let counts: Vec<u64> = s.iter().map(|s| s.count).collect();
        assert_eq!(counts, [4, 3, 3]);
        let firsts: Vec<u64> = s.iter().map(|s| s.first).collect();
        assert_eq!(firsts, [0, 4, 7]);
        let total: f64 = s.iter().filter_map(|s| s.rate).sum();
        assert!((total - 1000.0).abs() < 1e-6);
        // Never more threads than connections.
        assert_eq!(shares(&config(2, 8, None)).len(), 2);
    }
}
