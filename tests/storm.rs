//! Connection storm: 1,000 clients connecting at once all get their first echo promptly (the
//! tutorial's `listen(5)` left two thirds of them waiting a second or more for SYN retries).

mod util;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use util::{assert_bytes_eq, read_n, Server};

const CLIENTS: usize = 1000;
const THREADS: usize = 4;
/// Every client connected and echoed within this.
const LIMIT: Duration = Duration::from_secs(5);

/// One storm thread: connects its share of clients as fast as it can, each writing a message,
/// then reads the echoes; returns each client's time from connect to echo.
fn storm_share(addr: SocketAddr, first: usize, count: usize, deadline: Instant) -> Vec<Duration> {
    let mut clients = Vec::with_capacity(count);
    for i in first..first + count {
        let started = Instant::now();
        // Bounded, so a server that drops SYNs fails in seconds rather than minutes.
        let left = deadline.saturating_duration_since(started);
        assert!(
            !left.is_zero(),
            "client {i}: the storm is still connecting at the deadline"
        );
        let stream = TcpStream::connect_timeout(&addr, left)
            .unwrap_or_else(|e| panic!("client {i}: connect during the storm: {e}"));
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let msg = format!("hello from client {i}");
        (&stream).write_all(msg.as_bytes()).unwrap();
        clients.push((stream, msg, started));
    }
    clients
        .iter()
        .map(|(stream, msg, started)| {
            let got = read_n(stream, msg.len());
            assert_bytes_eq(&got, msg.as_bytes(), "first echo");
            started.elapsed()
        })
        .collect()
}

fn storm(backend: &str) {
    let limit = util::raise_nofile();
    if limit < 2 * CLIENTS as u64 + 200 {
        skip!("RLIMIT_NOFILE hard limit {limit} is too low for {CLIENTS} clients");
    }
    let server = Server::start(&["--backend", backend]);
    let addr = server.addr();
    let start = Instant::now();
    let deadline = start + LIMIT;
    let mut latencies: Vec<Duration> = thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let share = CLIENTS / THREADS;
                s.spawn(move || storm_share(addr, t * share, share, deadline))
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("storm thread"))
            .collect()
    });
    let total = start.elapsed();
    latencies.sort();
    let p90 = latencies[latencies.len() * 9 / 10];
    let max = *latencies.last().unwrap();
    assert_eq!(latencies.len(), CLIENTS);
    assert!(
        total < LIMIT,
        "{backend}: {CLIENTS} clients took {total:?} to all get their first echo"
    );
    // A SYN dropped from a full backlog is retried after 1 s: p90 below that means the
    // backlog held the storm.
    assert!(
        p90 < Duration::from_millis(1000),
        "{backend}: p90 connect-to-first-echo {p90:?} (max {max:?})"
    );
}

macro_rules! per_backend {
    ($($backend:ident),* $(,)?) => {$(
        #[test]
        fn $backend() {
            storm(stringify!($backend));
        }
    )*};
}

per_backend!(epoll, poll, select);
