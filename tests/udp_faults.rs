//! UDP faults (issue 18 §1): `drop`, `duplicate`, `reorder` and `delay=DUR`, each with a
//! probability per datagram drawn from `--fault-seed`, counted in
//! `echo_faults_injected_total{kind}`; `on=` ties one to a `--udp` socket; `--control` changes
//! them for datagrams received afterwards.

mod util;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use util::{wait_until, Server};

const WAIT: Duration = Duration::from_secs(10);

/// A server with a clean UDP socket on 127.0.0.1 and one on 127.0.0.2 that `faults` name
/// with `on=127.0.0.2:0`, and metrics.
fn start(faults: &[&str], extra: &[&str]) -> Server {
    let mut args = vec![
        "-u",
        "127.0.0.1:0",
        "-u",
        "127.0.0.2:0",
        "--metrics",
        "127.0.0.1:0",
    ];
    for f in faults {
        args.push("--fault");
        args.push(f);
    }
    args.extend_from_slice(extra);
    Server::start(&args)
}

fn client() -> UdpSocket {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(WAIT)).unwrap();
    sock
}

fn recv(sock: &UdpSocket) -> Option<Vec<u8>> {
    let mut buf = [0u8; 2048];
    sock.recv(&mut buf).ok().map(|n| buf[..n].to_vec())
}

/// Whatever has arrived by now, without waiting.
fn arrived(sock: &UdpSocket) -> Vec<Vec<u8>> {
    sock.set_nonblocking(true).unwrap();
    let got = std::iter::from_fn(|| recv(sock)).collect();
    sock.set_nonblocking(false).unwrap();
    got
}

fn injected(server: &Server, kind: &str) -> u64 {
    server.metric(&format!(
        "echo_faults_injected_total{{worker=\"0\",kind=\"{kind}\"}}"
    )) as u64
}

fn echoed(server: &Server) -> u64 {
    server.metric("echo_datagrams_total") as u64
}

#[test]
fn drop_echoes_nothing_and_the_clean_socket_still_echoes_issue18() {
    let server = start(&["drop,on=127.0.0.2:0"], &[]);
    let (clean, faulty) = (server.udp[0], server.udp[1]);
    let sock = client();
    for i in 0..5u8 {
        sock.send_to(&[i; 10], faulty).unwrap();
    }
    assert!(
        wait_until(WAIT, || injected(&server, "drop") == 5),
        "five drops counted"
    );
    sock.send_to(b"clean", clean).unwrap();
    assert_eq!(recv(&sock).as_deref(), Some(&b"clean"[..]));
    // Every dropped datagram was handled before the count showed it: nothing came back.
    assert!(arrived(&sock).is_empty());
    assert!(wait_until(WAIT, || echoed(&server) == 1));
}

#[test]
fn duplicate_echoes_each_datagram_twice_issue18() {
    let server = start(&["duplicate"], &[]);
    let sock = client();
    for i in 0..3u8 {
        let msg = [i; 100];
        sock.send_to(&msg, server.udp[0]).unwrap();
        assert_eq!(recv(&sock).as_deref(), Some(&msg[..]));
        assert_eq!(
            recv(&sock).as_deref(),
            Some(&msg[..]),
            "the second copy of {i}"
        );
    }
    assert!(wait_until(WAIT, || injected(&server, "duplicate") == 3));
    assert!(wait_until(WAIT, || echoed(&server) == 6));
    assert!(arrived(&sock).is_empty());
}

#[test]
fn reorder_swaps_pairs_and_a_lone_datagram_is_not_held_forever_issue18() {
    let server = start(&["reorder"], &[]);
    let sock = client();
    for pair in [[1u8, 2], [3, 4], [5, 6]] {
        sock.send_to(&[pair[0]], server.udp[0]).unwrap();
        sock.send_to(&[pair[1]], server.udp[0]).unwrap();
        assert_eq!(
            recv(&sock),
            Some(vec![pair[1]]),
            "the second of {pair:?} first"
        );
        assert_eq!(
            recv(&sock),
            Some(vec![pair[0]]),
            "then the first of {pair:?}"
        );
    }
    assert!(wait_until(WAIT, || injected(&server, "reorder") == 3));
    // Nothing comes behind this one: it is echoed once its hold (100 ms) is over.
    let started = Instant::now();
    sock.send_to(&[7], server.udp[0]).unwrap();
    assert_eq!(recv(&sock), Some(vec![7]));
    assert!(started.elapsed() >= Duration::from_millis(100));
    // Once the count shows all seven echoes, it shows no fourth swap either.
    assert!(wait_until(WAIT, || echoed(&server) == 7));
    assert_eq!(
        injected(&server, "reorder"),
        3,
        "a datagram alone is not swapped"
    );
}

#[test]
fn delay_echoes_no_sooner_than_its_duration_issue18() {
    let server = start(&["delay=300ms,on=127.0.0.2:0"], &[]);
    let sock = client();
    for i in 0..3u8 {
        let started = Instant::now();
        sock.send_to(&[i; 64], server.udp[1]).unwrap();
        assert_eq!(recv(&sock), Some(vec![i; 64]));
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(300), "echoed after {took:?}");
    }
    assert!(wait_until(WAIT, || injected(&server, "delay") == 3));
    // The clean socket is not delayed (a bound far below 300 ms would be a timing test).
    sock.send_to(b"clean", server.udp[0]).unwrap();
    assert_eq!(recv(&sock).as_deref(), Some(&b"clean"[..]));
}

/// Which of 60 numbered datagrams come back from a server dropping half of them.
fn survivors(seed: &str) -> Vec<u8> {
    let server = start(&["drop,p=0.5"], &["--fault-seed", seed]);
    let sock = client();
    for i in 0..60u8 {
        sock.send_to(&[i], server.udp[0]).unwrap();
    }
    assert!(
        wait_until(WAIT, || injected(&server, "drop") + echoed(&server) == 60),
        "every datagram handled"
    );
    let mut got: Vec<u8> = arrived(&sock).into_iter().flatten().collect();
    got.sort_unstable();
    got
}

#[test]
fn the_same_seed_drops_the_same_datagrams_issue18() {
    let first = survivors("42");
    assert!(
        (10..50).contains(&first.len()),
        "{} of 60 at p=0.5",
        first.len()
    );
    assert_eq!(survivors("42"), first, "the same seed, the same datagrams");
    assert_ne!(survivors("43"), first, "another seed, other datagrams");
}

#[test]
fn a_udp_fault_put_at_run_time_applies_to_later_datagrams_issue18() {
    let server = start(&[], &["--control", "127.0.0.1:0"]);
    let sock = client();
    sock.send_to(b"before", server.udp[0]).unwrap();
    assert_eq!(recv(&sock).as_deref(), Some(&b"before"[..]));
    let body = r#"[{"kind": "duplicate"}]"#;
    let request = format!(
        "PUT /faults HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut s = TcpStream::connect(server.control.unwrap()).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    sock.send_to(b"after", server.udp[0]).unwrap();
    assert_eq!(recv(&sock).as_deref(), Some(&b"after"[..]));
    assert_eq!(recv(&sock).as_deref(), Some(&b"after"[..]));
}

#[test]
fn held_datagrams_are_sent_when_the_server_stops_issue18() {
    let mut server = start(&["delay=30s"], &[]);
    let sock = client();
    sock.send_to(b"held", server.udp[0]).unwrap();
    assert!(wait_until(WAIT, || injected(&server, "delay") == 1));
    server.term();
    assert_eq!(recv(&sock).as_deref(), Some(&b"held"[..]));
    assert!(server.wait_exit(WAIT).is_some());
}
