//! `--max-memory` is fair (issue 22, bug 2): clients that send and never read fill the budget,
//! and interactive ping-pong clients, established before them and new after, keep echoing.
//! Idle connections beside them must not shrink anyone's share.
//!
//! Each ping-pong client makes a fixed number of 64-byte round trips, each with a generous
//! deadline, and counts the echoes it got: at least 90% must come back, whatever the machine's
//! load (nothing here is a rate under a timer).

mod util;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use util::{connect, raise_nofile, read_reply, Server};

const MAX_MEMORY: u64 = 4 << 20;
const NON_READERS: usize = 300;
const IDLE: usize = 300;
const PING_PONGS: usize = 3;
const ROUND_TRIPS: usize = 20;
/// How long one round trip may take before it counts as lost.
const ROUND_TRIP_DEADLINE: Duration = Duration::from_secs(3);
/// The non-readers have filled what they can once their writes stall this long.
const STILL: Duration = Duration::from_millis(500);

/// A non-blocking client with small socket buffers that sends and never reads, so the bytes
/// it sends end up held by the server.
fn non_reader(addr: SocketAddr) -> TcpStream {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .expect("client socket");
    socket.set_recv_buffer_size(16 * 1024).expect("SO_RCVBUF");
    socket.set_send_buffer_size(16 * 1024).expect("SO_SNDBUF");
    socket.connect(&SockAddr::from(addr)).expect("connect");
    socket.set_nonblocking(true).expect("nonblocking");
    socket.into()
}

/// Writes what the kernel takes now from each of `clients`; returns the bytes written.
fn send_all(clients: &mut [TcpStream], chunk: &[u8]) -> usize {
    let mut moved = 0;
    for c in clients {
        loop {
            match c.write(chunk) {
                Ok(n) => moved += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("a non-reader's write failed: {e}"),
            }
        }
    }
    moved
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

/// `ROUND_TRIPS` round trips of 64 bytes on `stream`: how many echoes came back. A round
/// trip without its echo by the deadline ends the count (the next would queue behind it).
fn ping_pong(stream: &TcpStream, tag: u8) -> usize {
    let mut echoed = 0;
    for i in 0..ROUND_TRIPS {
        let msg = [tag.wrapping_add(i as u8); 64];
        let mut w = stream;
        if w.write_all(&msg).is_err() {
            break;
        }
        match read_reply(stream, &msg, ROUND_TRIP_DEADLINE) {
            Some(true) => echoed += 1,
            Some(false) | None => break,
        }
    }
    echoed
}

/// Fills the budget with non-readers beside idle connections, then checks that ping-pong
/// clients established before and connected after still get their echoes.
fn interactive_clients_keep_echoing(zero_copy: &str, workers: u16) {
    if raise_nofile() < (2 * (NON_READERS + IDLE) + 200) as u64 {
        skip!(
            "the descriptor limit is below {}",
            2 * (NON_READERS + IDLE) + 200
        );
    }
    let server = Server::builder()
        .args([
            "--max-memory",
            &MAX_MEMORY.to_string(),
            "--max-connections",
            "1000",
            "--workers",
            &workers.to_string(),
            "--zero-copy",
            zero_copy,
            "--stats-interval",
            "0.2",
        ])
        .start();
    let what = format!("--zero-copy {zero_copy}, --workers {workers}");
    let addr = server.addr();
    let established: Vec<TcpStream> = (0..PING_PONGS)
        .map(|i| {
            let s = connect(addr);
            assert_eq!(
                ping_pong_once(&s, i as u8),
                Some(true),
                "{what}: no echo at first"
            );
            s
        })
        .collect();
    let idle: Vec<TcpStream> = (0..IDLE).map(|_| connect(addr)).collect();
    let mut non_readers: Vec<TcpStream> = (0..NON_READERS).map(|_| non_reader(addr)).collect();

    // Send until nothing moves for half a second, with the budget over half spent and
    // stopping most non-readers: they hold all the budget lets them.
    let chunk = vec![0x5a_u8; 16 * 1024];
    let started = Instant::now();
    let mut still = Instant::now();
    let full = loop {
        if send_all(&mut non_readers, &chunk) > 0 {
            still = Instant::now();
        }
        let stderr = server.stderr();
        let held = last_stat(&stderr, "held").unwrap_or(0);
        let paused = last_stat(&stderr, "budget_paused").unwrap_or(0);
        if held >= MAX_MEMORY / 2 && paused >= (NON_READERS / 2) as u64 && still.elapsed() > STILL {
            break true;
        }
        if started.elapsed() > Duration::from_secs(60) {
            break false;
        }
        thread::sleep(Duration::from_millis(20));
    };
    assert!(
        full,
        "{what}: the non-readers never filled the budget; stderr:\n{}",
        server.stderr()
    );
    let fresh: Vec<TcpStream> = (0..PING_PONGS).map(|_| connect(addr)).collect();

    let counts: Vec<usize> = thread::scope(|s| {
        let runs: Vec<_> = established
            .iter()
            .chain(&fresh)
            .enumerate()
            .map(|(i, c)| s.spawn(move || ping_pong(c, 16 * i as u8)))
            .collect();
        runs.into_iter()
            .map(|r| r.join().expect("a ping-pong client panicked"))
            .collect()
    });
    let held = last_stat(&server.stderr(), "held").unwrap_or(0);
    eprintln!("{what}: held={held} echoes={counts:?}");
    for (i, &n) in counts.iter().enumerate() {
        let kind = if i < PING_PONGS { "established" } else { "new" };
        assert!(
            n * 10 >= ROUND_TRIPS * 9,
            "{what}: {kind} ping-pong client {i} got {n} of {ROUND_TRIPS} echoes beside \
             {NON_READERS} non-readers and {IDLE} idle connections (held={held}, \
             --max-memory {MAX_MEMORY}); all: {counts:?}"
        );
    }
    drop(idle);
}

fn ping_pong_once(stream: &TcpStream, tag: u8) -> Option<bool> {
    let msg = [tag; 64];
    let mut w = stream;
    w.write_all(&msg).ok()?;
    let mut r = stream;
    let mut got = [0u8; 64];
    r.read_exact(&mut got).ok()?;
    Some(got == msg)
}

#[test]
fn issue22_ping_pong_beside_non_readers_copy_path() {
    interactive_clients_keep_echoing("off", 1);
}

#[test]
fn issue22_ping_pong_beside_non_readers_zero_copy_path() {
    interactive_clients_keep_echoing("always", 1);
}

#[test]
fn issue22_ping_pong_beside_non_readers_two_workers() {
    interactive_clients_keep_echoing("off", 2);
}
