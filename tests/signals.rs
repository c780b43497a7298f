//! SIGINT / SIGTERM: stop accepting, drain what was received, print the summary line, exit 0;
//! give up at the shutdown timeout (still exit 0, with a warning); a second signal exits at
//! once with 130.

mod util;

use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use util::{assert_bytes_eq, connect, echo_once, random_bytes, read_to_eof, Server};

/// A blocking client with a small receive buffer, so the server holds queued output.
fn small_buffer_client(addr: SocketAddr) -> TcpStream {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&SockAddr::from(addr)).expect("connect");
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(util::IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(util::IO_TIMEOUT)).unwrap();
    stream
}

/// A client that writes until the server stops taking its bytes and never reads: the server
/// cannot finish draining it.
fn stalled_client(addr: SocketAddr) -> TcpStream {
    let stream = small_buffer_client(addr);
    stream.set_nonblocking(true).unwrap();
    let chunk = vec![0x33; 64 * 1024];
    let mut last = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(5);
    while last.elapsed() < Duration::from_millis(300) && Instant::now() < deadline {
        match (&stream).write(&chunk) {
            Ok(_) => last = Instant::now(),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(5))
            }
            Err(e) => panic!("write: {e}"),
        }
    }
    stream
}

#[track_caller]
fn assert_exit(server: &mut Server, within: Duration, code: i32) -> Duration {
    let start = Instant::now();
    let status = server.wait_exit(within).unwrap_or_else(|| {
        panic!(
            "server still running {within:?} after the signal; stderr:\n{}",
            server.stderr()
        )
    });
    assert_eq!(
        status.code(),
        Some(code),
        "exit status {status}; stderr:\n{}",
        server.stderr()
    );
    start.elapsed()
}

/// Clients write more than the server's socket buffers hold and read only after SIGTERM, so
/// the server has output queued when the signal comes (the large `--max-pending` lets it
/// read all of it first).
fn drains_in_flight_data(backend: &str) {
    const CLIENTS: usize = 4;
    const EACH: usize = 6 << 20;
    // 24 MiB back through small windows: the drain is what is tested, not its speed, so a
    // timeout no loaded machine reaches.
    let mut server = Server::start(&[
        "--backend",
        backend,
        "--shutdown-timeout",
        "30",
        "--max-pending",
        "16777216",
    ]);
    let clients: Vec<(TcpStream, Vec<u8>)> = (0..CLIENTS)
        .map(|i| {
            let c = small_buffer_client(server.addr());
            let data = random_bytes(i as u64, EACH);
            (&c).write_all(&data).expect("write before the signal");
            (c, data)
        })
        .collect();
    // The server has read it all by now; megabytes of echo wait in its queues.
    thread::sleep(Duration::from_millis(300));
    server.term();
    let signalled = Instant::now();
    // Each client closes after its end of file (the server lingers until
    // then, or until the shutdown timeout).
    for (i, (c, data)) in clients.into_iter().enumerate() {
        let (got, eof) = read_to_eof(&c, EACH + 1);
        assert_bytes_eq(&got, &data, &format!("{backend}: client {i} after SIGTERM"));
        assert!(eof, "{backend}: client {i}: no EOF after the drain");
    }
    assert_exit(
        &mut server,
        Duration::from_secs(35).saturating_sub(signalled.elapsed()),
        0,
    );
    let summary = server.summary(Duration::from_secs(1));
    assert!(summary.connections >= CLIENTS as u64, "{summary:?}");
    assert!(summary.bytes >= (CLIENTS * EACH) as u64, "{summary:?}");
}

macro_rules! per_backend {
    ($($backend:ident),* $(,)?) => {$(
        mod $backend {
            #[test]
            fn drains_in_flight_data() {
                super::drains_in_flight_data(stringify!($backend));
            }
        }
    )*};
}

per_backend!(epoll, poll, select);

#[test]
fn stalled_reader_gives_up_at_shutdown_timeout() {
    let mut server = Server::start(&["--shutdown-timeout", "1"]);
    let _stalled = stalled_client(server.addr());
    let before = server.stderr().len();
    server.term();
    let took = assert_exit(&mut server, Duration::from_millis(4500), 0);
    assert!(
        took >= Duration::from_millis(700),
        "exited {took:?} after SIGTERM with undrained output and --shutdown-timeout 1"
    );
    let after = server.stderr()[before..].to_lowercase();
    assert!(
        after.contains("timeout") || after.contains("warn"),
        "no warning on stderr about the shutdown timeout:\n{after}"
    );
    server.summary(Duration::from_secs(1));
}

fn second_signal_exits_130(first: fn(&Server), second: fn(&Server)) {
    let mut server = Server::start(&["--shutdown-timeout", "30"]);
    let _stalled = stalled_client(server.addr());
    first(&server);
    thread::sleep(Duration::from_millis(300));
    assert!(
        server.try_wait().is_none(),
        "server exited on the first signal although a client is undrained"
    );
    second(&server);
    assert_exit(&mut server, Duration::from_millis(1500), 130);
}

#[test]
fn second_sigint_exits_130() {
    second_signal_exits_130(Server::int, Server::int);
}

#[test]
fn second_sigterm_exits_130() {
    second_signal_exits_130(Server::term, Server::term);
}

/// The second signal stops the loops rather than killing the process in the middle of
/// one: the Unix socket path is gone and every other worker stopped too.
#[test]
fn second_signal_removes_the_unix_socket_path() {
    let dir = util::TempDir::new("second-signal");
    let path = dir.path().join("echo.sock");
    let mut server = Server::start(&[
        "--listen",
        "127.0.0.1:0",
        "--unix",
        path.to_str().unwrap(),
        "--workers",
        "2",
        "--shutdown-timeout",
        "30",
    ]);
    let _stalled = stalled_client(server.addr());
    server.term();
    thread::sleep(Duration::from_millis(300));
    assert!(
        server.try_wait().is_none(),
        "exited before the second signal"
    );
    server.term();
    assert_exit(&mut server, Duration::from_millis(1500), 130);
    assert!(!path.exists(), "{} left behind", path.display());
}

#[test]
fn sigint_when_idle_exits_0_with_summary() {
    let mut server = Server::start(&[]);
    server.int();
    assert_exit(&mut server, Duration::from_secs(2), 0);
    let summary = server.summary(Duration::from_secs(1));
    assert_eq!(
        (summary.connections, summary.bytes, summary.datagrams),
        (0, 0, 0)
    );
}

#[test]
fn summary_counts_connections_bytes_datagrams() {
    let mut server = Server::start(&["-l", "127.0.0.1:0", "-u", "127.0.0.1:0"]);
    for i in 0..3 {
        let c = connect(server.addr());
        echo_once(&c, &random_bytes(i, 1000));
    }
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    for _ in 0..5 {
        udp.send_to(b"0123456789", server.udp[0]).unwrap();
        let mut buf = [0; 16];
        udp.recv_from(&mut buf).expect("datagram echo");
    }
    server.term();
    assert_exit(&mut server, Duration::from_secs(3), 0);
    let summary = server.summary(Duration::from_secs(1));
    assert_eq!(summary.connections, 3, "{summary:?}");
    assert_eq!(summary.datagrams, 5, "{summary:?}");
    assert!(
        (3000..=3050).contains(&summary.bytes),
        "bytes echoed: want 3000 (TCP) or 3050 (with UDP), {summary:?}"
    );
}

#[test]
fn new_connections_not_served_after_sigterm() {
    let mut server = Server::start(&["--shutdown-timeout", "3"]);
    let addr = server.addr();
    let _stalled = stalled_client(addr);
    server.term();
    thread::sleep(Duration::from_millis(300));
    assert!(
        server.try_wait().is_none(),
        "server should still be draining"
    );
    if let Ok(late) = TcpStream::connect(addr) {
        let served = util::probe(&late, b"late", Duration::from_millis(500));
        assert_ne!(
            served,
            Some(true),
            "a connection made after SIGTERM was served"
        );
    }
}

#[test]
fn sigterm_with_a_thousand_loaded_connections() {
    const CLIENTS: usize = 1000;
    const EACH: usize = 4096;
    let limit = util::raise_nofile();
    if limit < 2 * CLIENTS as u64 + 200 {
        skip!("RLIMIT_NOFILE hard limit {limit} is too low for {CLIENTS} clients");
    }
    // The drain is what is tested, not its speed: a timeout no loaded machine reaches.
    let mut server = Server::start(&["--shutdown-timeout", "30"]);
    let clients: Vec<(TcpStream, Vec<u8>)> = (0..CLIENTS)
        .map(|i| {
            let c = connect(server.addr());
            // One echo first: accepted, then. SIGTERM closes the listener, and with it any
            // connection still waiting in its accept queue.
            echo_once(&c, b"+");
            let data = random_bytes(i as u64, EACH);
            (&c).write_all(&data).unwrap();
            (c, data)
        })
        .collect();
    server.term();
    let signalled = Instant::now();
    // Each client closes once it has read its end of file, as a client
    // does: the server lingers after its FIN until the peer closes (or the
    // shutdown timeout), so that closing resets nothing under its reads.
    for (i, (c, data)) in clients.into_iter().enumerate() {
        let (got, eof) = read_to_eof(&c, EACH + 1);
        assert_bytes_eq(&got, &data, &format!("client {i} after SIGTERM"));
        assert!(eof, "client {i}: no EOF after the drain");
    }
    assert_exit(
        &mut server,
        Duration::from_secs(35).saturating_sub(signalled.elapsed()),
        0,
    );
    let summary = server.summary(Duration::from_secs(1));
    assert_eq!(summary.connections, CLIENTS as u64, "{summary:?}");
    assert_eq!(summary.bytes, (CLIENTS * (1 + EACH)) as u64, "{summary:?}");
}

/// The server is paused by backpressure, so most of what the client sent still sits in the
/// server's kernel receive buffer at SIGTERM: that is "already received" and comes back too.
/// Only what is still in the client's own send buffer may be lost.
#[test]
fn sigterm_echoes_data_still_in_the_kernel() {
    let mut server = Server::start(&["--max-pending", "65536", "--shutdown-timeout", "5"]);
    let addr = server.addr();
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.set_send_buffer_size(16 * 1024).unwrap();
    socket.connect(&SockAddr::from(addr)).expect("connect");
    let slack = socket.send_buffer_size().unwrap();
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(util::IO_TIMEOUT)).unwrap();
    stream.set_nonblocking(true).unwrap();
    let pattern = util::Pattern::new(9);
    let mut written = 0u64;
    let mut last = Instant::now();
    // The server's send buffer keeps growing slowly, so the writes may trickle on: a second
    // is enough to fill its receive buffer.
    let deadline = Instant::now() + Duration::from_secs(1);
    while last.elapsed() < Duration::from_millis(200) && Instant::now() < deadline {
        match (&stream).write(pattern.at(written, 64 * 1024)) {
            Ok(n) => {
                written += n as u64;
                last = Instant::now();
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(5))
            }
            Err(e) => panic!("write: {e}"),
        }
    }
    server.term();
    stream.set_nonblocking(false).unwrap();
    let got = pattern.verify(&stream, written);
    // What the client's kernel may still hold: its send buffer, plus one loopback segment
    // (64 KiB) that the zero window kept out.
    let slack = slack as u64 + 64 * 1024;
    assert!(
        got + slack >= written,
        "echoed {got} of {written} bytes written before SIGTERM (allowed shortfall {slack})"
    );
    // Our EOF lets the server finish this connection without waiting for its timeout.
    stream.shutdown(Shutdown::Write).unwrap();
    let (rest, eof) = read_to_eof(&stream, 0);
    assert!(rest.is_empty() && eof, "no clean EOF after the drain");
    assert_exit(&mut server, Duration::from_secs(3), 0);
}

/// A script may signal the server as soon as it has read the `listening` line: the handlers
/// must be in place by then, or the default action kills it (exit by signal, no summary).
/// The window is small, so many servers are raced at once.
#[test]
fn signal_right_after_listening_line_exits_0() {
    thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..40 {
                    let mut server = Server::start(&[]);
                    server.term();
                    let status = server
                        .wait_exit(Duration::from_secs(3))
                        .expect("server still running after SIGTERM");
                    assert_eq!(
                        status.code(),
                        Some(0),
                        "SIGTERM right after the listening line: {status}"
                    );
                }
            });
        }
    });
}
