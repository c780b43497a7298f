//! One measurement: start the workers, wait until every one has connected,
//! hand them a common schedule (warm-up, window, drain), watch the server,
//! collect the workers' reporting intervals, show progress, stop early on a
//! signal, and add up what the workers counted.

use crate::output::Outputs;
use crate::plan::{
    ns, Config, Handshake, IntervalSample, Outcome, Progress, Schedule, Stop, Transport, DRAIN,
};
use crate::report::Report;
use crate::stats::Stats;
use crate::{client, server, udp};
use anyhow::{anyhow, bail, Result};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

/// What the caller watches a run with.
pub struct Watch<'a> {
    /// Draw the live progress line on stderr (a terminal).
    pub progress: bool,
    /// Set by a signal: end the window now and report what was measured.
    pub interrupt: &'a AtomicBool,
    /// Called with each reporting interval, all workers merged, in order.
    pub on_interval: &'a mut dyn FnMut(&IntervalSample),
}

impl std::fmt::Debug for Watch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("progress", &self.progress)
            .finish_non_exhaustive()
    }
}

/// Measure one point, writing interval outputs as they come.
///
/// # Errors
///
/// As [`run_point`].
pub fn measure(
    cfg: &Config,
    mut outputs: Option<&mut Outputs>,
    interrupt: &AtomicBool,
    live: bool,
) -> Result<Report> {
    let mut sink = |s: &IntervalSample| {
        if let Some(o) = outputs.as_deref_mut() {
            o.write(s);
        }
    };
    let mut watch = Watch {
        progress: live && cfg.interval.is_none(),
        interrupt,
        on_interval: &mut sink,
    };
    let outcome = run_point(cfg, &mut watch)?;
    Ok(Report::new(
        cfg,
        cfg.backend.resolve().to_string(),
        &outcome,
    ))
}

/// Run one point and return what it measured.
///
/// # Errors
///
/// When no connection could be established (with the first connect
/// error), a worker fails to set up, or the server process cannot be read.
pub fn run_point(cfg: &Config, watch: &mut Watch<'_>) -> Result<Outcome> {
    if let Some(pid) = cfg.server_pid {
        server::cpu_us(pid)?;
    }
    let (ready_tx, ready_rx) = mpsc::channel();
    let (interval_tx, interval_rx) = mpsc::channel();
    let stop = Arc::new(Stop::default());
    let mut workers = Vec::new();
    for (t, share) in cfg.shares().into_iter().enumerate() {
        let (go_tx, go_rx) = mpsc::channel();
        let progress = Arc::new(Progress::default());
        let hs = Handshake {
            ready: ready_tx.clone(),
            go: go_rx,
            progress: Arc::clone(&progress),
            stop: Arc::clone(&stop),
            intervals: cfg.interval.map(|_| interval_tx.clone()),
        };
        let cfg = cfg.clone();
        let handle = thread::Builder::new()
            .name(format!("worker-{t}"))
            .spawn(move || match cfg.transport {
                Transport::Udp => udp::run(&cfg, share, hs),
                Transport::Stream => client::run(&cfg, share, hs),
            })
            .map_err(|e| anyhow!("start worker thread: {e}"))?;
        workers.push((handle, go_tx, progress));
    }
    drop(ready_tx);
    drop(interval_tx);

    let mut connected = 0;
    let mut first_error = None;
    let mut reported = 0;
    while reported < workers.len() {
        if watch.interrupt.load(Ordering::Relaxed) {
            stop.set(0);
        }
        // A worker that failed before connecting drops its sender; its error
        // comes out of join below.
        match ready_rx.recv_timeout(Duration::from_millis(100)) {
            Ok(c) => {
                reported += 1;
                connected += c.ok;
                first_error = first_error.or(c.first_error);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    if let Some(at) = cfg.start_at {
        wait_for(at, watch.interrupt, &stop);
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
    // A --connect-rate ramp connects under load: nothing is connected yet.
    let ramp = cfg.connect_rate.is_some();
    let go = ((connected > 0 || ramp) && !stop.asked()).then_some(schedule);
    for (_, tx, _) in &workers {
        let _ = tx.send(go);
    }

    let mut seen = Seen::default();
    if go.is_some() {
        seen = follow(cfg, &schedule, &workers, watch, &stop, &interval_rx)?;
    }
    let mut per_target: Vec<Stats> = cfg.targets.iter().map(|_| Stats::new()).collect();
    let mut failure = None;
    for (handle, _, _) in workers {
        match handle.join() {
            Ok(Ok(list)) => {
                for (sum, s) in per_target.iter_mut().zip(&list) {
                    sum.merge(s);
                }
            }
            Ok(Err(e)) => failure = failure.or(Some(e)),
            Err(_) => failure = failure.or(Some(anyhow!("a worker thread panicked"))),
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    // Intervals the workers closed after the watch ended.
    let mut pending = seen.pending;
    while let Ok(sample) = interval_rx.try_recv() {
        collect(&mut pending, sample);
    }
    for sample in pending.into_values() {
        (watch.on_interval)(&sample.1);
    }
    let interrupted = watch.interrupt.load(Ordering::Relaxed);
    let mut stats = Stats::new();
    for s in &per_target {
        stats.merge(s);
    }
    if connected.max(stats.connected) == 0 && !interrupted {
        match first_error.or_else(|| stats.first_error.clone()) {
            Some(e) => bail!("{e}"),
            None => bail!("no connection to {} could be established", cfg.targets[0]),
        }
    }
    if cfg.transport == Transport::Udp && stats.connected == 0 && connected > 0 {
        // Not loss under load: nothing answers at all. Every socket that
        // did not already fail with an error counts as unserved.
        let unanswered = connected.saturating_sub(stats.errors.io);
        stats.errors.unserved += unanswered;
        let addr = &cfg.targets[0];
        stats
            .note(|| format!("no echo from {addr} on any socket: is a UDP echo server listening?"));
    }
    // A server that died during the run has no /proc entry left: the report
    // still comes out, without its figures, and says so.
    let server_rss_kb = cfg.server_pid.and_then(|pid| server::rss_kb(pid).ok());
    if let (Some(pid), None) = (cfg.server_pid, server_rss_kb) {
        stats.note(|| format!("server process {pid} is gone: no CPU or memory figures"));
    }
    let window = match stop.at() {
        Some(at) => Duration::from_nanos(at.saturating_sub(ns(cfg.warmup))).min(cfg.duration),
        None => cfg.duration,
    };
    Ok(Outcome {
        stats,
        per_target,
        window,
        server_cpu_us: seen.cpu.0,
        own_cpu_us: seen.cpu.1,
        server_rss_kb,
        interrupted,
    })
}

/// Wait until `at` (`--start-at`), or an interruption. Connecting past it
/// is said on stderr: this process's window then starts late.
fn wait_for(at: SystemTime, interrupt: &AtomicBool, stop: &Stop) {
    if let Err(e) = at.duration_since(SystemTime::now()) {
        eprintln!(
            "echo-bench: connected {:.3} s after --start-at: this window starts late",
            e.duration().as_secs_f64()
        );
        return;
    }
    while let Ok(left) = at.duration_since(SystemTime::now()) {
        if interrupt.load(Ordering::Relaxed) {
            stop.set(0);
            return;
        }
        thread::sleep(left.min(Duration::from_millis(50)));
    }
}

type Workers = [(
    thread::JoinHandle<Result<Vec<Stats>>>,
    mpsc::Sender<Option<Schedule>>,
    Arc<Progress>,
)];

/// Interval samples waiting for the other workers': index -> (how many
/// workers sent theirs, their sum).
type Pending = BTreeMap<u64, (usize, IntervalSample)>;

fn collect(pending: &mut Pending, s: IntervalSample) {
    match pending.get_mut(&s.index) {
        Some((n, sum)) => {
            *n += 1;
            // Same bounds on both sides, so adding cannot run out of range.
            let _ = sum.latency.add(&s.latency);
            if let (Some(a), Some(b)) = (&mut sum.service, &s.service) {
                let _ = a.add(b);
            }
            sum.messages += s.messages;
            sum.bytes += s.bytes;
            sum.failures += s.failures;
            sum.end = sum.end.max(s.end);
        }
        None => {
            pending.insert(s.index, (1, s));
        }
    }
}

/// What watching the run yielded.
#[derive(Default)]
struct Seen {
    /// Server and own CPU microseconds in the window.
    cpu: (Option<u64>, Option<u64>),
    /// Intervals not yet complete.
    pending: Pending,
}

/// Follow the run until its window ends: sample the server's CPU time and
/// our own at the window's edges, pass on complete intervals, draw the
/// progress line, and turn an interruption into an early end.
fn follow(
    cfg: &Config,
    s: &Schedule,
    workers: &Workers,
    watch: &mut Watch<'_>,
    stop: &Stop,
    intervals: &mpsc::Receiver<IntervalSample>,
) -> Result<Seen> {
    let tick = Duration::from_millis(250);
    let me = std::process::id();
    let mut cpu_start = None;
    let mut own_start = None;
    let mut sampled = false;
    let mut last = (Instant::now(), 0u64);
    let mut pending = Pending::new();
    let mut end = s.window_end;
    let mut next_line = Instant::now();
    loop {
        let now = Instant::now();
        if watch.interrupt.load(Ordering::Relaxed) && stop.at().is_none() {
            stop.set(ns(now.duration_since(s.start)));
            end = now;
        }
        if !sampled && now >= s.window_start && now < end {
            sampled = true;
            cpu_start = cfg.server_pid.map(server::cpu_us).transpose()?;
            own_start = server::cpu_us(me).ok();
        }
        while let Some(entry) = pending.first_entry() {
            if entry.get().0 < workers.len() {
                break;
            }
            (watch.on_interval)(&entry.remove().1);
        }
        if now >= end {
            break;
        }
        if watch.progress && now >= next_line {
            next_line = now + tick;
            last = progress_line(s, workers, now, last);
        }
        let next = if now < s.window_start {
            s.window_start
        } else {
            end
        };
        let wait = tick.min(next.duration_since(now));
        match intervals.recv_timeout(wait) {
            Ok(sample) => collect(&mut pending, sample),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // No intervals asked for: just wait.
            Err(mpsc::RecvTimeoutError::Disconnected) => thread::sleep(wait),
        }
    }
    let cpu = match (cfg.server_pid, cpu_start) {
        (Some(pid), Some(before)) => server::cpu_us(pid)
            .ok()
            .map(|now| now.saturating_sub(before)),
        _ => None,
    };
    let own = own_start.and_then(|before| Some(server::cpu_us(me).ok()?.saturating_sub(before)));
    if watch.progress {
        let _ = write!(std::io::stderr(), "\r{:60}\r", "");
    }
    Ok(Seen {
        cpu: (cpu, own),
        pending,
    })
}

/// Draw the live line: phase, time, messages/s since the last line, errors.
fn progress_line(
    s: &Schedule,
    workers: &Workers,
    now: Instant,
    last: (Instant, u64),
) -> (Instant, u64) {
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
        echoed.saturating_sub(last.1) as f64 / dt
    } else {
        0.0
    };
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
        crate::stats::thousands(rate as u64)
    );
    let _ = err.flush();
    (now, echoed)
}
