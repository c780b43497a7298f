//! `--max-per-ip`: connections open at once from one address, counted
//! across all workers. Touched on accept and close only, never per message.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

#[derive(Debug)]
pub struct PerIp {
    cap: Option<u32>,
    open: Mutex<HashMap<IpAddr, u32>>,
}

impl PerIp {
    pub fn new(cap: Option<u32>) -> PerIp {
        PerIp {
            cap,
            open: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, u32>> {
        // A worker that panicked while counting left the map consistent:
        // every update is a single insert or decrement.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Count a new connection from `ip`; `Err(cap)` when it is over the cap.
    pub fn admit(&self, ip: IpAddr) -> Result<(), u32> {
        let Some(cap) = self.cap else {
            return Ok(());
        };
        let mut open = self.lock();
        let count = open.entry(ip).or_insert(0);
        if *count >= cap {
            return Err(cap);
        }
        *count += 1;
        Ok(())
    }

    /// A connection admitted from `ip` closed.
    pub fn release(&self, ip: IpAddr) {
        if self.cap.is_none() {
            return;
        }
        let mut open = self.lock();
        if let Some(count) = open.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PerIp;

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
}
