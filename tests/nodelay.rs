//! No Nagle stalls: 16 KiB ping-pong on 10 connections runs at speed. A server that leaves
//! Nagle on stalls each message on the client's delayed ACK (~40 ms: about 230 messages/s in
//! total); TCP_NODELAY cannot be observed from the client, so the round trips are what is
//! tested: their median, which a busy machine slows by a few milliseconds, not by forty.

mod util;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use util::{assert_bytes_eq, connect, random_bytes, Server};

const CONNECTIONS: usize = 10;
const MESSAGE: usize = 16 * 1024;
const RUN: Duration = Duration::from_millis(1500);

/// A Nagle-stalled round trip waits for a delayed ACK: 40 ms at least.
const STALL_FREE: Duration = Duration::from_millis(20);

/// Ping-pong on one connection for [`RUN`]; returns each round trip's time.
fn ping_pong(addr: SocketAddr, seed: u64) -> Vec<Duration> {
    let stream = connect(addr);
    stream.set_nodelay(true).unwrap();
    let msg = random_bytes(seed, MESSAGE);
    let mut got = vec![0; MESSAGE];
    let start = Instant::now();
    let mut round_trips = Vec::new();
    while start.elapsed() < RUN {
        let sent = Instant::now();
        (&stream).write_all(&msg).unwrap();
        (&stream).read_exact(&mut got).expect("echo");
        round_trips.push(sent.elapsed());
        assert_bytes_eq(&got, &msg, "16 KiB echo");
    }
    round_trips
}

fn rate(backend: &str) {
    // A small --max-pending caps each read, so the server echoes a message in several sends:
    // with Nagle on, the second waits for the client's delayed ACK of the first.
    let server = Server::start(&["--backend", backend, "--max-pending", "4096"]);
    let addr = server.addr();
    let start = Instant::now();
    let mut round_trips: Vec<Duration> = thread::scope(|s| {
        let handles: Vec<_> = (0..CONNECTIONS as u64)
            .map(|i| s.spawn(move || ping_pong(addr, i)))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let per_sec = round_trips.len() as f64 / start.elapsed().as_secs_f64();
    round_trips.sort_unstable();
    let median = round_trips[round_trips.len() / 2];
    eprintln!("{backend}: {per_sec:.0} messages/s, median round trip {median:?}");
    assert!(
        median < STALL_FREE,
        "{backend}: median round trip {median:?} for 16 KiB on {CONNECTIONS} connections \
         ({per_sec:.0} messages/s; Nagle-stalled: over 40 ms, ~230 messages/s)"
    );
}

macro_rules! per_backend {
    ($($backend:ident),* $(,)?) => {$(
        #[test]
        fn $backend() {
            rate(stringify!($backend));
        }
    )*};
}

per_backend!(epoll, poll, select);
