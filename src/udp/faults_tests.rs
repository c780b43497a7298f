use std::sync::Arc;

use super::*;
use crate::fault::Faults;

const PEER: &str = "127.0.0.1:5555";

struct Bench {
    faults: UdpFaults,
    budget: Budget,
    counters: Counters,
    out: Vec<Outgoing>,
    now: Instant,
}

impl Bench {
    fn new(specs: &[&str], limit: usize) -> Bench {
        let specs = specs.iter().map(|s| s.parse().unwrap()).collect();
        let faults = Arc::new(Faults::new(specs, 9));
        Bench {
            faults: UdpFaults::new(faults.draw_for(0), vec![None], 0, false),
            budget: Budget::new(limit, 100),
            counters: Counters::default(),
            out: Vec::new(),
            now: Instant::now(),
        }
    }

    /// What receiving `data` sends at once: the bytes of each datagram.
    fn receive(&mut self, data: &[u8]) -> Vec<Vec<u8>> {
        let ctx = &mut Ctx {
            now: self.now,
            budget: &self.budget,
            counters: &mut self.counters,
            out: &mut self.out,
        };
        self.faults.receive(0, PEER.parse().unwrap(), data, ctx);
        self.sent(data)
    }

    /// What is due `after` from the start.
    fn tick(&mut self, after: Duration) -> Vec<Vec<u8>> {
        let ctx = &mut Ctx {
            now: self.now + after,
            budget: &self.budget,
            counters: &mut self.counters,
            out: &mut self.out,
        };
        self.faults.on_timers(ctx);
        self.sent(&[])
    }

    fn sent(&mut self, this: &[u8]) -> Vec<Vec<u8>> {
        self.out
            .drain(..)
            .map(|o| match o.data {
                Data::This => this.to_vec(),
                Data::Held(b) => b.into_vec(),
            })
            .collect()
    }

    fn injected(&self, kind: Kind) -> u64 {
        self.counters.faults_injected()[kind.index()]
    }
}

#[test]
fn reorder_swaps_with_the_next_and_releases_a_lone_one_at_its_bound() {
    let mut b = Bench::new(&["reorder"], 1 << 30);
    assert!(b.receive(b"a").is_empty());
    assert_eq!(b.budget.used(), 1, "a held datagram is in the budget");
    assert_eq!(b.receive(b"b"), [b"b".to_vec(), b"a".to_vec()]);
    assert_eq!(b.injected(Kind::Reorder), 1);
    assert_eq!(b.budget.used(), 0);
    assert!(b.receive(b"c").is_empty());
    assert!(b.tick(REORDER_HOLD - Duration::from_millis(1)).is_empty());
    assert_eq!(b.tick(REORDER_HOLD), [b"c".to_vec()]);
    assert_eq!(b.injected(Kind::Reorder), 1, "released alone: no swap");
    assert_eq!((b.faults.bytes, b.budget.used()), (0, 0));
    assert_eq!(b.faults.next_due(), None);
}

#[test]
fn delay_and_duplicate_combine_and_drop_wins() {
    let mut b = Bench::new(&["delay=10ms", "duplicate"], 1 << 30);
    assert!(b.receive(b"x").is_empty());
    assert_eq!(
        b.tick(Duration::from_millis(10)),
        [b"x".to_vec(), b"x".to_vec()]
    );
    assert_eq!(
        (b.injected(Kind::Delay), b.injected(Kind::Duplicate)),
        (1, 1)
    );
    let mut b = Bench::new(&["drop", "duplicate", "delay=1ms"], 1 << 30);
    assert!(b.receive(b"y").is_empty());
    assert!(b.tick(Duration::from_secs(1)).is_empty());
    assert_eq!(b.injected(Kind::Drop), 1);
}

#[test]
fn past_its_bounds_a_datagram_is_echoed_at_once() {
    let mut b = Bench::new(&["delay=1s"], 1 << 30);
    for _ in 0..MAX_HELD {
        assert!(b.receive(b"held").is_empty());
    }
    assert_eq!(b.receive(b"over"), [b"over".to_vec()]);
    assert_eq!(b.injected(Kind::Delay), MAX_HELD as u64);
    // At shutdown everything held goes out, in the order it came.
    b.faults.flush(&b.budget, &mut b.out);
    assert_eq!(b.sent(&[]).len(), MAX_HELD);
    assert_eq!((b.faults.bytes, b.budget.used()), (0, 0));

    let big = vec![0u8; 60_000];
    let mut b = Bench::new(&["delay=1s"], 1 << 30);
    let held = (0..100).filter(|_| b.receive(&big).is_empty()).count();
    assert_eq!(held, MAX_HELD_BYTES / big.len());

    // The memory budget bounds it too.
    let mut b = Bench::new(&["reorder"], 1000);
    assert_eq!(b.receive(&[1; 2000]), [vec![1; 2000]]);
    assert_eq!(b.budget.used(), 0);
}
