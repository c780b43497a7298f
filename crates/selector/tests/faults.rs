//! The fault-injecting backend: each fault does what it says, and the
//! selector's own guarantees (EINTR retried, unknown descriptors dropped)
//! hold under it.
#![cfg(feature = "faults")]

use selector::{Events, Fault, FaultPlan, Interest, Selector, Token};
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::Duration;

const SHORT: Option<Duration> = Some(Duration::from_millis(50));

fn tokens(events: &Events) -> Vec<usize> {
    events.iter().map(|e| e.token().0).collect()
}

#[test]
fn interrupt_is_retried_and_spurious_reports_everything() {
    let plan = FaultPlan::script([Fault::Interrupt, Fault::Spurious]);
    let mut selector = Selector::with_faults(plan.clone()).unwrap();
    let (a, _b) = UnixStream::pair().unwrap();
    selector.register(&a, Token(1), Interest::READABLE).unwrap();
    let mut events = Events::with_capacity(8);
    // Interrupt, retried, then Spurious: `a` reported readable with no data.
    selector.select(&mut events, SHORT).unwrap();
    assert_eq!(tokens(&events), [1]);
    assert!(events.iter().all(|e| e.is_readable() && !e.is_writable()));
    // Plan exhausted: nothing is really ready.
    selector.select(&mut events, SHORT).unwrap();
    assert!(events.is_empty());
}

#[test]
fn reverse_duplicate_and_error_shape_real_events() {
    let plan = FaultPlan::default();
    let mut selector = Selector::with_faults(plan.clone()).unwrap();
    let (mut a1, b1) = UnixStream::pair().unwrap();
    let (mut a2, b2) = UnixStream::pair().unwrap();
    selector
        .register(&b1, Token(1), Interest::READABLE)
        .unwrap();
    selector
        .register(&b2, Token(2), Interest::READABLE)
        .unwrap();
    a1.write_all(b"x").unwrap();
    a2.write_all(b"y").unwrap();
    let mut events = Events::with_capacity(8);
    selector.select(&mut events, SHORT).unwrap();
    let order = tokens(&events);
    assert_eq!(order.len(), 2);

    plan.push([Fault::Reverse]);
    selector.select(&mut events, SHORT).unwrap();
    let reversed: Vec<usize> = order.iter().rev().copied().collect();
    assert_eq!(tokens(&events), reversed);

    plan.push([Fault::Duplicate]);
    selector.select(&mut events, SHORT).unwrap();
    assert_eq!(events.len(), 4);

    plan.push([Fault::ErrorWithReadable]);
    selector.select(&mut events, SHORT).unwrap();
    assert!(events
        .iter()
        .all(|e| e.is_readable() && e.is_error() && e.is_hangup()));
}

#[test]
fn stale_readiness_of_an_unregistered_fd_is_dropped() {
    let plan = FaultPlan::default();
    let mut selector = Selector::with_faults(plan.clone()).unwrap();
    let (a, _b) = UnixStream::pair().unwrap();
    selector.register(&a, Token(1), Interest::READABLE).unwrap();
    selector.unregister(&a).unwrap();
    plan.push([Fault::Stale]);
    let mut events = Events::with_capacity(8);
    selector.select(&mut events, SHORT).unwrap();
    assert!(events.is_empty(), "{events:?}");
}

#[test]
fn random_plans_are_reproducible() {
    let run = |seed| {
        let plan = FaultPlan::random(seed, 2, &[Fault::Spurious]);
        let mut selector = Selector::with_faults(plan).unwrap();
        let (a, _b) = UnixStream::pair().unwrap();
        selector.register(&a, Token(1), Interest::READABLE).unwrap();
        let mut events = Events::with_capacity(8);
        (0..16)
            .map(|_| {
                selector.select(&mut events, Some(Duration::ZERO)).unwrap();
                events.len()
            })
            .collect::<Vec<_>>()
    };
    let first = run(42);
    assert_eq!(first, run(42));
    assert!(first.contains(&1) && first.contains(&0), "{first:?}");
}
