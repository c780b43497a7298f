//! UDP echo (RFC 862): each datagram goes back to its sender unchanged, up to 65,507 bytes;
//! datagrams from small-service ports and from the server's own ports are dropped (no
//! echo-to-echo loops; across sockets: udp_loops.rs); `--udp-rate` caps reflected bytes per source.

mod util;

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use util::{assert_bytes_eq, random_bytes, Server};

fn start(extra: &[&str]) -> Server {
    let mut args = vec!["-l", "127.0.0.1:0", "-u", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    Server::start(&args)
}

fn client(bind: &str) -> io::Result<UdpSocket> {
    let sock = UdpSocket::bind(bind)?;
    sock.set_read_timeout(Some(Duration::from_secs(3)))?;
    Ok(sock)
}

/// Receives one datagram within the socket's timeout.
fn recv(sock: &UdpSocket) -> Option<(Vec<u8>, SocketAddr)> {
    let mut buf = vec![0; 65_536];
    match sock.recv_from(&mut buf) {
        Ok((n, from)) => Some((buf[..n].to_vec(), from)),
        Err(_) => None,
    }
}

/// Asserts nothing arrives on `sock` within `wait`.
#[track_caller]
fn assert_silent(sock: &UdpSocket, wait: Duration, what: &str) {
    sock.set_read_timeout(Some(wait)).unwrap();
    if let Some((data, from)) = recv(sock) {
        panic!("{what}: got {} bytes from {from}", data.len());
    }
}

fn datagrams_echoed_unchanged(backend: &str) {
    let server = start(&["--backend", backend]);
    let udp = server.udp[0];
    let sock = client("127.0.0.1:0").unwrap();
    for (i, size) in [1usize, 1000, 65_507].into_iter().enumerate() {
        let msg = random_bytes(i as u64, size);
        sock.send_to(&msg, udp).expect("send datagram");
        let (got, from) =
            recv(&sock).unwrap_or_else(|| panic!("{backend}: no echo of {size} bytes"));
        assert_eq!(from, udp, "{backend}: echo came from elsewhere");
        assert_bytes_eq(&got, &msg, &format!("{backend}: {size}-byte datagram"));
    }
    // An empty datagram is a datagram too.
    sock.send_to(&[], udp).unwrap();
    let (got, _) = recv(&sock).unwrap_or_else(|| panic!("{backend}: no echo of an empty datagram"));
    assert!(got.is_empty());
}

fn each_sender_gets_its_own(backend: &str) {
    let server = start(&["--backend", backend]);
    let socks: Vec<UdpSocket> = (0..20).map(|_| client("127.0.0.1:0").unwrap()).collect();
    for (i, s) in socks.iter().enumerate() {
        s.send_to(format!("datagram {i}").as_bytes(), server.udp[0])
            .unwrap();
    }
    for (i, s) in socks.iter().enumerate() {
        let (got, _) = recv(s).unwrap_or_else(|| panic!("{backend}: sender {i} got nothing"));
        assert_eq!(
            got,
            format!("datagram {i}").as_bytes(),
            "{backend}: sender {i}"
        );
    }
}

macro_rules! per_backend {
    ($($backend:ident),* $(,)?) => {$(
        mod $backend {
            #[test]
            fn datagrams_echoed_unchanged() {
                super::datagrams_echoed_unchanged(stringify!($backend));
            }

            #[test]
            fn each_sender_gets_its_own() {
                super::each_sender_gets_its_own(stringify!($backend));
            }
        }
    )*};
}

per_backend!(epoll, poll, select);

/// Sends from `from` (a bound socket) and checks nothing comes back, then that an ordinary
/// sender is still echoed (so silence was a decision, not a dead server).
fn assert_dropped(server: &Server, from: &UdpSocket, what: &str) {
    from.send_to(b"loop?", server.udp[0]).unwrap();
    assert_silent(from, Duration::from_millis(500), what);
    let control = client("127.0.0.1:0").unwrap();
    control.send_to(b"control", server.udp[0]).unwrap();
    let (got, _) = recv(&control).unwrap_or_else(|| panic!("{what}: control got no echo"));
    assert_eq!(got, b"control");
}

#[test]
fn echo_port_source_not_echoed() {
    let server = start(&[]);
    let Ok(sock) = client("127.0.0.1:7") else {
        skip!("cannot bind UDP 127.0.0.1:7 (needs root or CAP_NET_BIND_SERVICE, or in use)");
    };
    assert_dropped(&server, &sock, "datagram from port 7");
}

#[test]
fn small_service_ports_not_echoed() {
    let server = start(&[]);
    let mut tried = 0;
    for port in [13, 17, 19, 37] {
        if let Ok(sock) = client(&format!("127.0.0.1:{port}")) {
            assert_dropped(&server, &sock, &format!("datagram from port {port}"));
            tried += 1;
        }
    }
    if tried == 0 {
        skip!("cannot bind UDP ports 13, 17, 19, 37 (needs root)");
    }
}

#[test]
fn own_port_source_not_echoed() {
    let server = start(&[]);
    let port = server.udp[0].port();
    // The server holds 127.0.0.1:port; the same port on another loopback address is free.
    let Ok(sock) = client(&format!("127.0.0.2:{port}")) else {
        skip!("cannot bind 127.0.0.2:{port}");
    };
    assert_dropped(&server, &sock, "datagram from the server's own port");
}

#[test]
fn udp_rate_caps_reflected_bytes() {
    const RATE: usize = 20_000;
    let server = start(&["--udp-rate", &RATE.to_string()]);
    let sock = client("127.0.0.1:0").unwrap();
    let msg = vec![0xab; 1000];
    // 100 KB in well under a second: five times the per-second allowance.
    for _ in 0..100 {
        sock.send_to(&msg, server.udp[0]).unwrap();
    }
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let start = Instant::now();
    let mut echoed = 0;
    while start.elapsed() < Duration::from_millis(700) {
        if let Some((got, _)) = recv(&sock) {
            echoed += got.len();
        }
    }
    assert!(echoed > 0, "--udp-rate {RATE}: nothing echoed at all");
    assert!(
        echoed <= 2 * RATE,
        "--udp-rate {RATE}: {echoed} bytes reflected from 100,000 sent in under a second"
    );
    // Another source address has its own allowance.
    let other = client("127.0.0.2:0").unwrap();
    other.send_to(b"other source", server.udp[0]).unwrap();
    let (got, _) = recv(&other).expect("another source is echoed");
    assert_eq!(got, b"other source");
}

#[test]
fn no_udp_by_default() {
    let server = Server::start(&[]);
    assert!(server.udp.is_empty(), "stdout: {:?}", server.stdout_lines());
}
