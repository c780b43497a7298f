//! Connection storm: 1,000 clients connecting at once are all let in at once and echoed (the
//! tutorial's `listen(5)` left two thirds of them waiting a second or more for SYN retries:
//! a SYN that finds the accept queue full is dropped, and the client's connect() waits for its
//! retry).

mod util;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use util::{assert_bytes_eq, read_n, Server};

const CLIENTS: usize = 1000;
const THREADS: usize = 4;
/// Every client connected and echoed within this (a bound on a hung server, not a speed).
const LIMIT: Duration = Duration::from_secs(20);
/// The first SYN retry comes a second after a dropped SYN.
const SYN_RETRY: Duration = Duration::from_secs(1);

/// One storm thread: connects its share of clients as fast as it can, each writing a message,
/// then reads the echoes; returns how long each client's connect() took.
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
        let connected = started.elapsed();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let msg = format!("hello from client {i}");
        (&stream).write_all(msg.as_bytes()).unwrap();
        clients.push((stream, msg, connected));
    }
    clients
        .iter()
        .map(|(stream, msg, connected)| {
            let got = read_n(stream, msg.len());
            assert_bytes_eq(&got, msg.as_bytes(), "first echo");
            *connected
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
    let mut connects: Vec<Duration> = thread::scope(|s| {
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
    connects.sort();
    let p90 = connects[connects.len() * 9 / 10];
    let max = *connects.last().unwrap();
    let retried = connects.iter().filter(|&&d| d >= SYN_RETRY).count();
    eprintln!("{backend}: connect p90 {p90:?}, max {max:?}; all echoed in {total:?}");
    assert_eq!(connects.len(), CLIENTS);
    assert!(
        total < LIMIT,
        "{backend}: {CLIENTS} clients took {total:?} to all get their first echo"
    );
    // Connects that waited for a SYN retry: the backlog overflowed. Timed per connect, so a
    // slow machine does not add up the time a client spent queued behind its thread.
    assert!(
        p90 < SYN_RETRY,
        "{backend}: {retried} of {CLIENTS} connects took a second or more (p90 {p90:?}, max {max:?})"
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
