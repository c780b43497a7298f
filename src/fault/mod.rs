//! Injected faults (`--fault`): echo-server as a misbehaving peer on
//! demand. [`spec`] is what a fault is and how it is written; this module
//! keeps the set in force ([`Faults`], shared by every worker and
//! replaceable at run time) and draws, for each new connection, which
//! faults it gets ([`Draw`], one per worker, seeded from `--fault-seed`).
//!
//! A draw happens once per accepted connection and only when some fault is
//! configured; a connection drawn none carries no fault state at all, so
//! the echo path of a server without faults is what it was.

pub mod cli;
pub mod shape;
pub mod spec;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, PoisonError, RwLock};

pub use shape::{End, Shape};
pub use spec::{FaultSpec, Kind, KINDS};

/// The faults in force and the seed their choices come from.
#[derive(Debug)]
pub struct Faults {
    seed: u64,
    list: RwLock<Arc<Vec<FaultSpec>>>,
    /// Whether the list is non-empty: the accept path looks here first.
    any: AtomicBool,
    /// The `--listen` and `--listen-proxy` values as written, for `on=`.
    written: Vec<Written>,
    /// The `--udp` values as written, for `on=`.
    written_udp: Vec<Written>,
}

/// A listen address as written, and what it resolved to.
#[derive(Debug)]
struct Written {
    proxy: bool,
    text: String,
    addrs: Vec<SocketAddr>,
}

impl Faults {
    pub fn new(specs: Vec<FaultSpec>, seed: u64) -> Faults {
        Faults {
            seed,
            any: AtomicBool::new(!specs.is_empty()),
            list: RwLock::new(Arc::new(specs)),
            written: Vec::new(),
            written_udp: Vec::new(),
        }
    }

    /// Where `on=` may point: the `--listen` and `--listen-proxy` values.
    pub fn with_listeners(
        mut self,
        listen: &[netaddr::SocketAddrs],
        proxy: &[netaddr::SocketAddrs],
    ) -> Faults {
        let flags = [(false, listen), (true, proxy)];
        for (proxy, values) in flags {
            for value in values {
                self.written.push(Written {
                    proxy,
                    text: value.as_str().to_owned(),
                    addrs: value.addrs().to_vec(),
                });
            }
        }
        self
    }

    /// The value as written that a listener bound at `local` came from
    /// (a proxy listener's from `--listen-proxy`): the one naming its
    /// address exactly, else one with port 0 and its IP.
    pub fn label(&self, proxy: bool, local: SocketAddr) -> Option<String> {
        written_at(self.written.iter().filter(|w| w.proxy == proxy), local)
    }

    /// Where a UDP fault's `on=` may point: the `--udp` values.
    pub fn with_udp(mut self, udp: &[netaddr::SocketAddrs]) -> Faults {
        self.written_udp = udp
            .iter()
            .map(|value| Written {
                proxy: false,
                text: value.as_str().to_owned(),
                addrs: value.addrs().to_vec(),
            })
            .collect();
        self
    }

    /// The `--udp` value as written that a UDP socket bound at `local`
    /// came from, by the rule of [`Faults::label`].
    pub fn udp_label(&self, local: SocketAddr) -> Option<String> {
        written_at(self.written_udp.iter(), local)
    }

    /// `--fault-seed`, or the one drawn at startup.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The list in force now (connections accepted from now on draw from it).
    pub fn list(&self) -> Arc<Vec<FaultSpec>> {
        Arc::clone(&self.list.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replace the whole list (the run-time control does); connections already open keep what they drew.
    pub fn replace(&self, specs: Vec<FaultSpec>) {
        let mut list = self.list.write().unwrap_or_else(PoisonError::into_inner);
        self.any.store(!specs.is_empty(), Relaxed);
        *list = Arc::new(specs);
    }

    /// No faults for connections accepted from now on.
    pub fn clear(&self) {
        self.replace(Vec::new());
    }

    /// Whether any fault is configured (one relaxed load).
    pub fn any(&self) -> bool {
        self.any.load(Relaxed)
    }

    /// One worker's draws, from a stream of its own: with one worker, the
    /// same seed and the same sequence of connections make the same choices.
    pub fn draw_for(self: &Arc<Faults>, worker: usize) -> Draw {
        let stream = (worker as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Draw {
            faults: Arc::clone(self),
            rng: fastrand::Rng::with_seed(self.seed ^ stream),
        }
    }
}

/// The value among `list` naming `local` exactly, else one with port 0
/// and its IP.
fn written_at<'a>(
    list: impl Iterator<Item = &'a Written> + Clone,
    local: SocketAddr,
) -> Option<String> {
    let any_port = SocketAddr::new(local.ip(), 0);
    list.clone()
        .find(|w| w.addrs.contains(&local))
        .or_else(|| list.clone().find(|w| w.addrs.contains(&any_port)))
        .map(|w| w.text.clone())
}

/// Where the drawn-for thing came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// A stream connection (TCP, behind a proxy, or Unix).
    Stream,
    /// A UDP datagram.
    Datagram,
}

/// A worker's seeded choices.
#[derive(Debug)]
pub struct Draw {
    faults: Arc<Faults>,
    rng: fastrand::Rng,
}

impl Draw {
    pub fn faults(&self) -> &Arc<Faults> {
        &self.faults
    }

    /// The faults one new connection (or datagram) gets: each spec that
    /// applies to its transport and listener (`on`: its address as written
    /// on the command line, `None` for one no flag names), independently
    /// with its probability. Empty, without touching the list or the random
    /// stream, when no fault is configured.
    pub fn draw(&mut self, transport: Transport, on: Option<&str>) -> Vec<FaultSpec> {
        if !self.faults.any() {
            return Vec::new();
        }
        let list = self.faults.list();
        let mut drawn = Vec::new();
        for spec in list.iter() {
            let kind = spec.kind.info();
            let fits = match transport {
                Transport::Stream => kind.tcp,
                Transport::Datagram => kind.udp,
            };
            if !fits || !spec.applies_on(on) {
                continue;
            }
            // One number per applicable spec, whatever its p, so that one
            // spec's p does not shift the others' choices.
            if self.rng.f64() < spec.p {
                drawn.push(spec.clone());
            }
        }
        drawn
    }

    /// What a new stream connection accepted on listener `on` gets: `None`
    /// when it drew no fault that acts on a stream.
    pub fn shape(&mut self, on: Option<&str>) -> Option<Shape> {
        let drawn = self.draw(Transport::Stream, on);
        if drawn.is_empty() {
            return None;
        }
        Shape::new(&drawn, self.rng.u64(..))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(list: &[&str]) -> Vec<FaultSpec> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn choices(seed: u64, worker: usize) -> Vec<bool> {
        let faults = Arc::new(Faults::new(specs(&["reset,p=0.5"]), seed));
        let mut d = faults.draw_for(worker);
        (0..64)
            .map(|_| !d.draw(Transport::Stream, None).is_empty())
            .collect()
    }

    #[test]
    fn the_same_seed_makes_the_same_choices() {
        assert_eq!(choices(7, 0), choices(7, 0));
        assert_ne!(choices(7, 0), choices(8, 0));
        assert_ne!(choices(7, 0), choices(7, 1));
        let chosen = choices(7, 0).iter().filter(|c| **c).count();
        assert!((10..54).contains(&chosen), "{chosen} of 64 at p=0.5");
    }

    #[test]
    fn a_spec_applies_to_its_transport_and_listener() {
        let faults = Arc::new(Faults::new(
            specs(&["delay=5ms", "stall,on=127.0.0.1:7", "drop"]),
            1,
        ));
        let mut d = faults.draw_for(0);
        let kinds = |v: Vec<FaultSpec>| v.iter().map(|s| s.kind).collect::<Vec<_>>();
        assert_eq!(kinds(d.draw(Transport::Stream, None)), [Kind::Delay]);
        assert_eq!(
            kinds(d.draw(Transport::Stream, Some("127.0.0.1:7"))),
            [Kind::Delay, Kind::Stall]
        );
        assert_eq!(
            kinds(d.draw(Transport::Datagram, None)),
            [Kind::Delay, Kind::Drop]
        );
    }

    #[test]
    fn the_list_can_be_replaced_and_cleared() {
        let faults = Arc::new(Faults::new(Vec::new(), 3));
        let mut d = faults.draw_for(0);
        assert!(!faults.any());
        assert!(d.draw(Transport::Stream, None).is_empty());
        faults.replace(specs(&["close,after=10"]));
        assert!(faults.any());
        assert_eq!(d.draw(Transport::Stream, None).len(), 1);
        let before = faults.list();
        faults.clear();
        assert!(d.draw(Transport::Stream, None).is_empty());
        assert_eq!(before.len(), 1, "a snapshot taken stays as it was");
        assert_eq!(faults.seed(), 3);
    }
}
