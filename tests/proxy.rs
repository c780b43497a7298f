//! `--listen-proxy`: PROXY protocol v1 and v2 headers are consumed (never
//! echoed) and their client address stands for the connection; missing,
//! malformed, oversized or late headers close the connection, counted, with
//! nothing echoed; plain listeners are unaffected. Includes a proptest that
//! throws arbitrary bytes at the real server.

mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use util::{connect, echo_once, wait_until, Server, IO_TIMEOUT};

const WAIT: Duration = Duration::from_secs(10);

fn v1(client: &str) -> Vec<u8> {
    let c: SocketAddr = client.parse().unwrap();
    let family = if c.is_ipv4() { "TCP4" } else { "TCP6" };
    let dst = if c.is_ipv4() {
        "192.0.2.200"
    } else {
        "2001:db8::200"
    };
    format!("PROXY {family} {} {dst} {} 7\r\n", c.ip(), c.port()).into_bytes()
}

/// A v2 header by hand (the spec's layout), so the test shares no code with
/// the server's parser. `client` None: a LOCAL header.
fn v2(client: Option<&str>) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    match client.map(|c| c.parse::<SocketAddr>().unwrap()) {
        None => h.extend_from_slice(&[0x20, 0x00, 0, 0]),
        Some(SocketAddr::V4(c)) => {
            h.extend_from_slice(&[0x21, 0x11, 0, 12]);
            h.extend_from_slice(&c.ip().octets());
            h.extend_from_slice(&[192, 0, 2, 200]);
            h.extend_from_slice(&c.port().to_be_bytes());
            h.extend_from_slice(&7u16.to_be_bytes());
        }
        Some(SocketAddr::V6(c)) => {
            h.extend_from_slice(&[0x21, 0x21, 0, 36]);
            h.extend_from_slice(&c.ip().octets());
            h.extend_from_slice(
                &"2001:db8::200"
                    .parse::<std::net::Ipv6Addr>()
                    .unwrap()
                    .octets(),
            );
            h.extend_from_slice(&c.port().to_be_bytes());
            h.extend_from_slice(&7u16.to_be_bytes());
        }
    }
    h
}

/// Sends `bytes`, half-closes, and returns everything the server sent back
/// before closing (a reset counts as the end).
fn exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let _ = s.write_all(bytes);
    let _ = s.shutdown(Shutdown::Write);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("reading the echo: {e}"),
        }
    }
}

/// Whether the server has closed `s` (EOF or reset) within `wait`.
fn closed_within(s: &TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut r = s;
    match r.read(&mut [0u8; 64]) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() == ErrorKind::ConnectionReset,
    }
}

#[test]
fn v1_and_v2_headers_are_consumed_and_name_the_client() {
    let server = Server::start(&["--listen-proxy", "127.0.0.1:0", "--trace"]);
    assert_eq!(server.tcp.len(), 0);
    let addr = server.proxy[0];
    for (header, client) in [
        (v1("192.0.2.1:4001"), "192.0.2.1:4001"),
        (v1("[2001:db8::1]:4002"), "[2001:db8::1]:4002"),
        (v2(Some("192.0.2.3:4003")), "192.0.2.3:4003"),
        (v2(Some("[2001:db8::4]:4004")), "[2001:db8::4]:4004"),
    ] {
        let payload = format!("hello from {client}");
        let got = exchange(addr, &[header.as_slice(), payload.as_bytes()].concat());
        assert_eq!(
            String::from_utf8_lossy(&got),
            payload,
            "header was echoed or data lost"
        );
        let line = server
            .wait_stderr_line(WAIT, |l| l.contains("received") && l.contains(client))
            .unwrap_or_else(|| panic!("no trace for {client}:\n{}", server.stderr()));
        assert!(line.contains(&payload.len().to_string()), "{line}");
    }
    // v2 LOCAL (the proxy's own health check): accepted, echoed, under the
    // proxy's address.
    assert_eq!(
        exchange(addr, &[v2(None).as_slice(), b"local"].concat()),
        b"local"
    );
}

#[test]
fn header_and_data_in_separate_pieces() {
    let server = Server::start(&["--listen-proxy", "127.0.0.1:0"]);
    let header = v2(Some("192.0.2.5:5000"));
    let s = TcpStream::connect(server.proxy[0]).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    for piece in header.chunks(5) {
        (&s).write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    echo_once(&s, b"after a slow header");
}

#[test]
fn max_per_ip_counts_the_client_in_the_header() {
    let server = Server::start(&[
        "--listen-proxy",
        "127.0.0.1:0",
        "--max-per-ip",
        "1",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let addr = server.proxy[0];
    // Every connection comes from the proxy's 127.0.0.1, yet two clients fit.
    let a = TcpStream::connect(addr).unwrap();
    (&a).write_all(&v1("198.51.100.1:1000")).unwrap();
    let b = TcpStream::connect(addr).unwrap();
    (&b).write_all(&v1("198.51.100.2:1000")).unwrap();
    for s in [&a, &b] {
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        echo_once(s, b"fits");
    }
    // A second connection from the same client is refused.
    let again = TcpStream::connect(addr).unwrap();
    (&again).write_all(&v1("198.51.100.1:1001")).unwrap();
    assert!(closed_within(&again, WAIT), "over --max-per-ip but kept");
    server
        .wait_stderr_line(WAIT, |l| {
            l.contains("--max-per-ip") && l.contains("198.51.100.1")
        })
        .expect("the refusal names the client");
    // Published at the end of the loop's round, just after the log line.
    assert!(wait_until(WAIT, || {
        let per_ip = "echo_connections_refused_total{worker=\"0\",reason=\"per_ip\"}";
        server.metric(per_ip) == 1.0
    }));
    // Closing the first frees its client's place.
    drop(a);
    assert!(wait_until(WAIT, || {
        let s = TcpStream::connect(addr).unwrap();
        (&s).write_all(&v1("198.51.100.1:1002")).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        (&s).write_all(b"x").unwrap();
        let mut one = [0u8; 1];
        matches!((&s).read(&mut one), Ok(1))
    }));
}

#[test]
fn bad_headers_are_closed_counted_and_never_echoed() {
    let server = Server::start(&["--listen-proxy", "127.0.0.1:0", "--metrics", "127.0.0.1:0"]);
    let addr = server.proxy[0];
    let mut big_v2 = v2(Some("192.0.2.1:1"));
    big_v2[14..16].copy_from_slice(&5000u16.to_be_bytes());
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("plain data", b"hello, no header here\r\n".to_vec()),
        ("http", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        (
            "bad v1",
            b"PROXY TCP4 999.1.1.1 1.1.1.1 1 2\r\ndata".to_vec(),
        ),
        (
            "v1 without CRLF",
            [b"PROXY TCP4 ".as_slice(), &[b'1'; 200]].concat(),
        ),
        ("v2 declaring 5000 bytes", big_v2[..16].to_vec()),
        ("v2 bad version", {
            let mut h = v2(None);
            h[12] = 0x30;
            h
        }),
        ("nothing at all", Vec::new()),
    ];
    for (what, bytes) in &cases {
        assert_eq!(exchange(addr, bytes), b"", "{what}: something was echoed");
    }
    assert!(
        wait_until(WAIT, || {
            server.metric("echo_connections_refused_total{worker=\"0\",reason=\"proxy_header\"}")
                == cases.len() as f64
        }),
        "refusals not counted"
    );
}

#[test]
fn a_header_that_never_comes_times_out() {
    let server = Server::start(&["--listen-proxy", "127.0.0.1:0", "--metrics", "127.0.0.1:0"]);
    let silent = TcpStream::connect(server.proxy[0]).unwrap();
    let partial = TcpStream::connect(server.proxy[0]).unwrap();
    (&partial).write_all(b"PROXY TCP4 192.0").unwrap();
    let started = Instant::now();
    assert!(closed_within(&silent, WAIT));
    assert!(closed_within(&partial, WAIT));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(8),
        "{waited:?}"
    );
    assert!(wait_until(WAIT, || {
        let proxy_header = "echo_connections_refused_total{worker=\"0\",reason=\"proxy_header\"}";
        server.metric(proxy_header) == 2.0
    }));
}

#[test]
fn plain_listeners_beside_a_proxy_listener_are_unaffected() {
    let server = Server::start(&["-l", "127.0.0.1:0", "--listen-proxy", "127.0.0.1:0"]);
    // A PROXY header on a plain listener is just data: echoed as is.
    let header = v1("192.0.2.1:1");
    echo_once(&connect(server.addr()), &header);
    echo_once(&connect(server.addr()), b"no header needed here");
    assert_eq!(exchange(server.proxy[0], b"no header"), b"");
}

#[test]
fn several_workers_share_proxy_listeners() {
    let server = Server::start(&["--listen-proxy", "127.0.0.1:0", "--workers", "3"]);
    for i in 0..20 {
        let payload = format!("client {i}");
        let header = v1(&format!("192.0.2.{}:{}", i + 1, 1000 + i));
        let got = exchange(
            server.proxy[0],
            &[header.as_slice(), payload.as_bytes()].concat(),
        );
        assert_eq!(got, payload.as_bytes());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Arbitrary bytes after a real header come back exactly; arbitrary bytes
    /// with no header come back not at all; and nothing is left behind.
    #[test]
    fn arbitrary_bytes_on_a_proxy_listener(
        cases in proptest::collection::vec(
            (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..300)), 1..6)
    ) {
        let server = Server::start(&["--listen-proxy", "127.0.0.1:0", "--metrics", "127.0.0.1:0"]);
        for (with_header, bytes) in cases {
            // Random bytes never start like a header by chance (no 'P' or '\r'
            // first byte); with a header, anything may follow it.
            let headerless = !bytes.is_empty() && !matches!(bytes[0], b'P' | b'\r');
            if with_header {
                let header = v1("203.0.113.9:9999");
                let got = exchange(server.proxy[0], &[header.as_slice(), &bytes].concat());
                prop_assert_eq!(got, bytes);
            } else if headerless {
                prop_assert_eq!(exchange(server.proxy[0], &bytes), Vec::<u8>::new());
            }
        }
        // Never a leak: every connection is gone once its client is.
        prop_assert!(wait_until(WAIT, || server.metric( "echo_connections_open") == 0.0));
    }
}

/// Real headers from a real proxy: HAProxy in front, `send-proxy` (v1) and
/// `send-proxy-v2`; the server must see the client's own address. CI
/// installs haproxy; elsewhere the test says it is skipped without it.
#[test]
fn behind_haproxy_with_v1_and_v2() {
    let have = std::process::Command::new("haproxy")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        skip!("haproxy is not installed (apt-get install haproxy)");
    }
    let server = Server::start(&["--listen-proxy", "127.0.0.1:0", "--trace"]);
    let dir = util::TempDir::new("haproxy");
    let fronts: Vec<u16> = (0..2)
        .map(|_| {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        })
        .collect();
    let backend = server.proxy[0];
    let config = format!(
        "defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n\
         frontend v1\n  bind 127.0.0.1:{}\n  default_backend b1\n\
         frontend v2\n  bind 127.0.0.1:{}\n  default_backend b2\n\
         backend b1\n  server s1 {backend} send-proxy\n\
         backend b2\n  server s2 {backend} send-proxy-v2\n",
        fronts[0], fronts[1]
    );
    let path = dir.path().join("haproxy.cfg");
    std::fs::write(&path, config).unwrap();
    let mut haproxy = std::process::Command::new("haproxy")
        .arg("-f")
        .arg(&path)
        .arg("-db")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for (version, port) in ["v1", "v2"].iter().zip(&fronts) {
        let s = util::wait_for(WAIT, || TcpStream::connect(("127.0.0.1", *port)).ok())
            .expect("haproxy listens");
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let client = s.local_addr().unwrap().to_string();
        echo_once(&s, format!("through haproxy, {version}").as_bytes());
        let seen = server.wait_stderr_line(WAIT, |l| {
            l.contains("PROXY header from") && l.contains(&format!("client {client}"))
        });
        assert!(
            seen.is_some(),
            "{version}: the server did not see client {client}:\n{}",
            server.stderr()
        );
    }
    let _ = haproxy.kill();
    let _ = haproxy.wait();
}
