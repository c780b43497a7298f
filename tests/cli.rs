//! The command line: usage errors exit 2, startup failures exit 1 with one line naming the
//! address, and the `listening` lines report the real bound addresses.

mod util;

use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use util::{connect, echo_once, run_cli, Server, TempDir};

const QUICK: Duration = Duration::from_secs(10);

#[track_caller]
fn assert_usage_error(args: &[&str]) {
    let (status, _out, err) = run_cli(args, QUICK);
    assert_eq!(
        status.code(),
        Some(2),
        "{args:?}: want exit 2, stderr:\n{err}"
    );
    assert!(!err.trim().is_empty(), "{args:?}: usage error says nothing");
}

#[test]
fn help_names_every_option() {
    let (status, out, err) = run_cli(&["--help"], QUICK);
    assert_eq!(status.code(), Some(0), "--help: stderr:\n{err}");
    for flag in [
        "--listen",
        "--udp",
        "--unix",
        "--backend",
        "--workers",
        "--max-connections",
        "--max-per-ip",
        "--max-pending",
        "--idle-timeout",
        "--shutdown-timeout",
        "--backlog",
        "--udp-rate",
        "--trace",
        "--stats-interval",
        "--listen-proxy",
        "--metrics",
        "--log-format",
        "--generate-man",
        "--generate-completions",
        "--max-memory",
        "--tcp-keepalive",
    ] {
        assert!(out.contains(flag), "--help does not mention {flag}:\n{out}");
    }
}

#[test]
fn unknown_backend_is_usage_error() {
    assert_usage_error(&["--backend", "kqueue2", "-l", "127.0.0.1:0"]);
}

#[test]
fn zero_workers_is_usage_error() {
    assert_usage_error(&["--workers", "0", "-l", "127.0.0.1:0"]);
}

#[test]
fn non_numeric_max_pending_is_usage_error() {
    assert_usage_error(&["--max-pending", "abc", "-l", "127.0.0.1:0"]);
}

#[test]
fn unknown_flag_is_usage_error() {
    assert_usage_error(&["--no-such-flag", "-l", "127.0.0.1:0"]);
}

#[test]
fn every_backend_name_is_accepted() {
    for backend in ["auto", "epoll", "poll", "select"] {
        let server = Server::start(&["--backend", backend]);
        echo_once(&connect(server.addr()), backend.as_bytes());
    }
}

#[test]
fn tcp_address_in_use_exits_1() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (status, _out, err) = run_cli(&["-l", &addr], QUICK);
    assert_eq!(status.code(), Some(1), "stderr:\n{err}");
    assert_names_address(&err, &addr);
}

#[test]
fn udp_address_in_use_exits_1() {
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (status, _out, err) = run_cli(&["-l", "127.0.0.1:0", "-u", &addr], QUICK);
    assert_eq!(status.code(), Some(1), "stderr:\n{err}");
    assert_names_address(&err, &addr);
}

#[test]
fn address_not_on_this_host_exits_1() {
    // 192.0.2.0/24 is TEST-NET-1: never a local address, so bind fails with EADDRNOTAVAIL,
    // unless the host lets any address be bound.
    let nonlocal = std::fs::read_to_string("/proc/sys/net/ipv4/ip_nonlocal_bind");
    if nonlocal.is_ok_and(|v| v.trim() != "0") {
        skip!("net.ipv4.ip_nonlocal_bind is set: binding 192.0.2.1 would succeed");
    }
    let addr = "192.0.2.1:4000";
    let (status, _out, err) = run_cli(&["-l", addr], QUICK);
    assert_eq!(status.code(), Some(1), "stderr:\n{err}");
    assert_names_address(&err, addr);
}

#[test]
fn unparsable_address_fails_cleanly() {
    // A usage error (2), not a bind failure (1), and never a panic.
    let (status, _out, err) = run_cli(&["-l", "not-an-address"], QUICK);
    assert_eq!(status.code(), Some(2), "stderr:\n{err}");
    assert!(
        err.contains("not-an-address"),
        "stderr does not name it:\n{err}"
    );
    assert!(!err.contains("panicked"), "stderr:\n{err}");
}

#[test]
fn permission_denied_exits_1() {
    // Port 1 needs CAP_NET_BIND_SERVICE; when this process can bind it, so could the server.
    if TcpListener::bind("127.0.0.1:1").is_ok() {
        skip!("this process may bind privileged ports (root?), no permission error to provoke");
    }
    let (status, _out, err) = run_cli(&["-l", "127.0.0.1:1"], QUICK);
    assert_eq!(status.code(), Some(1), "stderr:\n{err}");
    assert_names_address(&err, "127.0.0.1:1");
}

#[track_caller]
fn assert_names_address(stderr: &str, addr: &str) {
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains(addr)).collect();
    assert!(
        !lines.is_empty(),
        "no stderr line names {addr}; stderr:\n{stderr}"
    );
    assert!(
        !stderr.contains("panicked"),
        "startup failure panicked:\n{stderr}"
    );
}

#[test]
fn listening_lines_report_real_addresses() {
    let dir = TempDir::new("cli");
    let sock = dir.path().join("echo.sock");
    let sock = sock.to_str().unwrap();
    let server = Server::start(&[
        "-l",
        "127.0.0.1:0",
        "-l",
        "127.0.0.1:0",
        "-u",
        "127.0.0.1:0",
        "--unix",
        sock,
    ]);
    assert_eq!(server.tcp.len(), 2, "stdout: {:?}", server.stdout_lines());
    assert_eq!(server.udp.len(), 1, "stdout: {:?}", server.stdout_lines());
    assert_eq!(server.unix.len(), 1, "stdout: {:?}", server.stdout_lines());
    assert_ne!(server.tcp[0].port(), 0);
    assert_ne!(server.tcp[0].port(), server.tcp[1].port());
    assert_ne!(server.udp[0].port(), 0);
    assert_eq!(server.unix[0].to_str(), Some(sock));
    for addr in &server.tcp {
        echo_once(&connect(addr), b"tcp");
    }
    let unix = UnixStream::connect(&server.unix[0]).expect("connect unix listener");
    unix.set_read_timeout(Some(QUICK)).unwrap();
    echo_once(&unix, b"unix");
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(QUICK)).unwrap();
    udp.send_to(b"udp", server.udp[0]).unwrap();
    let mut buf = [0; 16];
    let (n, from) = udp.recv_from(&mut buf).expect("udp echo");
    assert_eq!((&buf[..n], from), (&b"udp"[..], server.udp[0]));
}

#[test]
fn listening_lines_come_before_serving() {
    // The line is printed (and flushed) before the server needs anything from us: a client
    // connecting right after reading it is served.
    let server = Server::start(&[]);
    let stream = TcpStream::connect(server.addr()).expect("connect right after the line");
    stream.set_read_timeout(Some(QUICK)).unwrap();
    echo_once(&stream, b"first");
}

#[test]
fn verbosity_flags_are_accepted() {
    for flag in ["-v", "-q"] {
        let server = Server::start(&[flag]);
        echo_once(&connect(server.addr()), flag.as_bytes());
    }
    let server = Server::builder().env("RUST_LOG", "debug").start();
    echo_once(&connect(server.addr()), b"RUST_LOG");
}

#[test]
fn tuning_flags_are_accepted() {
    let server = Server::start(&[
        "--backlog",
        "16",
        "--max-pending",
        "1000",
        "--shutdown-timeout",
        "2",
        "--idle-timeout",
        "0",
        "--stats-interval",
        "0",
        "--max-connections",
        "100",
        "--max-per-ip",
        "50",
        "--workers",
        "1",
    ]);
    let stream = connect(server.addr());
    // Larger than --max-pending: the small queue cap slows nothing down.
    let data = util::random_bytes(5, 100_000);
    let got = util::exchange(&stream, &data, 10_000, 5);
    util::assert_bytes_eq(&got, &data, "echo with tuning flags");
}
