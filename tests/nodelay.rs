//! No Nagle stalls: 16 KiB ping-pong on 10 connections runs at speed. A server that leaves
//! Nagle on stalls each message on the client's delayed ACK (~40 ms), about 230 messages/s in
//! total; TCP_NODELAY cannot be observed from the client, so the rate is what is tested.

mod util;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use util::{assert_bytes_eq, connect, random_bytes, Server};

const CONNECTIONS: usize = 10;
const MESSAGE: usize = 16 * 1024;
const RUN: Duration = Duration::from_millis(1500);

/// Ping-pong on one connection for [`RUN`]; returns the messages echoed.
fn ping_pong(addr: SocketAddr, seed: u64) -> u64 {
    let stream = connect(addr);
    stream.set_nodelay(true).unwrap();
    let msg = random_bytes(seed, MESSAGE);
    let mut got = vec![0; MESSAGE];
    let start = Instant::now();
    let mut count = 0;
    while start.elapsed() < RUN {
        (&stream).write_all(&msg).unwrap();
        (&stream).read_exact(&mut got).expect("echo");
        assert_bytes_eq(&got, &msg, "16 KiB echo");
        count += 1;
    }
    count
}

fn rate(backend: &str) {
    // A small --max-pending caps each read, so the server echoes a message in several sends:
    // with Nagle on, the second waits for the client's delayed ACK of the first.
    let server = Server::start(&["--backend", backend, "--max-pending", "4096"]);
    let addr = server.addr();
    let start = Instant::now();
    let total: u64 = thread::scope(|s| {
        let handles: Vec<_> = (0..CONNECTIONS as u64)
            .map(|i| s.spawn(move || ping_pong(addr, i)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    let per_sec = total as f64 / start.elapsed().as_secs_f64();
    eprintln!("{backend}: {per_sec:.0} messages/s");
    assert!(
        per_sec >= 2000.0,
        "{backend}: {per_sec:.0} messages/s of 16 KiB on {CONNECTIONS} connections (Nagle-stalled: ~230)"
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
