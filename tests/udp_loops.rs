//! UDP guards across sockets and workers (issue 22 #5 and #6): a datagram whose source port
//! is any of the server's UDP ports is dropped, so two `-u` sockets never echo to each other;
//! `--udp-rate` caps one source address across every worker and every source port it uses.

mod util;

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use util::{wait_until, Server, IO_TIMEOUT};

fn client(bind: &str) -> UdpSocket {
    let sock = UdpSocket::bind(bind).unwrap_or_else(|e| panic!("bind {bind}: {e}"));
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    sock
}

/// Where to send to reach `addr` (a wildcard bind is reached on loopback).
fn reach(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::from((Ipv4Addr::LOCALHOST, addr.port()))
    } else {
        addr
    }
}

/// `name{labels}` -> value for every sample of the server's `/metrics`.
fn metrics(server: &Server) -> HashMap<String, f64> {
    let mut s = TcpStream::connect(server.metrics.expect("metrics line")).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// The sum over the samples of metric `name` (every worker) whose labels contain `with`.
fn total(samples: &HashMap<String, f64>, name: &str, with: &str) -> f64 {
    samples
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("{name}{{")) && k.contains(with))
        .map(|(_, v)| v)
        .sum()
}

#[test]
fn a_datagram_from_another_server_port_is_not_echoed_issue22() {
    let server = Server::start(&["--workers", "2", "-u", "0.0.0.0:0", "-u", "127.0.0.1:0"]);
    let (wildcard, specific) = (reach(server.udp[0]), server.udp[1]);
    // The server holds 127.0.0.1:port of the specific socket; 127.0.0.2 is free.
    let from_specific = client(&format!("127.0.0.2:{}", specific.port()));
    from_specific.send_to(b"loop?", wildcard).unwrap();
    let echo = from_specific.recv_from(&mut [0u8; 16]);
    assert!(
        echo.is_err(),
        "a datagram from the server's port {} was echoed: {echo:?}",
        specific.port()
    );
    // Silence was a decision: an ordinary sender is echoed by both sockets.
    let control = client("127.0.0.1:0");
    for to in [wildcard, specific] {
        control.send_to(b"control", to).unwrap();
        let mut buf = [0u8; 16];
        let (n, _) = control.recv_from(&mut buf).expect("control echoed");
        assert_eq!(&buf[..n], b"control");
    }
}

/// Sends one UDP datagram with source port `from_port` to 127.0.0.1:`to_port`, through a raw
/// socket (the kernel adds the IP header, source 127.0.0.1): `None` without CAP_NET_RAW.
fn spoof(from_port: u16, to_port: u16, payload: &[u8]) -> Option<()> {
    let raw = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::UDP)).ok()?;
    let len = u16::try_from(8 + payload.len()).unwrap();
    let mut packet = Vec::new();
    packet.extend_from_slice(&from_port.to_be_bytes());
    packet.extend_from_slice(&to_port.to_be_bytes());
    packet.extend_from_slice(&len.to_be_bytes());
    packet.extend_from_slice(&[0, 0]); // no checksum (allowed over IPv4)
    packet.extend_from_slice(payload);
    let to = SockAddr::from(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
    raw.send_to(&packet, &to).unwrap();
    Some(())
}

#[test]
fn two_udp_sockets_do_not_echo_to_each_other_issue22() {
    let server = Server::start(&[
        "-u",
        "127.0.0.1:0",
        "-u",
        "127.0.0.1:0",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let (a, b) = (server.udp[0], server.udp[1]);
    if spoof(b.port(), a.port(), b"ping-pong?").is_none() {
        skip!("a raw socket needs CAP_NET_RAW");
    }
    let mut seen = HashMap::new();
    let refused = wait_until(Duration::from_secs(5), || {
        seen = metrics(&server);
        total(&seen, "echo_udp_dropped_total", "reason=\"reflection\"") >= 1.0
    });
    // Had it been echoed, the two sockets would still be at it: look again a moment later.
    let first = total(&seen, "echo_datagrams_total", "");
    std::thread::sleep(Duration::from_millis(300));
    let later = total(&metrics(&server), "echo_datagrams_total", "");
    assert!(
        refused && first == 0.0 && later == 0.0,
        "the spoofed datagram was not dropped: {first} then {later} echoes; {seen:?}"
    );
}

#[test]
fn udp_rate_holds_per_source_across_workers_and_ports_issue22() {
    const RATE: f64 = 1_000.0;
    for workers in ["2", "4"] {
        let server = Server::start(&[
            "--workers",
            workers,
            "-u",
            "127.0.0.1:0",
            "--udp-rate",
            "1000",
        ]);
        let to = server.udp[0];
        // One source address, 16 source ports: the kernel deals them out to the workers.
        let socks: Vec<UdpSocket> = (0..16).map(|_| client("127.0.0.1:0")).collect();
        for s in &socks {
            s.set_nonblocking(true).unwrap();
        }
        let msg = [0x5a; 100];
        let (mut echoed, mut buf) = (0usize, [0u8; 256]);
        let mut drain = |socks: &[UdpSocket]| {
            for s in socks {
                loop {
                    match s.recv_from(&mut buf) {
                        Ok((n, _)) => echoed += n,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(2) {
            for s in &socks {
                s.send_to(&msg, to).unwrap();
            }
            drain(&socks);
            std::thread::sleep(Duration::from_millis(10));
        }
        let sending = started.elapsed().as_secs_f64();
        // Echoes still in flight.
        let settle = Instant::now();
        while settle.elapsed() < Duration::from_millis(300) {
            drain(&socks);
            std::thread::sleep(Duration::from_millis(10));
        }
        // A full bucket (one second's worth), then the rate until the last datagram could
        // have arrived; one datagram of slack.
        let elapsed = started.elapsed().as_secs_f64();
        let allowed = RATE * (1.0 + elapsed) + 100.0;
        eprintln!(
            "--workers {workers}: {echoed} bytes echoed in {sending:.2} s, allowed {allowed}"
        );
        assert!(
            echoed >= 1_000,
            "--workers {workers}: only {echoed} bytes echoed"
        );
        assert!(
            echoed as f64 <= allowed,
            "--workers {workers}: {echoed} bytes echoed in {sending:.2} s to one source \
             against --udp-rate 1000"
        );
    }
}
