//! `--idle-timeout`: silent connections are closed, active ones are not, and the default
//! (0) never closes anyone.

mod util;

use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use util::{connect, echo_once, read_to_eof, Server};

/// Reads until the server closes; returns how long that took. Panics past `limit`.
fn time_to_close(stream: &TcpStream, since: Instant, limit: Duration) -> Duration {
    stream
        .set_read_timeout(Some(limit.saturating_sub(since.elapsed())))
        .unwrap();
    let (got, _eof) = read_to_eof(stream, 0);
    let elapsed = since.elapsed();
    assert!(got.is_empty(), "unexpected bytes from an idle connection");
    assert!(
        elapsed < limit,
        "connection still open after {elapsed:?} with --idle-timeout 1"
    );
    elapsed
}

/// One server, three kinds of clients at once: 100 silent ones, one that stops talking after
/// a while, and one that keeps talking.
fn idle_timeout(backend: &str) {
    let server = Server::start(&["--backend", backend, "--idle-timeout", "1"]);
    let start = Instant::now();
    let silent: Vec<TcpStream> = (0..100).map(|_| connect(server.addr())).collect();
    let quieting = connect(server.addr());
    let chatty = connect(server.addr());
    thread::scope(|s| {
        s.spawn(|| {
            while start.elapsed() < Duration::from_millis(3500) {
                echo_once(&chatty, b"keepalive");
                thread::sleep(Duration::from_millis(300));
            }
        });
        s.spawn(|| {
            for _ in 0..3 {
                echo_once(&quieting, b"tick");
                thread::sleep(Duration::from_millis(400));
            }
            echo_once(&quieting, b"last word");
            let last = Instant::now();
            let took = time_to_close(&quieting, last, Duration::from_millis(3500));
            assert!(
                took >= Duration::from_millis(700),
                "{backend}: closed {took:?} after the last message"
            );
        });
        for (i, c) in silent.iter().enumerate() {
            let took = time_to_close(c, start, Duration::from_millis(3500));
            assert!(
                took >= Duration::from_millis(800),
                "{backend}: silent client {i} closed after {took:?}"
            );
        }
    });
}

macro_rules! per_backend {
    ($($backend:ident),* $(,)?) => {$(
        #[test]
        fn $backend() {
            idle_timeout(stringify!($backend));
        }
    )*};
}

per_backend!(epoll, poll, select);

#[test]
fn never_closes_by_default_or_with_zero() {
    let default = Server::start(&[]);
    let zero = Server::start(&["--idle-timeout", "0"]);
    let a = connect(default.addr());
    let b = connect(zero.addr());
    thread::sleep(Duration::from_millis(2500));
    echo_once(&a, b"still open (default)");
    echo_once(&b, b"still open (--idle-timeout 0)");
}
