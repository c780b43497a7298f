//! Timeout precision: 1,000 waits of 200 µs with nothing ready, per
//! backend; the median and 99th percentile of how long each wait lasted
//! past its timeout (never less than zero: a wait never returns early).
//!
//! ```text
//! cargo bench -p fdselector --bench timeouts [-- WAITS MICROS]
//! ```
//!
//! Results are in docs/selector.md.

mod common;

use selector::{Events, Interest, Selector, Token};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let waits: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(1_000);
    let micros: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(200);
    let timeout = Duration::from_micros(micros);
    println!("{waits} waits of {micros} µs, nothing ready: overshoot past the timeout");
    println!(
        "{:<8} {:>12} {:>12} {:>12}",
        "backend", "median µs", "p99 µs", "early"
    );
    for kind in common::backends() {
        let (_a, b) = UnixStream::pair().expect("socket pair");
        let mut selector = Selector::with_backend(kind).expect("backend");
        selector
            .register(&b, Token(0), Interest::READABLE)
            .expect("register");
        let mut events = Events::with_capacity(8);
        let mut over = Vec::with_capacity(waits);
        let mut early = 0;
        for _ in 0..waits {
            let start = Instant::now();
            selector.select(&mut events, Some(timeout)).expect("select");
            let elapsed = start.elapsed();
            assert!(events.is_empty(), "nothing is ready");
            early += usize::from(elapsed < timeout);
            over.push(elapsed.saturating_sub(timeout));
        }
        let median = common::median(&mut over);
        let p99 = common::percentile(&mut over, 99.0);
        println!(
            "{:<8} {:>12.1} {:>12.1} {:>12}",
            kind.to_string(),
            median.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6,
            early
        );
    }
}
