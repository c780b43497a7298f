//! `--udp-rate`: a token bucket per source address, in a table of bounded
//! size that forgets the least recently seen source first.
//!
//! A flood of datagrams from fresh (spoofed) sources can only push out
//! sources that have been silent longer than every other one in the table;
//! a source that keeps sending stays near the front and keeps its bucket, so
//! the flood cannot reset its cap. Lookup, refresh and eviction are O(1): a
//! map from address to slot, and the slots in a [`Recency`] list.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

use crate::idle::Recency;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    ip: IpAddr,
    /// Bytes that may be sent now: up to one second's worth.
    tokens: f64,
    at: Instant,
}

/// Buckets for at most `cap` sources.
#[derive(Debug)]
pub struct RateTable {
    rate: f64,
    cap: usize,
    index: HashMap<IpAddr, usize>,
    /// Slots `0..len`, least recently seen first: the next to go.
    slots: Recency<Bucket>,
}

impl RateTable {
    /// `rate` bytes per second per source, for at most `cap` sources.
    pub fn new(rate: u64, cap: usize) -> RateTable {
        RateTable {
            rate: rate as f64,
            cap: cap.clamp(1, u32::MAX as usize - 1),
            index: HashMap::new(),
            slots: Recency::default(),
        }
    }

    /// Sources tracked now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether `bytes` from `ip` may be echoed `now`; counts them if so.
    /// Either way `ip` becomes the most recently seen source.
    pub fn admit(&mut self, ip: IpAddr, bytes: usize, now: Instant) -> bool {
        let k = match self.index.get(&ip) {
            Some(&k) => {
                self.slots.touch(k);
                k
            }
            None => self.take_slot(ip, now),
        };
        let Some(slot) = self.slots.get_mut(k) else {
            return true; // every slot in the index is in the list
        };
        let refill = now.saturating_duration_since(slot.at).as_secs_f64() * self.rate;
        slot.tokens = (slot.tokens + refill).min(self.rate);
        slot.at = now;
        if slot.tokens < bytes as f64 {
            return false;
        }
        slot.tokens -= bytes as f64;
        true
    }

    /// A slot for a source not in the table, full bucket, most recently
    /// seen: a new one while there is room, else the least recently seen
    /// source's.
    fn take_slot(&mut self, ip: IpAddr, now: Instant) -> usize {
        let fresh = Bucket {
            ip,
            tokens: self.rate,
            at: now,
        };
        let k = match self.slots.oldest() {
            Some((k, old)) if self.slots.len() >= self.cap => {
                self.index.remove(&old.ip);
                k
            }
            _ => self.slots.len(),
        };
        self.slots.insert(k, fresh);
        self.index.insert(ip, k);
        k
    }
}

#[cfg(test)]
mod tests {
    use super::RateTable;
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::{Duration, Instant};

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x7f00_0000 | n))
    }

    #[test]
    fn buckets_refill_over_time() {
        let mut table = RateTable::new(1000, 16);
        let t0 = Instant::now();
        assert!(table.admit(ip(1), 600, t0));
        assert!(!table.admit(ip(1), 600, t0), "only 400 bytes left");
        assert!(table.admit(ip(1), 600, t0 + Duration::from_millis(300)));
        assert!(
            table.admit(ip(2), 1000, t0),
            "each source has its own bucket"
        );
    }

    #[test]
    fn a_flood_of_new_sources_evicts_the_silent_not_the_busy() {
        let cap = 100;
        let mut table = RateTable::new(1000, cap);
        let t0 = Instant::now();
        let busy = ip(0);
        let silent = ip(1);
        assert!(table.admit(silent, 1000, t0));
        assert!(table.admit(busy, 1000, t0), "the first second's burst");
        for n in 0..10_000u32 {
            assert!(table.len() <= cap);
            table.admit(ip(1000 + n), 1, t0);
            if n % 10 == 0 {
                assert!(
                    !table.admit(busy, 1, t0),
                    "flood source {n} reset the busy bucket"
                );
            }
        }
        assert_eq!(table.len(), cap);
        // The silent source was forgotten: it starts again with a full bucket.
        assert!(table.admit(silent, 1000, t0));
    }
}
