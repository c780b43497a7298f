//! SIGTERM in the middle of a transfer (issue 21, section 3; issue 22, bug 3): every byte the
//! server read before it stopped reading comes back to its client, in order, ending in a
//! clean end of file with no reset, on every path (`--zero-copy off|auto|always`) and backend,
//! for clients that read at once and for slow ones; and the summary's `bytes echoed` equals
//! what the clients received.
//!
//! Each client sends 30 % of its bytes, waits until the server says its drain began, then
//! sends the rest
//! (the server discards what comes after the drain began, so none of it may reset the
//! connection) and shuts its write side; its reader checks every byte against what was sent
//! at that offset and reads until end of file.

mod util;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::thread;
use std::time::{Duration, Instant};

use util::{wait_until, Pattern, Server};

const CLIENTS: usize = 20;
const EACH: u64 = 2 << 20;
/// Bytes each client sends before the signal.
const BEFORE_SIGNAL: u64 = EACH * 3 / 10;
const CHUNK: usize = 16 * 1024;
/// Far beyond what a drain of 40 MiB takes on a loaded machine: the deadline is not what is
/// tested here.
const SHUTDOWN_TIMEOUT: &str = "60";
/// Bound on every wait of a run.
const WAIT: Duration = Duration::from_secs(60);

/// How a client reads its echo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reader {
    /// Reads whatever has come, at once.
    Fast,
    /// Reads 4 KiB at a time with a pause after each, through a small receive buffer, so the
    /// server holds echo it cannot send yet when the signal comes.
    Slow,
}

/// How one client's transfer ended.
#[derive(Debug)]
struct Ended {
    sent: u64,
    received: u64,
    /// The write side's error, if a write failed (a reset shows here as well).
    write_error: Option<String>,
    /// `Ok` on a clean end of file, else the read error.
    read_end: Result<(), String>,
}

/// What the clients share: bytes sent by all, and whether the signal has been sent.
#[derive(Debug, Default)]
struct Gate {
    sent: AtomicUsize,
    open: AtomicBool,
}

fn client_socket(addr: SocketAddr, reader: Reader) -> TcpStream {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let socket =
        Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).expect("socket");
    if reader == Reader::Slow {
        socket.set_recv_buffer_size(16 * 1024).expect("SO_RCVBUF");
    }
    socket.connect(&SockAddr::from(addr)).expect("connect");
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    stream
}

/// Sends `EACH` bytes of `pattern`, stopping at `BEFORE_SIGNAL` until the gate opens, then
/// shuts the write side.
fn send_all(stream: &TcpStream, pattern: &Pattern, gate: &Gate) -> (u64, Option<String>) {
    let mut w = stream;
    let mut off = 0;
    while off < EACH {
        if off == BEFORE_SIGNAL && !wait_until(WAIT, || gate.open.load(Relaxed)) {
            return (off, Some("the signal was never sent".into()));
        }
        let end = if off < BEFORE_SIGNAL {
            BEFORE_SIGNAL
        } else {
            EACH
        };
        let n = (CHUNK as u64).min(end - off) as usize;
        if let Err(e) = w.write_all(pattern.at(off, n)) {
            return (off, Some(e.to_string()));
        }
        off += n as u64;
        gate.sent.fetch_add(n, Relaxed);
    }
    (
        off,
        stream
            .shutdown(Shutdown::Write)
            .err()
            .map(|e| e.to_string()),
    )
}

/// Reads until end of file, checking each byte against `pattern` at its offset.
fn receive_all(stream: &TcpStream, pattern: &Pattern, reader: Reader) -> (u64, Result<(), String>) {
    let mut buf = vec![
        0;
        if reader == Reader::Slow {
            4096
        } else {
            256 * 1024
        }
    ];
    let mut r = stream;
    let mut got = 0u64;
    loop {
        match r.read(&mut buf) {
            Ok(0) => return (got, Ok(())),
            Ok(n) => {
                if got + n as u64 > EACH || buf[..n] != *pattern.at(got, n) {
                    return (got, Err(format!("wrong bytes at offset {got}")));
                }
                got += n as u64;
                if reader == Reader::Slow {
                    // The slow reader's pace, not a wait for an event.
                    thread::sleep(Duration::from_micros(500));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (got, Err(e.to_string())),
        }
    }
}

fn sigterm_mid_transfer(backend: &str, zero_copy: &str, reader: Reader) {
    let mut server = Server::start(&[
        "--backend",
        backend,
        "--zero-copy",
        zero_copy,
        "--shutdown-timeout",
        SHUTDOWN_TIMEOUT,
    ]);
    let what = format!("--backend {backend} --zero-copy {zero_copy}, {reader:?} readers");
    let gate = Gate::default();
    let patterns: Vec<Pattern> = (0..CLIENTS).map(|i| Pattern::new(i as u64)).collect();
    let streams: Vec<TcpStream> = (0..CLIENTS)
        .map(|_| client_socket(server.addr(), reader))
        .collect();
    let ended: Vec<Ended> = thread::scope(|s| {
        let handles: Vec<_> = streams
            .iter()
            .zip(&patterns)
            .map(|(stream, pattern)| {
                let gate = &gate;
                let writer = s.spawn(move || send_all(stream, pattern, gate));
                let reader = s.spawn(move || receive_all(stream, pattern, reader));
                (writer, reader)
            })
            .collect();
        let everyone_waits = (CLIENTS as u64 * BEFORE_SIGNAL) as usize;
        let reached = wait_until(WAIT, || gate.sent.load(Relaxed) >= everyone_waits);
        server.term();
        // The rest is sent once the drain has begun, so the drain meets input it must
        // discard while echo is still on its way out.
        let draining = server.wait_stderr_line(WAIT, |l| l.contains("signal received"));
        gate.open.store(true, Relaxed);
        assert!(
            reached,
            "{what}: the clients did not send 30 % within {WAIT:?}"
        );
        assert!(draining.is_some(), "{what}: no drain began after SIGTERM");
        handles
            .into_iter()
            .map(|(w, r)| {
                let (sent, write_error) = w.join().expect("writer thread");
                let (received, read_end) = r.join().expect("reader thread");
                Ended {
                    sent,
                    received,
                    write_error,
                    read_end,
                }
            })
            .collect()
    });
    let status = server.wait_exit(WAIT);
    let summary = server.summary(Duration::from_secs(5));
    let received: u64 = ended.iter().map(|e| e.received).sum();
    let sent: u64 = ended.iter().map(|e| e.sent).sum();
    eprintln!(
        "{what}: sent {sent}, received {received}, summary says {} echoed",
        summary.bytes
    );
    for (i, e) in ended.iter().enumerate() {
        assert_eq!(
            e.read_end,
            Ok(()),
            "{what}: client {i} did not end in EOF: {e:?}"
        );
        assert_eq!(
            e.write_error, None,
            "{what}: client {i}'s writes failed: {e:?}"
        );
    }
    assert!(received > 0, "{what}: nothing came back");
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "{what}: exit status"
    );
    assert!(
        !server.stderr().contains("shutdown timeout"),
        "{what}: the drain ran into its deadline:\n{}",
        server.stderr()
    );
    assert_eq!(
        summary.bytes, received,
        "{what}: the summary's bytes echoed differ from what the clients received"
    );
}

/// A client that stops reading: the drain cannot finish, and at `--shutdown-timeout` the
/// server closes the connection under the client's unread input (a reset, which discards what
/// the server's socket still held). The summary counts only what the client can still read.
#[test]
fn cut_at_the_deadline_counts_what_the_client_can_read_issue_22() {
    let mut server = Server::start(&["--shutdown-timeout", "1"]);
    let stream = client_socket(server.addr(), Reader::Slow);
    stream.set_nonblocking(true).unwrap();
    // Write until the server has stopped taking bytes for a while: its queue and both
    // sockets' buffers are full.
    let chunk = vec![0x5a; 64 * 1024];
    let mut last = Instant::now();
    let stop = Instant::now() + WAIT;
    while last.elapsed() < Duration::from_millis(300) && Instant::now() < stop {
        match (&stream).write(&chunk) {
            Ok(_) => last = Instant::now(),
            // The pace of a busy writer, not a wait for an event.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(5))
            }
            Err(e) => panic!("write: {e}"),
        }
    }
    server.term();
    let status = server.wait_exit(WAIT);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "exit status");
    assert!(
        server.stderr().contains("shutdown timeout"),
        "the drain did not run into its deadline:\n{}",
        server.stderr()
    );
    let summary = server.summary(Duration::from_secs(5));
    stream.set_nonblocking(false).unwrap();
    let mut received = 0u64;
    let mut buf = vec![0; 256 * 1024];
    // Until end of file or the reset: what the client's kernel holds comes first.
    while let Ok(n @ 1..) = (&stream).read(&mut buf) {
        assert!(buf[..n].iter().all(|&b| b == 0x5a), "wrong bytes");
        received += n as u64;
    }
    eprintln!(
        "cut at the deadline: received {received}, summary says {} echoed",
        summary.bytes
    );
    assert!(received > 0, "nothing came back before the signal");
    assert!(
        summary.bytes <= received,
        "the summary counts {} bytes echoed, the client could read {received}",
        summary.bytes
    );
}

macro_rules! every_path {
    ($($backend:ident: $($mode:ident),*;)*) => {$(
        mod $backend {
            $(
                mod $mode {
                    use super::super::{sigterm_mid_transfer, Reader};

                    #[test]
                    fn sigterm_mid_transfer_issue_21_fast_readers() {
                        sigterm_mid_transfer(
                            stringify!($backend),
                            stringify!($mode),
                            Reader::Fast,
                        );
                    }

                    #[test]
                    fn sigterm_mid_transfer_issue_22_slow_readers() {
                        sigterm_mid_transfer(
                            stringify!($backend),
                            stringify!($mode),
                            Reader::Slow,
                        );
                    }
                }
            )*
        }
    )*};
}

every_path! {
    epoll: off, auto, always;
    poll: off, auto, always;
    select: off, auto, always;
}
