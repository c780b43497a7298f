//! `echo-bench chaos`: many connections at once, each a random session —
//! normal traffic, one-byte writes, huge writes, slow and stalled readers,
//! half-close, RST with data in flight, connect-and-vanish, reconnect
//! storms — all on one [`Selector`], for `--duration` seconds.
//!
//! A session's byte stream is one long [`pattern`](crate::pattern) message keyed by the
//! session's number, so every echoed byte is checked where it lands. A
//! session that should complete (all but RST and vanish) must get back
//! exactly what it sent; anything else — a wrong byte, end of file early,
//! a reset, no progress for `--session-timeout` — is a failure, and any
//! failure makes the exit status 1.

use crate::net::describe;
use anyhow::{anyhow, Result};
use selector::{Events, Selector};
use socket2::SockRef;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

mod report;
mod session;
pub use report::ChaosReport;
use session::{close, set_interest, start, step, End, Failure, Link, Session};

/// What a session does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A few KiB in ordinary writes; close once all is echoed.
    Normal,
    /// One byte per write.
    Tiny,
    /// Megabytes in big writes while reading.
    Huge,
    /// Reads a few bytes at a time, pausing between reads.
    Slow,
    /// Writes a lot before reading anything for a while.
    Stalled,
    /// Sends, shuts down its write side, expects every byte and then EOF.
    HalfClose,
    /// Resets the connection (SO_LINGER 0) with data in flight.
    Reset,
    /// Connects and closes, maybe after sending a little, reading nothing.
    Vanish,
    /// A burst of short sessions back to back (one of them).
    Storm,
}

const KINDS: [Kind; 9] = [
    Kind::Normal,
    Kind::Tiny,
    Kind::Huge,
    Kind::Slow,
    Kind::Stalled,
    Kind::HalfClose,
    Kind::Reset,
    Kind::Vanish,
    Kind::Storm,
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Normal => "normal",
            Kind::Tiny => "tiny",
            Kind::Huge => "huge",
            Kind::Slow => "slow",
            Kind::Stalled => "stalled",
            Kind::HalfClose => "half-close",
            Kind::Reset => "reset",
            Kind::Vanish => "vanish",
            Kind::Storm => "storm",
        }
    }

    /// Whether the session must end with every byte echoed.
    fn completes(self) -> bool {
        !matches!(self, Kind::Reset | Kind::Vanish)
    }
}

/// Settings for a chaos run.
#[derive(Clone, Debug)]
pub struct ChaosConfig {
    /// The server.
    pub addr: SocketAddr,
    /// Sessions running at once.
    pub connections: usize,
    /// How long to start new sessions.
    pub duration: Duration,
    /// Largest stream of a huge session, bytes.
    pub max_bytes: u64,
    /// A session making no progress this long has failed.
    pub session_timeout: Duration,
    /// Random seed (printed, so a run can be repeated).
    pub seed: u64,
}

/// splitmix64: small, fast, and enough for choosing behaviours.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// How many `--session-timeout`s the sessions still running when the
/// duration ends get to finish in, as long as each keeps making progress.
const FINISH_TIMEOUTS: u64 = 10;

/// Run chaos sessions and report.
///
/// # Errors
///
/// Only when the selector itself fails; sessions' failures are counted.
pub fn run(cfg: &ChaosConfig) -> Result<ChaosReport> {
    let mut selector = Selector::new().map_err(|e| anyhow!("create selector: {}", describe(&e)))?;
    let mut events = Events::with_capacity(1024);
    let mut slots: Vec<Option<Session>> = (0..cfg.connections).map(|_| None).collect();
    let mut storm_left = vec![0u32; cfg.connections];
    let mut rng = Rng(cfg.seed);
    let mut report = ChaosReport {
        seed: cfg.seed,
        duration_s: cfg.duration.as_secs_f64(),
        ..ChaosReport::default()
    };
    let mut buf = vec![0u8; 256 * 1024];
    let mut scratch = vec![0u8; 256 * 1024];
    let origin = Instant::now();
    let now_ns = || u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
    let stop = u64::try_from(cfg.duration.as_nanos()).unwrap_or(u64::MAX);
    let timeout = u64::try_from(cfg.session_timeout.as_nanos()).unwrap_or(u64::MAX);
    // After `stop` the running sessions finish; one still making progress
    // (a tiny session behind ten thousand others moves a byte a round) is
    // given up on only after this long.
    let grace = stop.saturating_add(timeout.saturating_mul(FINISH_TIMEOUTS));
    let mut next_id = 0u64;
    loop {
        let now = now_ns();
        let mut running = 0;
        for i in 0..slots.len() {
            if slots[i].is_none() && now < stop {
                let kind = if storm_left[i] > 0 {
                    storm_left[i] -= 1;
                    Kind::Storm
                } else {
                    let kind = KINDS[rng.range(0, KINDS.len() as u64 - 1) as usize];
                    if kind == Kind::Storm {
                        storm_left[i] = rng.range(10, 40) as u32;
                    }
                    kind
                };
                next_id += 1;
                let entry = report.kinds.entry(kind.name()).or_default();
                entry.started += 1;
                report.sessions += 1;
                match start(cfg, kind, next_id, &mut rng, now, &mut selector, i) {
                    Ok(s) => slots[i] = Some(s),
                    Err(msg) => {
                        report.connect_errors += 1;
                        fail(&mut report, kind, msg);
                    }
                }
            }
            let Some(s) = &mut slots[i] else { continue };
            running += 1;
            let stalled = now.saturating_sub(s.last_progress) > timeout;
            if stalled || now > grace {
                let why = if stalled {
                    format!("no progress for {:.1} s", cfg.session_timeout.as_secs_f64())
                } else {
                    "unfinished when the run ended".to_owned()
                };
                let msg = format!(
                    "session {} ({}): {why}; {} of {} bytes sent, {} echoed",
                    s.id,
                    s.kind.name(),
                    s.sent,
                    s.total,
                    s.recvd,
                );
                let kind = s.kind;
                if !kind.completes() {
                    // Never reading, it may rightly be held up by the
                    // server's backpressure: end it as it would have ended.
                    if let Link::Open(stream) = &s.link {
                        let _ = SockRef::from(stream).set_linger(Some(Duration::ZERO));
                    }
                    close(&mut selector, &mut slots[i]);
                    report.completed += 1;
                    report.kinds.entry(kind.name()).or_default().ok += 1;
                    continue;
                }
                close(&mut selector, &mut slots[i]);
                report.stalls += 1;
                fail(&mut report, kind, msg);
                continue;
            }
            set_interest(&mut selector, s, i, now);
        }
        if running == 0 && now >= stop {
            break;
        }
        selector
            .select(&mut events, Some(Duration::from_millis(5)))
            .map_err(|e| anyhow!("select: {}", describe(&e)))?;
        for ev in &events {
            let i = ev.token().0;
            let Some(s) = slots.get_mut(i).and_then(Option::as_mut) else {
                continue;
            };
            let now = now_ns();
            let end = step(
                cfg,
                s,
                &mut buf,
                &mut scratch,
                &mut report,
                now,
                ev.is_writable(),
            );
            if let Some(end) = end {
                let kind = s.kind;
                close(&mut selector, &mut slots[i]);
                match end {
                    End::Ok => {
                        report.completed += 1;
                        report.kinds.entry(kind.name()).or_default().ok += 1;
                    }
                    End::Failed(what, msg) => {
                        match what {
                            Failure::Mismatch => report.mismatches += 1,
                            Failure::Connect => report.connect_errors += 1,
                            Failure::Lost => report.lost += 1,
                        }
                        fail(&mut report, kind, msg);
                    }
                }
            }
        }
    }
    report.failures = report.mismatches + report.lost + report.stalls + report.connect_errors;
    Ok(report)
}

fn fail(report: &mut ChaosReport, kind: Kind, msg: String) {
    report.kinds.entry(kind.name()).or_default().failed += 1;
    if report.first_failure.is_none() {
        report.first_failure = Some(msg);
    }
}
