//! Open-loop pacing (`--rate`): when each message is due, and a timerfd
//! that wakes the selector on time.
//!
//! Message `j` of a worker is due `j / rate` seconds after the start and
//! goes to connection `j % n`, so each connection sends every `n / rate`
//! seconds, the connections evenly staggered. The selector's own timeout
//! has millisecond resolution, which at thousands of messages per second
//! would send in bursts and add up to a millisecond to every latency; a
//! timerfd has nanosecond resolution.
//!
//! The timer is periodic and set once: it ticks at every due time, or at
//! every few due times when they are less than [`MIN_TICK`] apart (each
//! tick then releases every message due by then). Messages released late
//! by up to one tick are not excused: latency counts from the due time.

use rustix::time::{
    timerfd_create, timerfd_settime, Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags,
    Timespec,
};
use selector::{Interest, Selector, Token};
use std::io;
use std::os::fd::OwnedFd;

/// The shortest timer period: below it a timer expiry per message would
/// cost more CPU than the messages themselves.
pub const MIN_TICK: u64 = 100_000;

/// The schedule of one worker's messages.
#[derive(Debug)]
pub struct Pacer {
    /// Nanoseconds between messages of this worker.
    gap: f64,
    /// Connections.
    n: u64,
    /// Ramp length in ns (0: full rate at once).
    ramp: f64,
    /// The next message not yet released.
    next: u64,
    timer: OwnedFd,
}

impl Pacer {
    /// A pacer for `rate` messages/s over `n` connections, reached
    /// linearly over the first `ramp` ns, its timer registered in
    /// `selector` under `token`.
    ///
    /// # Errors
    ///
    /// Creating or registering the timerfd.
    pub fn new(
        rate: f64,
        n: u64,
        ramp: u64,
        selector: &mut Selector,
        token: Token,
    ) -> io::Result<Pacer> {
        let timer = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        selector.register(&timer, token, Interest::READABLE)?;
        Ok(Pacer {
            gap: 1e9 / rate.max(1e-9),
            n: n.max(1),
            ramp: ramp as f64,
            next: 0,
            timer,
        })
    }

    /// When message `k` of connection `i` is due (ns since the start).
    pub fn due_time(&self, i: usize, k: u64) -> u64 {
        self.at(k * self.n + i as u64)
    }

    /// When message `j` of the worker is due. During a ramp the rate grows
    /// linearly, so `j` messages are due by `t` when
    /// `j = t^2 / (2 * ramp * gap)`; after it, one every `gap`.
    fn at(&self, j: u64) -> u64 {
        let j = j as f64;
        let in_ramp = self.ramp / (2.0 * self.gap);
        if j < in_ramp {
            (2.0 * self.ramp * j * self.gap).sqrt() as u64
        } else {
            (self.ramp + (j - in_ramp) * self.gap) as u64
        }
    }

    /// The connection whose next message is due by `now`, if any; each call
    /// releases one message.
    pub fn pop(&mut self, now: u64) -> Option<usize> {
        if self.at(self.next) > now {
            return None;
        }
        let i = (self.next % self.n) as usize;
        self.next += 1;
        Some(i)
    }

    /// Start the periodic timer; `now` is ns since the start.
    ///
    /// # Errors
    ///
    /// From timerfd_settime(2).
    pub fn start(&mut self, now: u64) -> io::Result<()> {
        let per_tick = (MIN_TICK as f64 / self.gap).ceil().max(1.0);
        let tick = (per_tick * self.gap) as u64;
        // Zero would disarm the timer; one nanosecond fires at once.
        let first = self.at(self.next).saturating_sub(now).max(1);
        let spec = Itimerspec {
            it_interval: timespec(tick.max(1)),
            it_value: timespec(first),
        };
        timerfd_settime(&self.timer, TimerfdTimerFlags::empty(), &spec)?;
        Ok(())
    }

    /// Consume the timer's expiries so it stops being readable.
    pub fn acknowledge(&mut self) {
        let mut count = [0u8; 8];
        // WouldBlock only means it was already consumed.
        let _ = rustix::io::read(&self.timer, &mut count);
    }

    /// Stop the timer (unregister it) once sending stops.
    pub fn stop(&mut self, selector: &mut Selector) {
        let _ = selector.unregister(&self.timer);
    }
}

fn timespec(ns: u64) -> Timespec {
    Timespec {
        tv_sec: (ns / 1_000_000_000) as i64,
        tv_nsec: (ns % 1_000_000_000) as _,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_go_round_the_connections_on_time() {
        let mut selector = Selector::new().unwrap();
        // 1,000 msg/s over 4 connections: one every ms, each connection every 4 ms.
        let mut p = Pacer::new(1000.0, 4, 0, &mut selector, Token(0)).unwrap();
        let released: Vec<usize> = std::iter::from_fn(|| p.pop(5_500_000)).collect();
        assert_eq!(released, [0, 1, 2, 3, 0, 1]);
        assert_eq!(p.pop(5_999_999), None);
        assert_eq!(p.pop(6_000_000), Some(2));
        assert_eq!(p.due_time(1, 2), 9_000_000);
    }

    #[test]
    fn a_ramp_reaches_the_rate_linearly() {
        let mut selector = Selector::new().unwrap();
        // 1,000 msg/s reached over 2 s: 1,000 messages due in the ramp
        // (half of 2,000), then one per ms.
        let p = Pacer::new(1000.0, 1, 2_000_000_000, &mut selector, Token(0)).unwrap();
        assert_eq!(p.at(0), 0);
        // A quarter of the ramp's messages by half its time.
        assert_eq!(p.at(250), 1_000_000_000);
        assert_eq!(p.at(1000), 2_000_000_000);
        assert_eq!(p.at(1001), 2_001_000_000);
        let gaps: Vec<u64> = (1..5).map(|j| p.at(j + 1) - p.at(j)).collect();
        assert!(
            gaps.windows(2).all(|w| w[0] > w[1]),
            "speeding up: {gaps:?}"
        );
    }

    #[test]
    fn the_timer_wakes_the_selector() {
        let mut selector = Selector::new().unwrap();
        // 100 msg/s: a tick every 10 ms.
        let mut p = Pacer::new(100.0, 1, 0, &mut selector, Token(9)).unwrap();
        assert_eq!(p.pop(0), Some(0));
        let start = std::time::Instant::now();
        p.start(0).unwrap();
        let mut events = selector::Events::with_capacity(4);
        for _ in 0..3 {
            selector
                .select(&mut events, Some(std::time::Duration::from_secs(2)))
                .unwrap();
            assert_eq!(events.iter().next().map(|e| e.token()), Some(Token(9)));
            p.acknowledge();
            selector
                .select(&mut events, Some(std::time::Duration::ZERO))
                .unwrap();
            assert!(events.is_empty(), "acknowledged timer still readable");
        }
        // Three ticks: at 1 ns (the first was due at once), 10 ms, 20 ms.
        let waited = start.elapsed();
        let bounds = std::time::Duration::from_millis(15)..std::time::Duration::from_millis(500);
        assert!(bounds.contains(&waited), "{waited:?}");
    }
}
