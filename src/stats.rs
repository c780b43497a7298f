//! Loop statistics: plain counters in each worker, published to atomics for
//! the periodic `stats` line and the metrics endpoint only when one is on.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::budget::Budget;

/// Declares the counter set once: the `Counters` struct, its field names in
/// order, adding, and the atomic mirror other threads read. Adding a counter
/// is one line here.
macro_rules! counter_set {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// One worker's counters. Totals since start, except the gauges.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct Counters {
            $($(#[$doc])* pub $name: u64,)*
        }

        impl Counters {
            /// How many counters there are.
            pub const LEN: usize = [$(stringify!($name)),*].len();
            /// Their names, in declaration order (as [`Counters::values`]).
            #[allow(dead_code)]
            pub const NAMES: [&'static str; Self::LEN] = [$(stringify!($name)),*];

            /// Every value, in declaration order.
            pub fn values(&self) -> [u64; Self::LEN] {
                [$(self.$name),*]
            }

            fn from_values(v: [u64; Self::LEN]) -> Counters {
                let [$($name),*] = v;
                Counters { $($name),* }
            }
        }
    };
}

counter_set! {
    accepted,
    closed,
    /// Connections closed at once by `--max-per-ip`.
    refused_per_ip,
    /// Connections on proxy listeners closed for a missing, malformed or
    /// oversized PROXY header.
    refused_proxy,
    /// Connections on proxy listeners closed at accept: their source is
    /// not in `--proxy-from`.
    refused_untrusted,
    bytes_in,
    bytes_out,
    /// Of `bytes_out`, those still unacknowledged in sockets closed at the
    /// shutdown deadline: the close may reset them, so the summary does not
    /// count them as echoed.
    bytes_cut,
    /// Reads that returned data: one per message in ping-pong traffic.
    messages,
    datagrams,
    /// Datagrams not echoed: their source port is a small service's.
    dropped_reflection,
    /// Datagrams not echoed: over `--udp-rate`.
    dropped_rate,
    /// Datagrams whose echo the kernel would not send.
    dropped_send,
    wakeups,
    events,
    /// Nanoseconds spent blocked in the selector (only measured with stats).
    wait_ns,
    /// Nanoseconds of loop time, waiting included (only measured with stats).
    loop_ns,
    /// Gauge: connections whose reading is paused by backpressure.
    paused,
    /// Gauge: bytes queued for sending now.
    queued,
    /// The highest `queued` has been.
    peak_queued,
    /// Gauge: connections on the zero-copy (splice) path.
    spliced,
    /// Gauge: bytes counted in the memory budget (`--max-memory`).
    held,
    /// Gauge: connections whose reading is paused by the memory budget.
    budget_paused,
    /// Gauge: connections in the idle-timeout list (one per open
    /// connection with `--idle-timeout`, else 0).
    idle_tracked,
    /// Faults injected (`--fault`), one per kind in the order of
    /// [`crate::fault::KINDS`] (a unit test checks the order).
    fault_delay,
    fault_rate,
    fault_stall,
    fault_slow_read,
    fault_close,
    fault_reset,
    fault_corrupt,
    fault_drop,
    fault_duplicate,
    fault_reorder,
}

impl Counters {
    pub fn add(&mut self, other: &Counters) {
        let mut sum = self.values();
        for (a, b) in sum.iter_mut().zip(other.values()) {
            *a += b;
        }
        *self = Counters::from_values(sum);
    }

    /// The fault counters, in the order of [`crate::fault::KINDS`].
    pub fn faults_injected(&self) -> [u64; FAULT_KINDS] {
        let all = self.values();
        std::array::from_fn(|i| all[FIRST_FAULT + i])
    }

    /// One more fault of `kind` took effect.
    pub fn fault_injected(&mut self, kind: crate::fault::Kind) {
        let mut all = self.values();
        all[FIRST_FAULT + kind.index()] += 1;
        *self = Counters::from_values(all);
    }

    pub fn queue_grew(&mut self, n: usize) {
        self.queued += n as u64;
        self.peak_queued = self.peak_queued.max(self.queued);
    }

    pub fn queue_shrank(&mut self, n: usize) {
        self.queued = self.queued.saturating_sub(n as u64);
    }
}

/// The fault counters: the last [`FAULT_KINDS`] of the set.
const FAULT_KINDS: usize = crate::fault::KINDS.len();
const FIRST_FAULT: usize = Counters::LEN - FAULT_KINDS;

/// What the memory budget and the gauges count for one connection. Taken
/// before a turn and compared after it, so each is changed in one place.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gauges {
    /// Bytes held, as the memory budget counts them (`held`).
    pub footprint: usize,
    /// Bytes received and not yet sent back (`queued`).
    pub pending: usize,
    /// Paused by backpressure (`paused`).
    pub paused: bool,
    /// Stopped by the memory budget (`budget_paused`).
    pub starved: bool,
    /// On the zero-copy path (`spliced`).
    pub spliced: bool,
}

impl Gauges {
    /// A holder that only holds `bytes` of memory.
    pub fn holding(bytes: usize) -> Gauges {
        Gauges {
            footprint: bytes,
            ..Gauges::default()
        }
    }

    /// Tell the budget and the statistics what changed since `before`.
    #[inline]
    pub fn account(self, before: Gauges, c: &mut Counters, budget: &Budget) {
        if self == before {
            return; // the common turn: all echoed at once
        }
        if self.footprint > before.footprint {
            budget.charge(self.footprint - before.footprint);
        } else if self.footprint < before.footprint {
            budget.release(before.footprint - self.footprint);
        }
        c.held = c.held + self.footprint as u64 - before.footprint as u64;
        if (self.pending > 0) != (before.pending > 0) {
            budget.holding(self.pending > 0);
        }
        if self.pending > before.pending {
            c.queue_grew(self.pending - before.pending);
        } else if self.pending < before.pending {
            c.queue_shrank(before.pending - self.pending);
        }
        c.paused = c.paused + u64::from(self.paused) - u64::from(before.paused);
        c.budget_paused = c.budget_paused + u64::from(self.starved) - u64::from(before.starved);
        c.spliced = c.spliced + u64::from(self.spliced) - u64::from(before.spliced);
    }
}

/// A worker's last published counters, readable from other threads.
#[derive(Debug)]
pub struct Published {
    cells: [AtomicU64; Counters::LEN],
    /// Connections accepted on each of the worker's listeners, by name;
    /// counted as they happen (once per connection, never per message).
    accepts: Vec<(String, AtomicU64)>,
}

impl Default for Published {
    fn default() -> Published {
        Published {
            cells: std::array::from_fn(|_| AtomicU64::new(0)),
            accepts: Vec::new(),
        }
    }
}

impl Published {
    /// Room for counting accepts on listeners with these names.
    pub fn with_listeners(names: Vec<String>) -> Published {
        Published {
            accepts: names.into_iter().map(|n| (n, AtomicU64::new(0))).collect(),
            ..Published::default()
        }
    }

    /// One more connection accepted on listener `index`.
    pub fn accepted_on(&self, index: usize) {
        if let Some((_, n)) = self.accepts.get(index) {
            n.fetch_add(1, Relaxed);
        }
    }

    /// Each listener's name and its accepts so far.
    pub fn accepts(&self) -> impl Iterator<Item = (&str, u64)> {
        self.accepts
            .iter()
            .map(|(name, n)| (name.as_str(), n.load(Relaxed)))
    }

    pub fn store(&self, c: &Counters) {
        for (cell, value) in self.cells.iter().zip(c.values()) {
            cell.store(value, Relaxed);
        }
    }

    pub fn load(&self) -> Counters {
        Counters::from_values(std::array::from_fn(|i| self.cells[i].load(Relaxed)))
    }
}

/// The periodic line: totals, and rates over the last interval.
pub fn line(now: &Counters, before: &Counters, interval: Duration) -> String {
    let secs = interval.as_secs_f64().max(1e-9);
    let wakeups = now.wakeups.saturating_sub(before.wakeups);
    let events = now.events.saturating_sub(before.events);
    let waited = now.wait_ns.saturating_sub(before.wait_ns) as f64;
    let looped = now.loop_ns.saturating_sub(before.loop_ns) as f64;
    let mut line = format!(
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
    );
    line.push_str(&faults_field(now));
    line
}

/// ` faults_injected=delay:3,reset:1` once a fault took effect, else
/// nothing.
fn faults_field(now: &Counters) -> String {
    let counts: Vec<String> = crate::fault::KINDS
        .iter()
        .zip(now.faults_injected())
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{}:{n}", k.name))
        .collect();
    match counts.is_empty() {
        true => String::new(),
        false => format!(" faults_injected={}", counts.join(",")),
    }
}

/// The shutdown line, for people: `summary: connections 3, bytes echoed
/// 17,700,160, datagrams echoed 0`.
pub fn summary(total: &Counters) -> String {
    format!(
        "summary: connections {}, bytes echoed {}, datagrams echoed {}",
        thousands(total.accepted),
        thousands(total.bytes_out.saturating_sub(total.bytes_cut)),
        thousands(total.datagrams),
    )
}

/// `1234567` as `1,234,567`: the rule echo-bench's report uses for numbers
/// people read (repeated there: the crates both binaries use, fdselector and netaddr, are
/// about sockets and addresses, not about printing numbers).
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
    fn fault_counters_follow_the_kinds() {
        for (i, k) in crate::fault::KINDS.iter().enumerate() {
            let name = format!("fault_{}", k.name.replace('-', "_"));
            assert_eq!(Counters::NAMES[FIRST_FAULT + i], name);
        }
        let mut c = Counters::default();
        assert!(!line(&c, &c, Duration::from_secs(1)).contains("faults"));
        c.fault_injected(crate::fault::Kind::Reset);
        c.fault_injected(crate::fault::Kind::Reset);
        c.fault_injected(crate::fault::Kind::Delay);
        assert_eq!(c.fault_reset, 2);
        assert!(line(&c, &c, Duration::from_secs(1)).ends_with(" faults_injected=delay:1,reset:2"));
    }

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
        assert_eq!(back, c);
        let mut twice = c;
        twice.add(&c);
        assert_eq!(twice.bytes_out, 18);
        assert_eq!(
            twice.values().iter().sum::<u64>(),
            2 * c.values().iter().sum::<u64>()
        );
        let at = Counters::NAMES.iter().position(|&n| n == "bytes_in");
        assert_eq!(
            at.map(|i| c.values()[i]),
            Some(10),
            "names and values line up"
        );
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
