//! The one worker loop every transport runs: enter and leave the measured
//! window, release paced messages, wait on the selector (capped, so the
//! schedule is kept whatever the sockets do), hand readiness to the
//! transport, close reporting intervals, publish progress.
//!
//! A [`Sockets`] implementation owns a transport's sockets and knows how to send, receive and
//! check; the loop owns the timeline. What both need (selector, counts,
//! clock, pacer) is the worker's [`Core`].

use crate::net::describe;
use crate::pace::Pacer;
use crate::plan::{ns, Config, Handshake, IntervalSample, Schedule, Share};
use crate::stats::{new_histogram, Stats};
use anyhow::{anyhow, Result};
use hdrhistogram::Histogram;
use selector::{Events, Selector, Token};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The pacing timer's token; sockets use their index.
pub const TIMER: Token = Token(usize::MAX);

/// The longest single wait: the schedule is checked at least this often.
const MAX_WAIT: Duration = Duration::from_millis(50);

/// What every transport's worker has: the selector, the counts, the clock.
#[derive(Debug)]
pub struct Core<'a> {
    /// The point being measured.
    pub cfg: &'a Config,
    /// This worker's connections and rate.
    pub share: Share,
    /// The worker's selector.
    pub selector: Selector,
    /// The wait's event buffer.
    pub events: Events,
    /// Counts per target (index as in `cfg.targets`).
    pub stats: Vec<Stats>,
    /// The schedule's start; the worker's clock counts from it.
    pub origin: Instant,
    /// Inside the measured window.
    pub in_window: bool,
    /// Still sending (false once the window is over).
    pub sending: bool,
    /// Open-loop pacing.
    pub pacer: Option<Pacer>,
    /// Messages echoed since the start, for the progress line.
    pub echoed: u64,
    interval: Option<Interval>,
}

/// The current reporting interval's counts.
#[derive(Debug)]
struct Interval {
    len: u64,
    index: u64,
    /// Its end, ns since the schedule's start.
    end: u64,
    window_start: u64,
    latency: Histogram<u64>,
    service: Option<Histogram<u64>>,
    messages: u64,
    bytes: u64,
    tx: mpsc::Sender<IntervalSample>,
}

impl<'a> Core<'a> {
    /// A worker core for `share` of `cfg`, with room for `sockets` events.
    ///
    /// # Errors
    ///
    /// When the selector cannot be created.
    pub fn new(cfg: &'a Config, share: Share, sockets: usize) -> Result<Core<'a>> {
        let selector = Selector::with_backend(cfg.backend)
            .map_err(|e| anyhow!("create {} selector: {}", cfg.backend, describe(&e)))?;
        Ok(Core {
            cfg,
            share,
            selector,
            // Room for every socket at once: a level-triggered wait that
            // cannot take all that is ready serves the descriptors it just
            // reported before the ones it left over, which skews latency at
            // 10,000 connections.
            events: Events::with_capacity(sockets + 8),
            stats: cfg.targets.iter().map(|_| Stats::new()).collect(),
            origin: Instant::now(),
            in_window: false,
            sending: true,
            pacer: None,
            echoed: 0,
            interval: None,
        })
    }

    /// Nanoseconds since the schedule's start.
    pub fn now(&self) -> u64 {
        ns(self.origin.elapsed())
    }

    /// The counts of connection `id`'s target.
    pub fn stats_of(&mut self, id: u64) -> &mut Stats {
        let t = self.cfg.target_of(id);
        &mut self.stats[t]
    }

    /// Failures so far, all targets.
    pub fn failures(&self) -> u64 {
        self.stats
            .iter()
            .map(|s| s.errors.total() + s.mismatches + s.duplicated)
            .sum()
    }

    /// Count a message of connection `id` whose echo completed at `now`;
    /// `due` is when it was due (closed loop: sent), `sent` when its first
    /// byte went out.
    pub fn complete(&mut self, id: u64, now: u64, due: u64, sent: u64) {
        self.echoed += 1;
        if !self.in_window {
            return;
        }
        let bytes = self.cfg.size;
        let response = now.saturating_sub(due);
        let service = now.saturating_sub(sent);
        let open_loop = self.cfg.rate.is_some();
        // With one target and intervals on, the interval's histograms are
        // the only ones recorded per message; each is added to the totals
        // when it closes. Reporting intervals then cost no work per message.
        let folded = self.interval.is_some() && self.stats.len() == 1;
        let s = self.stats_of(id);
        if folded {
            s.count(bytes);
        } else {
            s.record(response, bytes);
            if open_loop {
                s.record_service(service);
            }
        }
        if let Some(iv) = &mut self.interval {
            iv.latency.saturating_record(response.max(1));
            if let Some(h) = &mut iv.service {
                h.saturating_record(service.max(1));
            }
            iv.messages += 1;
            iv.bytes += bytes as u64;
        }
    }

    fn start_window(&mut self, window_start: u64, hs: &Handshake) {
        self.in_window = true;
        for s in &mut self.stats {
            s.start_window();
        }
        if let (Some(len), Some(tx)) = (self.cfg.interval, &hs.intervals) {
            let len = ns(len).max(1);
            self.interval = Some(Interval {
                len,
                index: 0,
                end: window_start + len,
                window_start,
                latency: new_histogram(),
                service: self.cfg.rate.map(|_| new_histogram()),
                messages: 0,
                bytes: 0,
                tx: tx.clone(),
            });
        }
    }

    /// Send the interval that ends by `now` (or, `last`, the one under way).
    fn close_interval(&mut self, now: u64, last: bool) {
        match &self.interval {
            Some(iv) if last || now >= iv.end => {}
            _ => return,
        }
        let failures = self.failures();
        let Some(iv) = &mut self.interval else { return };
        if let [only] = &mut self.stats[..] {
            only.fold(&iv.latency, iv.service.as_ref());
        }
        let end = if last { now.min(iv.end) } else { iv.end };
        let fresh = iv.service.as_ref().map(|_| new_histogram());
        let sample = IntervalSample {
            index: iv.index,
            end: end - iv.window_start,
            latency: std::mem::replace(&mut iv.latency, new_histogram()),
            service: std::mem::replace(&mut iv.service, fresh),
            messages: std::mem::take(&mut iv.messages),
            bytes: std::mem::take(&mut iv.bytes),
            failures,
        };
        // The collector gone means the run is over; nothing to tell.
        let _ = iv.tx.send(sample);
        iv.index += 1;
        iv.end += iv.len;
        if last {
            self.interval = None;
        }
    }

    fn next_interval(&self) -> u64 {
        self.interval.as_ref().map_or(u64::MAX, |iv| iv.end)
    }
}

/// The sockets of one worker, as the loop drives them.
pub trait Sockets<'a> {
    /// The worker's shared state.
    fn core(&mut self) -> &mut Core<'a>;
    /// Sockets (connections) of this worker.
    fn count(&self) -> usize;
    /// The window starts: forget which sockets were served.
    fn start_window(&mut self);
    /// Send what socket `i` may send now.
    fn send(&mut self, i: usize);
    /// The pacer released one more message for socket `i`.
    fn release(&mut self, i: usize);
    /// Socket `i` is readable (or failed) and/or writable.
    fn ready(&mut self, i: usize, readable: bool, writable: bool);
    /// Called once per loop turn, before waiting.
    fn tick(&mut self, _now: u64) {}
    /// Nothing is owed any more: the drain may end early.
    fn idle(&self) -> bool;
}

/// Run `t` through the schedule `s`: warm-up, window, drain.
///
/// # Errors
///
/// When the pacing timer cannot be set up or the selector fails.
pub fn drive<'a, T: Sockets<'a>>(t: &mut T, s: &Schedule, hs: &Handshake) -> Result<()> {
    let mut marks = s.marks();
    let n = t.count();
    {
        let core = t.core();
        core.origin = s.start;
        if let Some(rate) = core.share.rate.filter(|_| n > 0) {
            let ramp = ns(core.cfg.ramp);
            let mut pacer = Pacer::new(rate, n as u64, ramp, &mut core.selector, TIMER)
                .map_err(|e| anyhow!("pacing timer: {}", describe(&e)))?;
            pacer
                .start(core.now())
                .map_err(|e| anyhow!("pacing timer: {}", describe(&e)))?;
            core.pacer = Some(pacer);
        }
    }
    for i in 0..n {
        t.send(i);
    }
    loop {
        let core = t.core();
        let now = core.now();
        if let Some(at) = hs.stop.at() {
            marks.stop_at(at);
        }
        if !core.in_window && core.sending && now >= marks.window_start && now < marks.window_end {
            core.start_window(marks.window_start, hs);
            t.start_window();
        }
        let core = t.core();
        if core.sending && now >= marks.window_end {
            core.sending = false;
            core.in_window = false;
            core.close_interval(now.min(marks.window_end), true);
            if let Some(p) = &mut core.pacer {
                p.stop(&mut core.selector);
            }
        }
        if !core.sending && (now >= marks.drain_end || t.idle()) {
            return Ok(());
        }
        let core = t.core();
        core.close_interval(now, false);
        let wake = marks.next_wake(now, core.sending).min(core.next_interval());
        t.tick(now);
        if t.core().sending {
            while let Some(i) = t.core().pacer.as_mut().and_then(|p| p.pop(now)) {
                t.release(i);
            }
        }
        let core = t.core();
        let timeout = Duration::from_nanos(wake.saturating_sub(now)).min(MAX_WAIT);
        core.selector
            .select(&mut core.events, Some(timeout))
            .map_err(|e| anyhow!("select: {}", describe(&e)))?;
        let events = std::mem::take(&mut core.events);
        for ev in &events {
            if ev.token() == TIMER {
                if let Some(p) = &mut t.core().pacer {
                    p.acknowledge();
                }
                continue;
            }
            let readable = ev.is_readable() || ev.is_error_or_hangup();
            t.ready(ev.token().0, readable, ev.is_writable());
        }
        let core = t.core();
        core.events = events;
        hs.progress.echoed.store(core.echoed, Ordering::Relaxed);
        hs.progress
            .failures
            .store(core.failures(), Ordering::Relaxed);
    }
}
