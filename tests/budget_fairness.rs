//! `--max-memory` is fair and true.
//!
//! Fair (issue 22, bug 2): clients that send and never read fill the budget, and interactive
//! ping-pong clients, established before them and new after, keep echoing. Idle connections
//! beside them must not shrink anyone's share. Each ping-pong client makes a fixed number of
//! 64-byte round trips, each with a generous deadline, and counts the echoes it got: at least
//! 90% must come back, whatever the machine's load (nothing here is a rate under a timer).
//!
//! True (issue 21, section 3): waves of slow readers that fill the budget and reset keep the
//! server's RSS within it; the freed pages the allocator keeps count too. The full size
//! (ten waves of 300 at 64 MiB) is `bench/budget_churn.py`.

mod util;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use util::{connect, raise_nofile, read_reply, rss_kib, Server};

const MAX_MEMORY: u64 = 4 << 20;
const NON_READERS: usize = 300;
const IDLE: usize = 300;
const PING_PONGS: usize = 3;
const ROUND_TRIPS: usize = 20;
/// How long one round trip may take before it counts as lost.
const ROUND_TRIP_DEADLINE: Duration = Duration::from_secs(3);
/// The non-readers have filled what they can once their writes stall this long.
const STILL: Duration = Duration::from_millis(500);

/// The tests here run one at a time: each loads the machine with hundreds of
/// connections, and the churn test's RSS reading is what the others would
/// disturb on a busy 2-core machine.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

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
    let _alone = one_at_a_time();
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

    assert!(
        fill_budget(&server, &mut non_readers),
        "{what}: the non-readers never filled the budget; stderr:\n{}",
        server.stderr()
    );
    let fresh: Vec<TcpStream> = (0..PING_PONGS).map(|_| connect(addr)).collect();

    let counts = ping_pong_all(established.iter().chain(&fresh));
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

/// Sends from every non-reader until nothing moves for half a second, with the budget over half
/// spent and stopping most of them: they hold all the budget lets them. False if that does not
/// happen within a minute.
fn fill_budget(server: &Server, non_readers: &mut [TcpStream]) -> bool {
    let chunk = vec![0x5a_u8; 16 * 1024];
    let started = Instant::now();
    let mut still = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if send_all(non_readers, &chunk) > 0 {
            still = Instant::now();
        }
        let stderr = server.stderr();
        let held = last_stat(&stderr, "held").unwrap_or(0);
        let paused = last_stat(&stderr, "budget_paused").unwrap_or(0);
        if held >= MAX_MEMORY / 2 && paused >= (NON_READERS / 2) as u64 && still.elapsed() > STILL {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Runs [`ping_pong`] on each client at once: the echoes each got, in order.
fn ping_pong_all<'a>(clients: impl Iterator<Item = &'a TcpStream>) -> Vec<usize> {
    thread::scope(|s| {
        let runs: Vec<_> = clients
            .enumerate()
            .map(|(i, c)| s.spawn(move || ping_pong(c, 16 * i as u8)))
            .collect();
        runs.into_iter()
            .map(|r| r.join().expect("a ping-pong client panicked"))
            .collect()
    })
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

/// One wave: `n` slow readers send until the server stops taking their bytes (the budget is
/// spent), reading 4 KiB now and then, and then reset.
fn churn_wave(addr: SocketAddr, n: usize) {
    let mut clients: Vec<TcpStream> = (0..n).map(|_| non_reader(addr)).collect();
    let chunk = vec![0x5a_u8; 64 * 1024];
    let mut buf = vec![0u8; 4096];
    let (started, mut still) = (Instant::now(), Instant::now());
    for turn in 0.. {
        if still.elapsed() > STILL || started.elapsed() > Duration::from_secs(20) {
            break;
        }
        if send_all(&mut clients, &chunk) > 0 {
            still = Instant::now();
        }
        if turn % 8 == 0 {
            for c in &mut clients {
                let _ = c.read(&mut buf); // slow: a little now and then
            }
        }
        thread::sleep(Duration::from_millis(2));
    }
    for c in clients {
        let socket = Socket::from(c);
        socket.set_linger(Some(Duration::ZERO)).expect("SO_LINGER");
    }
}

#[test]
fn issue21_rss_stays_within_the_budget_under_churn() {
    const WAVES: usize = 4;
    const CONNS: usize = 100;
    const BUDGET_MIB: u64 = 16;
    if raise_nofile() < (4 * CONNS + 100) as u64 {
        skip!("the descriptor limit is below {}", 4 * CONNS + 100);
    }
    let _alone = one_at_a_time();
    let budget = format!("{BUDGET_MIB}MiB");
    let server = Server::builder()
        .args([
            "--max-memory",
            &budget,
            "--workers",
            "2",
            "--zero-copy",
            "off",
        ])
        .start();
    let (pid, addr) = (server.pid(), server.addr());
    let start = rss_kib(pid);
    let peak = AtomicU64::new(start);
    let done = AtomicBool::new(false);
    thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Relaxed) {
                peak.fetch_max(rss_kib(pid), Relaxed);
                thread::sleep(Duration::from_millis(5));
            }
        });
        for _ in 0..WAVES {
            churn_wave(addr, CONNS);
        }
        done.store(true, Relaxed);
    });
    let grew = peak.load(Relaxed).saturating_sub(start);
    eprintln!("{WAVES} waves x {CONNS}: RSS {start} KiB at start, grew by {grew} KiB, --max-memory {budget}");
    // Half more for what the count leaves out: workers reading at the same moment between two
    // readings of the allocator (fewer readings on a loaded machine), and the process's own
    // tables (a debug build's are larger). Here it grew by 13-17 MiB on a quiet machine and
    // 21 MiB once in a CI run; counting held bytes alone (the allocator's freed pages left
    // out), it grew by 25.7-32 MiB.
    assert!(
        grew <= BUDGET_MIB * 1024 * 3 / 2,
        "RSS grew by {grew} KiB under {WAVES} waves of {CONNS} slow readers, past \
         --max-memory {budget} (+50%)"
    );
}
