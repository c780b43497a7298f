//! Loop statistics: plain counters in each worker, published to atomics for
//! the periodic `stats` line only when it is enabled.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// One worker's counters. Totals since start, except the gauges.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counters {
    pub accepted: u64,
    pub closed: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Reads that returned data: one per message in ping-pong traffic.
    pub messages: u64,
    pub datagrams: u64,
    pub datagrams_dropped: u64,
    pub wakeups: u64,
    pub events: u64,
    /// Nanoseconds spent blocked in the selector (only measured with stats).
    pub wait_ns: u64,
    /// Nanoseconds of loop time, waiting included (only measured with stats).
    pub loop_ns: u64,
    /// Gauge: connections whose reading is paused by backpressure.
    pub paused: u64,
    /// Gauge: bytes queued for sending now, and the highest it has been.
    pub queued: u64,
    pub peak_queued: u64,
    /// Gauge: connections on the zero-copy (splice) path.
    pub spliced: u64,
    /// Gauge: bytes counted in the memory budget (`--max-memory`).
    pub held: u64,
    /// Gauge: connections whose reading is paused by the memory budget.
    pub budget_paused: u64,
    /// Gauge: connections in the idle-timeout list (one per open
    /// connection with `--idle-timeout`, else 0).
    pub idle_tracked: u64,
}

impl Counters {
    pub fn add(&mut self, other: &Counters) {
        self.accepted += other.accepted;
        self.closed += other.closed;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        self.messages += other.messages;
        self.datagrams += other.datagrams;
        self.datagrams_dropped += other.datagrams_dropped;
        self.wakeups += other.wakeups;
        self.events += other.events;
        self.wait_ns += other.wait_ns;
        self.loop_ns += other.loop_ns;
        self.paused += other.paused;
        self.queued += other.queued;
        self.peak_queued += other.peak_queued;
        self.spliced += other.spliced;
        self.held += other.held;
        self.budget_paused += other.budget_paused;
        self.idle_tracked += other.idle_tracked;
    }

    pub fn queue_grew(&mut self, n: usize) {
        self.queued += n as u64;
        self.peak_queued = self.peak_queued.max(self.queued);
    }

    pub fn queue_shrank(&mut self, n: usize) {
        self.queued = self.queued.saturating_sub(n as u64);
    }
}

/// A worker's last published counters, readable from other threads.
#[derive(Debug, Default)]
pub struct Published {
    cells: [AtomicU64; 18],
}

impl Published {
    pub fn store(&self, c: &Counters) {
        let values = [
            c.accepted,
            c.closed,
            c.bytes_in,
            c.bytes_out,
            c.messages,
            c.datagrams,
            c.datagrams_dropped,
            c.wakeups,
            c.events,
            c.wait_ns,
            c.loop_ns,
            c.paused,
            c.queued,
            c.peak_queued,
            c.spliced,
            c.held,
            c.budget_paused,
            c.idle_tracked,
        ];
        for (cell, value) in self.cells.iter().zip(values) {
            cell.store(value, Relaxed);
        }
    }

    pub fn load(&self) -> Counters {
        let v: Vec<u64> = self.cells.iter().map(|c| c.load(Relaxed)).collect();
        Counters {
            accepted: v[0],
            closed: v[1],
            bytes_in: v[2],
            bytes_out: v[3],
            messages: v[4],
            datagrams: v[5],
            datagrams_dropped: v[6],
            wakeups: v[7],
            events: v[8],
            wait_ns: v[9],
            loop_ns: v[10],
            paused: v[11],
            queued: v[12],
            peak_queued: v[13],
            spliced: v[14],
            held: v[15],
            budget_paused: v[16],
            idle_tracked: v[17],
        }
    }
}

/// The periodic line: totals, and rates over the last interval.
pub fn line(now: &Counters, before: &Counters, interval: Duration) -> String {
    let secs = interval.as_secs_f64().max(1e-9);
    let wakeups = now.wakeups.saturating_sub(before.wakeups);
    let events = now.events.saturating_sub(before.events);
    let waited = now.wait_ns.saturating_sub(before.wait_ns) as f64;
    let looped = now.loop_ns.saturating_sub(before.loop_ns) as f64;
    format!(
        "stats open={} accepted={} bytes_in={} bytes_out={} msgs_per_sec={:.0} wakeups={} \
         events_per_wakeup={:.2} wait_share={:.2} paused={} peak_queued={} spliced={} datagrams={} \
         held={} budget_paused={} idle_tracked={}",
        now.accepted.saturating_sub(now.closed),
        now.accepted,
        now.bytes_in,
        now.bytes_out,
        now.messages.saturating_sub(before.messages) as f64 / secs,
        now.wakeups,
        if wakeups == 0 {
            0.0
        } else {
            events as f64 / wakeups as f64
        },
        if looped == 0.0 { 1.0 } else { waited / looped },
        now.paused,
        now.peak_queued,
        now.spliced,
        now.datagrams,
        now.held,
        now.budget_paused,
        now.idle_tracked,
    )
}

/// The shutdown line, for people: `summary: connections 3, bytes echoed
/// 17,700,160, datagrams echoed 0`.
pub fn summary(total: &Counters) -> String {
    format!(
        "summary: connections {}, bytes echoed {}, datagrams echoed {}",
        thousands(total.accepted),
        thousands(total.bytes_out),
        thousands(total.datagrams),
    )
}

/// `1234567` as `1,234,567`: the rule echo-bench's report uses for numbers
/// people read (the two binaries share no crate, so the rule is repeated).
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_round_trips_and_line_has_every_field() {
        let c = Counters {
            accepted: 3,
            closed: 1,
            bytes_in: 10,
            bytes_out: 9,
            messages: 40,
            wakeups: 8,
            events: 16,
            wait_ns: 750,
            loop_ns: 1000,
            peak_queued: 5,
            spliced: 2,
            held: 4096,
            budget_paused: 2,
            idle_tracked: 1,
            ..Counters::default()
        };
        let p = Published::default();
        p.store(&c);
        let back = p.load();
        assert_eq!(back.bytes_out, 9);
        assert_eq!(back.peak_queued, 5);
        let l = line(&back, &Counters::default(), Duration::from_secs(2));
        for field in [
            "open=2",
            "accepted=3",
            "bytes_in=10",
            "bytes_out=9",
            "msgs_per_sec=20",
            "wakeups=8",
            "events_per_wakeup=2.00",
            "wait_share=0.75",
            "paused=0",
            "peak_queued=5",
            "spliced=2",
            "held=4096",
            "budget_paused=2",
            "idle_tracked=1",
        ] {
            assert!(l.contains(field), "{field} missing in {l}");
        }
    }

    #[test]
    fn thousands_separators_as_echo_bench_prints_them() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(17_700_160), "17,700,160");
        assert_eq!(thousands(u64::MAX), "18,446,744,073,709,551,615");
    }

    #[test]
    fn summary_line_groups_digits() {
        let c = Counters {
            accepted: 1234,
            bytes_out: 17_700_160,
            datagrams: 5,
            ..Counters::default()
        };
        assert_eq!(
            summary(&c),
            "summary: connections 1,234, bytes echoed 17,700,160, datagrams echoed 5"
        );
    }
}
