//! `--trace` narrates the loop in the tutorial's words, the same on every backend;
//! `--stats-interval` prints a periodic `stats ` line with the loop's figures.

mod util;

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use util::{connect, echo_once, read_to_eof, Pattern, Server};

const WAIT: Duration = Duration::from_secs(3);

/// Waits for a stderr line holding every one of `words`; panics with the stderr otherwise.
#[track_caller]
fn expect_line(server: &Server, backend: &str, words: &[&str]) -> String {
    server
        .wait_stderr_line(WAIT, |l| words.iter().all(|w| l.contains(w)))
        .unwrap_or_else(|| {
            panic!(
                "{backend}: no stderr line with {words:?}; stderr:\n{}",
                tail(&server.stderr())
            )
        })
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn trace_narrates_a_connection(backend: &str) {
    let server = Server::start(&["--backend", backend, "--trace"]);
    expect_line(&server, backend, &["waiting for the next event"]);
    let stream = connect(server.addr());
    let peer = stream.local_addr().unwrap().to_string();
    echo_once(&stream, b"hello");
    stream.shutdown(Shutdown::Write).unwrap();
    let (_, eof) = read_to_eof(&stream, 0);
    assert!(eof, "{backend}: no EOF after half-close");
    expect_line(&server, backend, &["new connection from", &peer]);
    expect_line(&server, backend, &["received 5 bytes from", &peer]);
    expect_line(&server, backend, &["sending 5 bytes to", &peer]);
    expect_line(
        &server,
        backend,
        &["closing", &peer, "after reading no data"],
    );
    // Text mode says each fact once: the sentence, no key=value repeats.
    for line in server.stderr().lines().filter(|l| l.contains("trace: ")) {
        assert!(
            !line.contains("peer=") && !line.contains("bytes=") && !line.contains("token="),
            "{backend}: trace line repeats its facts as fields: {line}"
        );
    }
}

/// The slow path: output queued, write interest, then the queue drains.
fn trace_output_queue_empty(backend: &str) {
    let server = Server::start(&["--backend", backend, "--trace"]);
    let addr: SocketAddr = server.addr();
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&SockAddr::from(addr)).unwrap();
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(util::IO_TIMEOUT)).unwrap();
    let peer = stream.local_addr().unwrap().to_string();
    let pattern = Pattern::new(3);
    // More than the server's socket buffer (up to 4 MiB) and its queue (1 MiB) together,
    // written before any of it is read: the server cannot send it all at once.
    const TOTAL: u64 = 8 << 20;
    let progress = Default::default();
    thread::scope(|s| {
        s.spawn(|| {
            thread::sleep(Duration::from_millis(300));
            assert_eq!(pattern.verify(&stream, TOTAL), TOTAL);
        });
        pattern.write(&stream, TOTAL, 64 * 1024, &progress);
    });
    expect_line(&server, backend, &["output queue empty for", &peer]);
}

fn stats_line_fields(backend: &str) {
    let server = Server::start(&["--backend", backend, "--stats-interval", "1"]);
    let stream = connect(server.addr());
    echo_once(&stream, &[1; 1000]);
    let line = server
        .wait_stderr_line(Duration::from_millis(3500), |l| {
            l.starts_with("stats ") && field(l, "bytes_in").is_some_and(|v| v >= 1000.0)
        })
        .unwrap_or_else(|| {
            panic!(
                "{backend}: no `stats ` line counting 1000 bytes in within 3.5 s; stderr:\n{}",
                tail(&server.stderr())
            )
        });
    for key in [
        "open",
        "accepted",
        "bytes_in",
        "bytes_out",
        "msgs_per_sec",
        "wakeups",
        "events_per_wakeup",
        "wait_share",
        "paused",
        "peak_queued",
    ] {
        assert!(
            field(&line, key).is_some(),
            "{backend}: `{key}=` missing or not a number in {line:?}"
        );
    }
    assert_eq!(field(&line, "open"), Some(1.0), "{line}");
    assert!(field(&line, "accepted").unwrap() >= 1.0, "{line}");
    assert!(field(&line, "bytes_out").unwrap() >= 1000.0, "{line}");
    assert!(field(&line, "wakeups").unwrap() >= 1.0, "{line}");
    let share = field(&line, "wait_share").unwrap();
    assert!((0.0..=100.0).contains(&share), "{line}");
}

/// A client that writes without reading is paused by backpressure: the stats line counts it
/// and the queue's peak, and the count drops once the client reads.
#[test]
fn stats_count_paused_connections() {
    let server = Server::start(&["--stats-interval", "1", "--max-pending", "65536"]);
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&SockAddr::from(server.addr())).unwrap();
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(util::IO_TIMEOUT)).unwrap();
    let pattern = Pattern::new(4);
    const TOTAL: u64 = 8 << 20;
    let progress = Default::default();
    thread::scope(|s| {
        s.spawn(|| pattern.write(&stream, TOTAL, 64 * 1024, &progress));
        let paused = server
            .wait_stderr_line(Duration::from_millis(3500), |l| {
                l.starts_with("stats ") && field(l, "paused").is_some_and(|v| v >= 1.0)
            })
            .unwrap_or_else(|| {
                panic!(
                    "no `stats ` line with paused>=1 while a client does not read; stderr:\n{}",
                    tail(&server.stderr())
                )
            });
        let peak = field(&paused, "peak_queued").unwrap_or(0.0);
        assert!(peak >= 65536.0, "peak_queued below --max-pending: {paused}");
        assert_eq!(pattern.verify(&stream, TOTAL), TOTAL);
    });
    // Only lines printed after the drain count.
    let seen = server.stderr().lines().count();
    let resumed = util::wait_for(Duration::from_millis(3500), || {
        server
            .stderr()
            .lines()
            .skip(seen)
            .find(|l| l.starts_with("stats ") && field(l, "paused") == Some(0.0))
            .map(str::to_string)
    });
    assert!(
        resumed.is_some(),
        "no `stats ` line with paused=0 after the client read everything; stderr:\n{}",
        tail(&server.stderr())
    );
}

/// The number after `key=` in a stats line (a trailing `%` or unit letters are ignored).
fn field(line: &str, key: &str) -> Option<f64> {
    let prefix = format!("{key}=");
    let value = line
        .split_whitespace()
        .find_map(|word| word.strip_prefix(prefix.as_str()))?;
    let number: String = value
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == '-')
        .collect();
    number.parse().ok()
}

macro_rules! per_backend {
    ($($backend:ident),* $(,)?) => {$(
        mod $backend {
            #[test]
            fn trace_narrates_a_connection() {
                super::trace_narrates_a_connection(stringify!($backend));
            }

            #[test]
            fn trace_output_queue_empty() {
                super::trace_output_queue_empty(stringify!($backend));
            }

            #[test]
            fn stats_line_fields() {
                super::stats_line_fields(stringify!($backend));
            }
        }
    )*};
}

per_backend!(epoll, poll, select);

#[test]
fn quiet_by_default() {
    let server = Server::start(&[]);
    let stream = connect(server.addr());
    echo_once(&stream, b"hello");
    (&stream).write_all(b"x").unwrap();
    thread::sleep(Duration::from_millis(1500));
    let stderr = server.stderr();
    assert!(
        !stderr.contains("waiting for the next event") && !stderr.contains("received 5 bytes"),
        "tracing without --trace:\n{}",
        tail(&stderr)
    );
    assert!(
        !stderr.lines().any(|l| l.starts_with("stats ")),
        "stats without --stats-interval:\n{}",
        tail(&stderr)
    );
}
