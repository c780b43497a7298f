//! Per-source caps, counted across all workers and touched on accept and
//! close only, never per message: `--max-per-ip` (connections open from one
//! client address) and `--max-pending-headers-per-ip` (connections on
//! PROXY listeners still waiting for their header, from one TCP peer).
//! Each map holds one entry per address with something counted, so it
//! shrinks as the connections go.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Connections counted per address, under a cap given on each admission.
#[derive(Debug, Default)]
pub struct Tally {
    open: Mutex<HashMap<IpAddr, u32>>,
}

impl Tally {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, u32>> {
        // A worker that panicked while counting left the map consistent:
        // every update is a single insert or decrement.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Count a new connection from `ip`; `Err(cap)` when `cap` are counted.
    pub fn admit(&self, ip: IpAddr, cap: u32) -> Result<(), u32> {
        let mut open = self.lock();
        let count = open.entry(ip).or_insert(0);
        if *count >= cap {
            if *count == 0 {
                open.remove(&ip);
            }
            return Err(cap);
        }
        *count += 1;
        Ok(())
    }

    /// A connection admitted from `ip` is gone.
    pub fn release(&self, ip: IpAddr) {
        let mut open = self.lock();
        if let Some(count) = open.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&ip);
            }
        }
    }

    /// Addresses with something counted.
    #[cfg(test)]
    fn sources(&self) -> usize {
        self.lock().len()
    }
}

/// `--max-per-ip`: connections open at once from one client address.
#[derive(Debug)]
pub struct PerIp {
    cap: Option<u32>,
    tally: Tally,
}

impl PerIp {
    pub fn new(cap: Option<u32>) -> PerIp {
        PerIp {
            cap,
            tally: Tally::default(),
        }
    }

    /// Count a new connection from `ip`; `Err(cap)` when it is over the cap.
    pub fn admit(&self, ip: IpAddr) -> Result<(), u32> {
        match self.cap {
            Some(cap) => self.tally.admit(ip, cap),
            None => Ok(()),
        }
    }

    /// A connection admitted from `ip` closed.
    pub fn release(&self, ip: IpAddr) {
        if self.cap.is_some() {
            self.tally.release(ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{PerIp, Tally};

    #[test]
    fn caps_each_address_separately_and_frees_on_release() {
        let limit = PerIp::new(Some(2));
        let a = "127.0.0.1".parse().unwrap();
        let b = "127.0.0.2".parse().unwrap();
        assert_eq!(limit.admit(a), Ok(()));
        assert_eq!(limit.admit(a), Ok(()));
        assert_eq!(limit.admit(a), Err(2));
        assert_eq!(limit.admit(b), Ok(()));
        limit.release(a);
        assert_eq!(limit.admit(a), Ok(()));
        assert!(PerIp::new(None).admit(a).is_ok());
    }

    #[test]
    fn a_tally_forgets_an_address_once_nothing_is_counted() {
        let tally = Tally::default();
        let a = "10.0.0.1".parse().unwrap();
        assert_eq!(tally.admit(a, 1), Ok(()));
        assert_eq!(tally.admit(a, 1), Err(1));
        assert_eq!(tally.admit("10.0.0.2".parse().unwrap(), 0), Err(0));
        assert_eq!(tally.sources(), 1, "a refusal leaves no entry behind");
        tally.release(a);
        assert_eq!(tally.sources(), 0);
    }
}
