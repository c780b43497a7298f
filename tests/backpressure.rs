//! Backpressure: at `--max-pending` queued bytes the server stops reading a connection, so a
//! client that writes without reading cannot grow the server's memory, and loses nothing once
//! it reads.

mod util;

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use util::{connect, echo_once, Pattern, Server};

const MIB: u64 = 1 << 20;

/// A blocking client with small fixed socket buffers: what the kernel cannot hold, the
/// server would have to.
fn small_buffer_client(addr: SocketAddr) -> TcpStream {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    socket.set_send_buffer_size(64 * 1024).unwrap();
    socket.connect(&SockAddr::from(addr)).expect("connect");
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
}

/// Waits until `progress` has not moved for `stall` (or reached `total`), at most 15 s;
/// returns the peak server RSS (KiB) seen meanwhile.
fn wait_for_stall(server: &Server, progress: &AtomicUsize, total: usize, stall: Duration) -> u64 {
    let mut peak = server.rss_kib();
    let mut last = progress.load(Ordering::Relaxed);
    let mut since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(15);
    while since.elapsed() < stall && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
        peak = peak.max(server.rss_kib());
        let now = progress.load(Ordering::Relaxed);
        if now >= total {
            break;
        }
        if now != last {
            last = now;
            since = Instant::now();
        }
    }
    peak.max(server.rss_kib())
}

/// Starts a server with `--max-pending 65536`, warmed up by one echo; returns it, the control
/// connection and the RSS baseline.
fn start_small_queue() -> (Server, TcpStream, u64) {
    let server = Server::start(&["--max-pending", "65536"]);
    let control = connect(server.addr());
    echo_once(&control, &[7; 100_000]);
    thread::sleep(Duration::from_millis(100));
    let base = server.rss_kib();
    (server, control, base)
}

#[test]
fn writer_that_never_reads_is_bounded_then_lossless() {
    const TOTAL: u64 = 32 * MIB;
    let (server, control, base) = start_small_queue();
    let pattern = Pattern::new(1);
    let stream = small_buffer_client(server.addr());
    let progress = AtomicUsize::new(0);
    thread::scope(|s| {
        let writer = s.spawn(|| pattern.write(&stream, TOTAL, 64 * 1024, &progress));
        let peak = wait_for_stall(
            &server,
            &progress,
            TOTAL as usize,
            Duration::from_millis(500),
        );
        let grown = peak.saturating_sub(base);
        assert!(
            grown < 8 * 1024,
            "server RSS grew {grown} KiB while a client wrote {} bytes without reading",
            progress.load(Ordering::Relaxed)
        );
        // The paused connection does not hold up anyone else.
        echo_once(&control, b"others still served");
        let read = pattern.verify(&stream, TOTAL);
        assert_eq!(
            read, TOTAL,
            "bytes echoed back in order before the stream ended"
        );
        assert_eq!(
            writer.join().unwrap(),
            TOTAL,
            "bytes the client could write"
        );
    });
}

#[test]
fn flood_of_non_readers_stays_under_connections_times_max_pending() {
    const CLIENTS: usize = 8;
    const EACH: u64 = 8 * MIB;
    let (server, control, base) = start_small_queue();
    let pattern = Pattern::new(2);
    let streams: Vec<TcpStream> = (0..CLIENTS)
        .map(|_| small_buffer_client(server.addr()))
        .collect();
    let progress = AtomicUsize::new(0);
    thread::scope(|s| {
        let writers: Vec<_> = streams
            .iter()
            .map(|stream| {
                let (pattern, progress) = (&pattern, &progress);
                s.spawn(move || pattern.write(stream, EACH, 64 * 1024, progress))
            })
            .collect();
        let total = CLIENTS * EACH as usize;
        let peak = wait_for_stall(&server, &progress, total, Duration::from_millis(500));
        let grown = peak.saturating_sub(base);
        // connections x --max-pending (twice, for allocator slack) plus a small constant.
        let bound = (CLIENTS as u64 * 2 * 64) + 8 * 1024;
        assert!(
            grown < bound,
            "server RSS grew {grown} KiB (bound {bound} KiB) while {CLIENTS} clients wrote {} bytes without reading",
            progress.load(Ordering::Relaxed)
        );
        echo_once(&control, b"others still served");
        let readers: Vec<_> = streams
            .iter()
            .map(|stream| {
                let pattern = &pattern;
                s.spawn(move || pattern.verify(stream, EACH))
            })
            .collect();
        for (i, r) in readers.into_iter().enumerate() {
            assert_eq!(r.join().unwrap(), EACH, "client {i}: bytes echoed in order");
        }
        for w in writers {
            assert_eq!(w.join().unwrap(), EACH);
        }
    });
}
