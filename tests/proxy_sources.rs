//! Who may hold a PROXY listener's slots: `--max-pending-headers-per-ip`
//! caps the connections one TCP peer keeps waiting for their header, and
//! `--proxy-from` takes headers only from trusted proxies, closing the
//! rest at accept.

mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use util::{echo_once, wait_until, Server, IO_TIMEOUT};

const WAIT: Duration = Duration::from_secs(10);

fn v1(client: &str) -> Vec<u8> {
    let c: SocketAddr = client.parse().unwrap();
    format!("PROXY TCP4 {} 192.0.2.200 {} 7\r\n", c.ip(), c.port()).into_bytes()
}

/// A connection to `addr` from the loopback address `from`.
fn connect_from(from: &str, addr: SocketAddr) -> TcpStream {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let local: SocketAddr = format!("{from}:0").parse().unwrap();
    s.bind(&local.into()).unwrap();
    s.connect(&addr.into()).unwrap();
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

/// Whether the server has closed `s` (EOF or reset), looking without waiting.
fn closed_now(s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let closed = match (&*s).read(&mut [0u8; 64]) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() == ErrorKind::ConnectionReset,
    };
    s.set_nonblocking(false).unwrap();
    closed
}

fn refused(server: &Server, reason: &str) -> f64 {
    server.metric(&format!(
        "echo_connections_refused_total{{worker=\"0\",reason=\"{reason}\"}}"
    ))
}

#[test]
fn one_source_cannot_hold_the_slots_while_its_headers_are_pending() {
    let server = Server::start(&[
        "--listen-proxy",
        "127.0.0.1:0",
        "--max-per-ip",
        "2",
        "--max-connections",
        "30",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let addr = server.proxy[0];
    // 40 connections from one address that never send their header: the
    // default cap is 8 (--max-per-ip is smaller), so 32 are closed at once.
    let silent: Vec<TcpStream> = (0..40).map(|_| connect_from("127.0.0.1", addr)).collect();
    assert!(
        wait_until(WAIT, || refused(&server, "per_ip") == 32.0),
        "refused: {}",
        refused(&server, "per_ip")
    );
    // Within the 3 s header timeout: two are still waiting, the rest closed.
    let open: Vec<&TcpStream> = silent.iter().filter(|s| !closed_now(s)).collect();
    assert_eq!(open.len(), 8, "connections still waiting for a header");
    // Another source is served: the slots were not all taken.
    let other = connect_from("127.0.0.2", addr);
    (&other).write_all(&v1("198.51.100.7:1000")).unwrap();
    echo_once(&other, b"served");
    // A header sent on a waiting one frees its place for the next.
    let mut first = open[0];
    first.write_all(&v1("198.51.100.1:1000")).unwrap();
    echo_once(first, b"promoted");
    let next = connect_from("127.0.0.1", addr);
    (&next).write_all(&v1("198.51.100.2:1000")).unwrap();
    echo_once(&next, b"next");
    server
        .wait_stderr_line(WAIT, |l| l.contains("--max-pending-headers-per-ip"))
        .expect("the refusal is logged, naming the flag");
}

#[test]
fn the_flag_sets_the_cap() {
    let server = Server::start(&[
        "--listen-proxy",
        "127.0.0.1:0",
        "--max-pending-headers-per-ip",
        "5",
        "--max-per-ip",
        "100",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let addr = server.proxy[0];
    let silent: Vec<TcpStream> = (0..12).map(|_| connect_from("127.0.0.1", addr)).collect();
    assert!(wait_until(WAIT, || refused(&server, "per_ip") == 7.0));
    assert_eq!(silent.iter().filter(|s| !closed_now(s)).count(), 5);
}

#[test]
fn proxy_from_takes_headers_only_from_listed_sources() {
    for (trusted, served) in [("127.0.0.1/32", true), ("10.0.0.0/8", false)] {
        let server = Server::start(&[
            "--listen-proxy",
            "127.0.0.1:0",
            "--proxy-from",
            trusted,
            "--proxy-from",
            "2001:db8::/32",
            "--max-per-ip",
            "1",
            "--metrics",
            "127.0.0.1:0",
        ]);
        let addr = server.proxy[0];
        let s = connect_from("127.0.0.1", addr);
        // Refused, the socket may be closed before the writes: they may fail.
        let _ = (&s).write_all(&v1("198.51.100.1:1000"));
        let _ = (&s).write_all(b"hello");
        let mut got = [0u8; 5];
        let echoed = (&s).read_exact(&mut got).is_ok();
        assert_eq!(echoed, served, "--proxy-from {trusted}");
        if served {
            assert_eq!(&got, b"hello");
            // Trusted: its silent connections are not capped per source.
            let silent: Vec<TcpStream> = (0..5).map(|_| connect_from("127.0.0.1", addr)).collect();
            (&silent[4]).write_all(&v1("198.51.100.2:1000")).unwrap();
            echo_once(&silent[4], b"still served");
            assert!(silent[..4].iter().all(|s| !closed_now(s)));
            assert_eq!(refused(&server, "proxy_untrusted"), 0.0);
        } else {
            assert!(wait_until(WAIT, || refused(&server, "proxy_untrusted") == 1.0));
        }
    }
}

#[test]
fn bad_ranges_are_usage_errors_naming_the_flag() {
    for bad in ["10.0.0.0/33", "10.1.2.3/8", "nonsense", "::/129"] {
        let (status, _out, err) = util::run_cli(&["--proxy-from", bad], WAIT);
        assert_eq!(status.code(), Some(2), "--proxy-from {bad}: stderr:\n{err}");
        assert!(
            err.contains("--proxy-from") && err.contains(bad),
            "--proxy-from {bad}: stderr does not name both:\n{err}"
        );
    }
}
