//! `--max-memory` (issue 9): clients that send and never read cannot make the server hold
//! more than its budget; every byte still comes back once they read; and the memory goes
//! back when they close.
//!
//! The CI variant: 2,000 connections that each send 1 MiB, with `--max-memory 64MiB`, one
//! worker and two. The full size of the issue (2,000 x 10 MB, `--max-memory 256MiB`) takes
//! minutes on a shared two-core machine and is run by hand:
//! `cargo test --release --test memory_budget -- --ignored --nocapture`.
//!
//! The server runs as shipped: its allocator (jemalloc, with a background thread) gives
//! freed pages back within about ten seconds, so "back to where it started" is waited for.

mod util;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use util::{connect, echo_once, raise_nofile, rss_kib, wait_for, Server};

const MIB: u64 = 1 << 20;
/// The pattern repeats every `PERIOD` bytes, shifted per connection, so a byte that is lost,
/// duplicated or delivered to the wrong client shows.
const PERIOD: usize = 251;
const CHUNK: usize = 64 * 1024;

/// One client: how much it sent and how much came back, checked.
struct Client {
    stream: TcpStream,
    shift: usize,
    sent: u64,
    got: u64,
}

/// A non-blocking client with small socket buffers, so that what the kernel would otherwise
/// hold for it is the server's to hold.
fn client(addr: SocketAddr, shift: usize) -> Client {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .expect("client socket");
    socket.set_recv_buffer_size(16 * 1024).expect("SO_RCVBUF");
    socket.set_send_buffer_size(16 * 1024).expect("SO_SNDBUF");
    socket.connect(&SockAddr::from(addr)).expect("connect");
    socket.set_nonblocking(true).expect("nonblocking");
    Client {
        stream: socket.into(),
        shift,
        sent: 0,
        got: 0,
    }
}

impl Client {
    /// Writes what the kernel takes now; returns the bytes written.
    fn send(&mut self, pattern: &[u8], total: u64) -> u64 {
        let mut moved = 0;
        while self.sent < total {
            let at = (self.sent as usize + self.shift) % PERIOD;
            let n = CHUNK.min((total - self.sent) as usize);
            match self.stream.write(&pattern[at..at + n]) {
                Ok(k) => {
                    self.sent += k as u64;
                    moved += k as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("write after {} bytes: {e}", self.sent),
            }
        }
        moved
    }

    /// Reads and checks what has come back; returns the bytes read.
    fn receive(&mut self, pattern: &[u8], buf: &mut [u8]) -> u64 {
        let mut moved = 0;
        loop {
            match self.stream.read(buf) {
                Ok(0) => panic!("EOF after {} of {} bytes", self.got, self.sent),
                Ok(k) => {
                    let at = (self.got as usize + self.shift) % PERIOD;
                    assert!(
                        buf[..k] == pattern[at..at + k],
                        "wrong bytes at offset {} of connection {}",
                        self.got,
                        self.shift
                    );
                    assert!(
                        self.got + k as u64 <= self.sent,
                        "more came back than was sent"
                    );
                    self.got += k as u64;
                    moved += k as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return moved,
                Err(e) => panic!("read after {} bytes: {e}", self.got),
            }
        }
    }
}

/// The last `field=N` on a stats line in `stderr`.
fn last_stat(stderr: &str, field: &str) -> Option<u64> {
    stderr
        .lines()
        .rev()
        .filter(|l| l.starts_with("stats "))
        .find_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix(field)?.strip_prefix('=')?.parse().ok())
        })
}

fn budget_holds(conns: usize, each: u64, max_memory_mib: u64, workers: u16) {
    if raise_nofile() < (2 * conns + 100) as u64 {
        skip!("the descriptor limit is below {}", 2 * conns + 100);
    }
    let max_memory = format!("{max_memory_mib}MiB");
    let server = Server::builder()
        .args([
            "--max-memory",
            &max_memory,
            "--workers",
            &workers.to_string(),
            "--stats-interval",
            "0.2",
            "-v",
        ])
        .start();
    let what = format!("{conns} x {each} B, --max-memory {max_memory}, --workers {workers}");
    let budget_line = format!("max_memory={}", max_memory_mib * MIB);
    assert!(
        server
            .wait_stderr_line(Duration::from_secs(5), |l| l.contains(&budget_line))
            .is_some(),
        "{what}: -v does not print the budget at startup; stderr:\n{}",
        server.stderr()
    );
    let started = Instant::now();
    let pattern: Vec<u8> = (0..CHUNK + PERIOD).map(|i| (i % PERIOD) as u8).collect();
    let mut buf = vec![0u8; CHUNK];
    let start_rss = server.rss_kib();
    let peak = AtomicU64::new(start_rss);
    let done = AtomicBool::new(false);
    let pid = server.pid();
    thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Relaxed) {
                peak.fetch_max(rss_kib(pid), Relaxed);
                thread::sleep(Duration::from_millis(5));
            }
        });
        let mut clients: Vec<Client> = (0..conns).map(|i| client(server.addr(), i)).collect();

        // Send without reading until nothing moves for a second.
        let mut still = Instant::now();
        while still.elapsed() < Duration::from_secs(1) {
            let moved: u64 = clients.iter_mut().map(|c| c.send(&pattern, each)).sum();
            if moved > 0 {
                still = Instant::now();
            } else {
                thread::sleep(Duration::from_millis(2));
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "{what}: filling took over 2 minutes"
            );
        }
        let stalled_sent: u64 = clients.iter().map(|c| c.sent).sum();
        let limited = server.wait_stderr_line(Duration::from_secs(5), |l| {
            l.starts_with("stats ")
                && l.contains("budget_paused=")
                && !l.contains("budget_paused=0 ")
        });
        assert!(
            limited.is_some(),
            "{what}: the stats line never says the budget paused anyone ({stalled_sent} bytes sent); stderr:\n{}",
            server.stderr()
        );
        assert!(
            server.stderr().contains("memory budget reached"),
            "{what}: no -v log line says the budget is the reason"
        );

        // Now read everything back, sending the rest meanwhile.
        let total = each * conns as u64;
        let mut got = 0;
        let mut still = Instant::now();
        while got < total {
            let mut moved = 0;
            for c in clients.iter_mut() {
                moved += c.send(&pattern, each);
                let k = c.receive(&pattern, &mut buf);
                got += k;
                moved += k;
            }
            if moved > 0 {
                still = Instant::now();
            } else {
                assert!(
                    still.elapsed() < Duration::from_secs(10),
                    "{what}: stuck at {got} of {total} bytes echoed; stderr:\n{}",
                    server.stderr()
                );
                thread::sleep(Duration::from_millis(1));
            }
        }
        drop(clients);
        done.store(true, Relaxed);
    });
    let peak = peak.load(Relaxed);
    let open_zero = wait_for(Duration::from_secs(10), || {
        (last_stat(&server.stderr(), "open") == Some(0)).then_some(())
    });
    assert!(
        open_zero.is_some(),
        "{what}: the server never saw every client close"
    );
    // The allocator gives freed pages back from a background thread, within
    // its decay time (10 s): wait for RSS to come back, up to three times that.
    let start_band = start_rss + 16 * 1024;
    let end_rss = wait_for(Duration::from_secs(30), || {
        let rss = server.rss_kib();
        (rss <= start_band).then_some(rss)
    })
    .unwrap_or_else(|| server.rss_kib());
    eprintln!(
        "{what}: RSS start {} MiB, peak {} MiB, after close {} MiB; {:.1} s",
        start_rss / 1024,
        peak / 1024,
        end_rss / 1024,
        started.elapsed().as_secs_f64()
    );
    assert!(
        peak <= (max_memory_mib + 32) * 1024,
        "{what}: peak RSS {} MiB, over the budget + 32 MiB",
        peak / 1024
    );
    assert!(
        end_rss <= start_band,
        "{what}: RSS {} MiB after every client closed, from {} MiB at the start",
        end_rss / 1024,
        start_rss / 1024
    );
    assert_eq!(
        last_stat(&server.stderr(), "held"),
        Some(0),
        "{what}: the budget still counts bytes"
    );
    echo_once(&connect(server.addr()), b"served as before");
}

#[test]
fn issue9_budget_holds_one_worker() {
    budget_holds(2000, MIB, 64, 1);
}

#[test]
fn issue9_budget_holds_two_workers() {
    budget_holds(2000, MIB, 64, 2);
}

#[test]
#[ignore = "full size: minutes on a shared two-core machine; run by hand"]
fn issue9_budget_holds_full_size_one_worker() {
    budget_holds(2000, 10_000_000, 256, 1);
}

#[test]
#[ignore = "full size: minutes on a shared two-core machine; run by hand"]
fn issue9_budget_holds_full_size_two_workers() {
    budget_holds(2000, 10_000_000, 256, 2);
}
