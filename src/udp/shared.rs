//! What every worker's UDP echo shares: the ports of all the server's UDP
//! sockets (the loop guard must know them all, not only the worker's own),
//! and the `--udp-rate` buckets, so that the cap holds per source address
//! whichever worker the kernel hands its datagrams to.
//!
//! Workers find it through a process-wide registry: the first worker's
//! [`UdpEcho`](super::UdpEcho) creates it, the others join it, and it goes
//! when the last of them does.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::Instant;

use super::rate::RateTable;

/// Source addresses `--udp-rate` remembers, for the whole server; past
/// this the least recently seen is forgotten. About 80 bytes each, so at
/// most about 5 MiB.
pub const MAX_TRACKED_SOURCES: usize = 65_536;
/// Independent tables, each behind its own lock, so workers echoing for
/// different sources rarely wait for one another.
const SHARDS: usize = 16;

/// The live shared states: one per server, so one in the binary.
static REGISTRY: Mutex<Vec<Weak<UdpShared>>> = Mutex::new(Vec::new());

/// The state every worker's UDP echo shares.
#[derive(Debug)]
pub struct UdpShared {
    /// Every UDP port the server serves, one entry per socket.
    ports: RwLock<Vec<u16>>,
    /// Bumped whenever `ports` grows, so workers know to copy it again.
    generation: AtomicUsize,
    rate: Option<u64>,
    /// Chosen per process, so no sender can pick addresses that all land
    /// in one shard.
    hasher: RandomState,
    shards: Vec<Mutex<RateTable>>,
}

impl UdpShared {
    /// The server's shared state (created by the first caller), with
    /// `ports` added. A caller asking for another rate (never the case in
    /// one server; unit tests run several in one process) gets a state of
    /// its own.
    pub fn join(ports: &[u16], rate: Option<u64>) -> Arc<UdpShared> {
        let mut registry = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
        registry.retain(|s| s.strong_count() > 0);
        let found = registry
            .iter()
            .filter_map(Weak::upgrade)
            .find(|s| s.rate == rate);
        let shared = found.unwrap_or_else(|| {
            let shared = Arc::new(UdpShared::new(rate));
            registry.push(Arc::downgrade(&shared));
            shared
        });
        drop(registry);
        shared.add_ports(ports);
        shared
    }

    fn new(rate: Option<u64>) -> UdpShared {
        let shards = match rate {
            Some(r) => (0..SHARDS)
                .map(|_| Mutex::new(RateTable::new(r, MAX_TRACKED_SOURCES / SHARDS)))
                .collect(),
            None => Vec::new(),
        };
        UdpShared {
            ports: RwLock::new(Vec::new()),
            generation: AtomicUsize::new(0),
            rate,
            hasher: RandomState::new(),
            shards,
        }
    }

    fn add_ports(&self, ports: &[u16]) {
        let mut all = self.ports.write().unwrap_or_else(PoisonError::into_inner);
        all.extend_from_slice(ports);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Which copy of the port list is current.
    pub fn generation(&self) -> usize {
        self.generation.load(Ordering::Acquire)
    }

    /// Every port the server serves (with repeats).
    pub fn ports(&self) -> Vec<u16> {
        self.ports
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether `bytes` from `ip` may be echoed `now` (always, without
    /// `--udp-rate`); counts them if so.
    pub fn admit(&self, ip: IpAddr, bytes: usize, now: Instant) -> bool {
        if self.shards.is_empty() {
            return true;
        }
        let shard = self.hasher.hash_one(ip) as usize % self.shards.len();
        self.shards[shard]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .admit(ip, bytes, now)
    }
}

#[cfg(test)]
mod tests {
    use super::UdpShared;
    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn workers_of_one_server_share_ports_and_buckets() {
        let first = UdpShared::join(&[7001], Some(1000));
        let second = UdpShared::join(&[7002], Some(1000));
        assert!(Arc::ptr_eq(&first, &second));
        let mut ports = first.ports();
        ports.sort_unstable();
        assert_eq!(ports, [7001, 7002]);
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let now = Instant::now();
        assert!(first.admit(ip, 600, now));
        assert!(!second.admit(ip, 600, now), "one bucket for both");
    }
}
