//! Faults echo-bench saw, per connection: what happened instead of a clean
//! echo, and where in the echo stream. Counted per kind, with the first
//! events listed exactly (connection, offset, measured delay). This module
//! sits on the floor: it imports nothing of echo-bench's.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A kind of fault. The list is [`KINDS`]: written once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A connection's echoes came back later than `--delay-threshold`.
    Delayed,
    /// No echoed byte for `--stall-after` while bytes were owed.
    Stalled,
    /// The server closed (FIN) while echoes were owed.
    Closed,
    /// The connection was reset (RST).
    Reset,
    /// An echoed byte differed from the one sent.
    Corrupted,
    /// UDP: a datagram never echoed within the timeout.
    Lost,
    /// UDP: a datagram echoed more than once.
    Duplicated,
    /// UDP: an echo that came back before the echo of an earlier datagram.
    Reordered,
}

/// Every kind with its name, in report order.
pub const KINDS: [(&str, Kind); 8] = [
    ("delayed", Kind::Delayed),
    ("stalled", Kind::Stalled),
    ("closed", Kind::Closed),
    ("reset", Kind::Reset),
    ("corrupted", Kind::Corrupted),
    ("lost", Kind::Lost),
    ("duplicated", Kind::Duplicated),
    ("reordered", Kind::Reordered),
];

impl Kind {
    /// Its name in flags and reports.
    pub fn name(self) -> &'static str {
        KINDS
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("?", |(n, _)| n)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `--expect-fault KIND[,KIND...]`.
pub fn parse_kinds(s: &str) -> Result<Vec<Kind>, String> {
    s.split(',')
        .map(|w| {
            let w = w.trim();
            KINDS
                .iter()
                .find(|(n, _)| *n == w)
                .map(|(_, k)| *k)
                .ok_or_else(|| {
                    let names: Vec<&str> = KINDS.iter().map(|(n, _)| *n).collect();
                    format!("unknown fault {w:?} (one of {})", names.join(", "))
                })
        })
        .collect()
}

/// At most this many events are listed; the rest are only counted.
pub const MAX_EVENTS: usize = 100;

/// One fault on one connection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Its kind's name.
    pub kind: String,
    /// The connection (UDP: socket) id, as in the byte patterns.
    pub connection: u64,
    /// Offset in the connection's echo stream, bytes: where the fault
    /// begins (the byte that differed, the bytes echoed before the close,
    /// reset or stall, the first delayed message's first byte).
    pub offset: u64,
    /// `delayed`: the measured delay, µs (the least latency of the delayed
    /// messages); `null` otherwise.
    pub delay_us: Option<f64>,
}

/// The faults of a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Faults {
    /// Faults seen, per kind (every kind listed, 0 if none).
    pub seen: BTreeMap<String, u64>,
    /// The failures (errors, mismatches, duplicates) each kind accounts for.
    pub failures: BTreeMap<String, u64>,
    /// The first events, at most [`MAX_EVENTS`], TCP only.
    pub events: Vec<Event>,
    /// Events seen beyond those listed.
    pub events_dropped: u64,
}

impl Faults {
    /// No fault yet, every kind at 0.
    pub fn new() -> Faults {
        let zero = || KINDS.iter().map(|(n, _)| ((*n).to_owned(), 0)).collect();
        Faults {
            seen: zero(),
            failures: zero(),
            events: Vec::new(),
            events_dropped: 0,
        }
    }

    /// Count `n` faults of `kind`, of which `failures` are counted as
    /// failures (errors, mismatches, duplicates) too.
    pub fn count(&mut self, kind: Kind, n: u64, failures: u64) {
        *self.seen.entry(kind.name().to_owned()).or_default() += n;
        *self.failures.entry(kind.name().to_owned()).or_default() += failures;
    }

    /// Record one event of `kind` (counted, and listed while there is room).
    pub fn event(
        &mut self,
        kind: Kind,
        connection: u64,
        offset: u64,
        delay_us: Option<f64>,
        failure: bool,
    ) {
        self.count(kind, 1, u64::from(failure));
        self.list(Event {
            kind: kind.name().to_owned(),
            connection,
            offset,
            delay_us,
        });
    }

    fn list(&mut self, e: Event) {
        if self.events.len() < MAX_EVENTS {
            self.events.push(e);
        } else {
            self.events_dropped += 1;
        }
    }

    /// How many of `kind` were seen.
    pub fn seen(&self, kind: Kind) -> u64 {
        self.seen.get(kind.name()).copied().unwrap_or(0)
    }

    /// The failures faults of the `expected` kinds account for.
    pub fn excused(&self, expected: &[Kind]) -> u64 {
        expected
            .iter()
            .map(|k| self.failures.get(k.name()).copied().unwrap_or(0))
            .sum()
    }

    /// Add another worker's or report's faults.
    pub fn merge(&mut self, o: &Faults) {
        for (k, n) in &o.seen {
            *self.seen.entry(k.clone()).or_default() += n;
        }
        for (k, n) in &o.failures {
            *self.failures.entry(k.clone()).or_default() += n;
        }
        for e in &o.events {
            self.list(e.clone());
        }
        self.events_dropped += o.events_dropped;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_by_name_and_counts_merge() {
        assert_eq!(
            parse_kinds("reset,corrupted"),
            Ok(vec![Kind::Reset, Kind::Corrupted])
        );
        assert!(parse_kinds("reset,bogus")
            .unwrap_err()
            .contains("unknown fault \"bogus\""));
        let mut a = Faults::new();
        a.event(Kind::Reset, 3, 65536, None, true);
        a.count(Kind::Lost, 5, 0);
        let mut b = Faults::new();
        b.merge(&a);
        b.merge(&a);
        assert_eq!(b.seen(Kind::Reset), 2);
        assert_eq!(b.seen(Kind::Lost), 10);
        assert_eq!(b.excused(&[Kind::Reset]), 2);
        assert_eq!(b.excused(&[Kind::Lost]), 0);
        assert_eq!(b.events.len(), 2);
        for _ in 0..MAX_EVENTS {
            b.event(Kind::Closed, 1, 0, None, true);
        }
        assert_eq!(b.events.len(), MAX_EVENTS);
        assert_eq!(b.events_dropped, 2);
    }
}
