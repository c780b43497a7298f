//! `--idle-timeout`: connections through which nothing moves are closed, active ones
//! (talking, or still reading their echo) are not, and the default (0) never closes anyone.

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::{Duration, Instant};

use util::{connect, echo_once, read_to_eof, Server, TempDir};

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

/// Activity is bytes moving either way: a client that has sent everything and now reads its
/// echo slowly (so the server only sends, its reads long done) is not idle. Over a Unix
/// socket, whose buffers do not grow, the server sees each step of the slow read as a
/// writable event and a send.
#[test]
fn a_slow_reader_draining_its_echo_is_not_idle() {
    let dir = TempDir::new("idle");
    let path = dir.path().join("echo.sock");
    let server = Server::start(&["--unix", path.to_str().unwrap(), "--idle-timeout", "1"]);
    let stream = UnixStream::connect(&server.unix[0]).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // More than the socket buffers hold together, less than --max-pending (1 MiB) on top:
    // the server takes all of it at once and then has only sending left to do.
    let data: Vec<u8> = (0..1200 * 1024).map(|i| (i % 251) as u8).collect();
    let start = Instant::now();
    let mut got = Vec::with_capacity(data.len());
    thread::scope(|s| {
        s.spawn(|| (&stream).write_all(&data).unwrap());
        // About 640 KB/s: some two seconds to read it all, twice the idle timeout.
        let mut buf = vec![0; 32 * 1024];
        while got.len() < data.len() {
            thread::sleep(Duration::from_millis(50));
            match (&stream).read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => panic!("read failed after {} bytes: {e}", got.len()),
            }
        }
    });
    assert!(
        start.elapsed() > Duration::from_millis(1500),
        "the read was not slow enough to test anything: {:?}",
        start.elapsed()
    );
    assert_eq!(
        got.len(),
        data.len(),
        "closed after {} of {} bytes, {:?} in, while its echo was still moving",
        got.len(),
        data.len(),
        start.elapsed()
    );
    assert!(got == data, "the echo differs from what was sent");
}
