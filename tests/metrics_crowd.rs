//! The metrics endpoint serves its connections at once (issue 21 §3): `/healthz` answers
//! promptly behind a crowd of silent or dripping connections, a request not sent within 2 s
//! gets 400, and past 128 open connections a new one closes the oldest.

mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use util::{raise_nofile, Server, IO_TIMEOUT};

/// The crowd in front of the health check.
const CROWD: usize = 1_000;
/// The target is 100 ms; a loaded 2-core CI machine gets ten times that.
const BOUND: Duration = Duration::from_secs(1);

fn start() -> Server {
    Server::start(&["-l", "127.0.0.1:0", "--metrics", "127.0.0.1:0"])
}

/// One `GET path`: the status line and how long the answer took.
fn timed_get(addr: SocketAddr, path: &str) -> (String, Duration) {
    let started = Instant::now();
    let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect to the endpoint");
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.lines().next().unwrap_or_default().to_string();
    (status, started.elapsed())
}

/// `n` connections to `addr`, all made within 20 s (the endpoint takes them off its accept
/// queue as they come).
fn crowd(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let started = Instant::now();
    (0..n)
        .map(|i| {
            let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
                .unwrap_or_else(|e| panic!("connection {i} of the crowd: {e}"));
            let took = started.elapsed();
            assert!(
                took < Duration::from_secs(20),
                "{i} connections took {took:?}"
            );
            s
        })
        .collect()
}

/// The slowest of five health checks.
fn slowest_healthz(addr: SocketAddr, what: &str) -> Duration {
    let mut worst = Duration::ZERO;
    for _ in 0..5 {
        let (status, took) = timed_get(addr, "/healthz");
        assert_eq!(status, "HTTP/1.1 200 OK", "{what}");
        worst = worst.max(took);
    }
    eprintln!("/healthz behind {what}: slowest of 5 took {worst:?}");
    worst
}

#[test]
fn healthz_answers_behind_1000_silent_connections_issue21() {
    if raise_nofile() < 2 * CROWD as u64 + 100 {
        skip!("RLIMIT_NOFILE too low for {CROWD} connections");
    }
    let server = start();
    let m = server.metrics.expect("metrics line");
    let silent = crowd(m, CROWD);
    let worst = slowest_healthz(m, &format!("{CROWD} silent connections"));
    assert!(worst < BOUND, "/healthz took {worst:?} behind the crowd");
    drop(silent);
}

#[test]
fn healthz_answers_behind_1000_dripping_connections_issue21() {
    if raise_nofile() < 2 * CROWD as u64 + 100 {
        skip!("RLIMIT_NOFILE too low for {CROWD} connections");
    }
    let server = start();
    let m = server.metrics.expect("metrics line");
    let mut dripping = crowd(m, CROWD);
    let stop = Arc::new(AtomicBool::new(false));
    let dripper = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            // A byte of a request head on every connection, round after round.
            let head = b"GET /metrics HTTP/1.1\r\nX-Slow: ";
            let mut sent = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let byte = [head.get(sent).copied().unwrap_or(b'a')];
                for s in &mut dripping {
                    let _ = s.write(&byte);
                }
                sent += 1;
                thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let worst = slowest_healthz(m, &format!("{CROWD} dripping connections"));
    stop.store(true, Ordering::Relaxed);
    dripper.join().unwrap();
    assert!(worst < BOUND, "/healthz took {worst:?} behind the crowd");
}

#[test]
fn a_request_not_sent_in_time_gets_400_issue21() {
    let server = start();
    let m = server.metrics.expect("metrics line");
    let mut slow = TcpStream::connect(m).unwrap();
    slow.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
    let started = Instant::now();
    let mut raw = Vec::new();
    let _ = slow.read_to_end(&mut raw);
    let waited = started.elapsed();
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "after {waited:?}: {text:?}"
    );
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(6),
        "{waited:?}"
    );
}

#[test]
fn past_128_open_connections_a_new_one_closes_the_oldest_issue21() {
    let server = start();
    let m = server.metrics.expect("metrics line");
    let mut oldest = TcpStream::connect(m).unwrap();
    // The endpoint has the oldest before the others arrive.
    let (status, took) = timed_get(m, "/healthz");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        took < BOUND,
        "/healthz took {took:?} behind one silent connection"
    );
    let started = Instant::now();
    let others = crowd(m, 128);
    oldest.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut raw = Vec::new();
    let closed = oldest.read_to_end(&mut raw);
    let waited = started.elapsed();
    assert!(
        closed.is_ok() && raw.is_empty(),
        "{closed:?} {:?}",
        String::from_utf8_lossy(&raw)
    );
    // Closed for room, well before its 2-second deadline.
    assert!(waited < Duration::from_millis(1500), "{waited:?}");
    // The newest of the crowd is still open.
    let mut newest = others.last().unwrap();
    newest.set_nonblocking(true).unwrap();
    let pending = newest.read(&mut [0u8; 1]);
    assert!(
        matches!(&pending, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "{pending:?}"
    );
}
