//! IPv6 and Unix-domain listeners echo like IPv4 TCP.

mod util;

use std::net::{Shutdown, UdpSocket};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use util::{
    assert_bytes_eq, connect, echo_once, exchange, random_bytes, read_to_eof, Server, TempDir,
};

fn unix_connect(path: &std::path::Path) -> UnixStream {
    let stream = UnixStream::connect(path).expect("connect unix listener");
    stream.set_read_timeout(Some(util::IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(util::IO_TIMEOUT)).unwrap();
    stream
}

#[test]
fn ipv6_tcp_echo() {
    if !util::ipv6_available() {
        skip!("IPv6 loopback ::1 is not available");
    }
    let server = Server::start(&["-l", "[::1]:0"]);
    let addr = server.addr();
    assert!(addr.is_ipv6(), "listening line gave {addr}");
    assert!(
        server
            .stdout_lines()
            .iter()
            .any(|l| l == &format!("listening tcp [::1]:{}", addr.port())),
        "stdout: {:?}",
        server.stdout_lines()
    );
    let stream = connect(addr);
    let data = random_bytes(1, 300_000);
    let got = exchange(&stream, &data, 50_000, 1);
    assert_bytes_eq(&got, &data, "IPv6 echo");
}

#[test]
fn ipv6_and_ipv4_side_by_side() {
    if !util::ipv6_available() {
        skip!("IPv6 loopback ::1 is not available");
    }
    let server = Server::start(&["-l", "127.0.0.1:0", "-l", "[::1]:0"]);
    assert_eq!(server.tcp.len(), 2, "stdout: {:?}", server.stdout_lines());
    for addr in &server.tcp {
        echo_once(&connect(addr), addr.to_string().as_bytes());
    }
}

#[test]
fn ipv6_udp_echo() {
    if !util::ipv6_available() {
        skip!("IPv6 loopback ::1 is not available");
    }
    let server = Server::start(&["-l", "127.0.0.1:0", "-u", "[::1]:0"]);
    let udp = server.udp[0];
    assert!(udp.is_ipv6(), "listening line gave {udp}");
    let sock = UdpSocket::bind("[::1]:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let msg = random_bytes(2, 1000);
    sock.send_to(&msg, udp).unwrap();
    let mut buf = vec![0; 2000];
    let (n, from) = sock.recv_from(&mut buf).expect("IPv6 UDP echo");
    assert_eq!(from, udp);
    assert_bytes_eq(&buf[..n], &msg, "IPv6 datagram");
}

#[test]
fn unix_socket_echo() {
    let dir = TempDir::new("unix");
    let path = dir.path().join("echo.sock");
    let server = Server::start(&["--unix", path.to_str().unwrap()]);
    assert_eq!(
        server.unix,
        vec![path.clone()],
        "stdout: {:?}",
        server.stdout_lines()
    );
    assert!(
        server.tcp.is_empty(),
        "a TCP listener appeared: {:?}",
        server.tcp
    );
    let stream = unix_connect(&path);
    let data = random_bytes(3, 1 << 20);
    let got = exchange(&stream, &data, 70_000, 3);
    assert_bytes_eq(&got, &data, "Unix echo");
    // Many clients at once.
    let clients: Vec<UnixStream> = (0..50).map(|_| unix_connect(&path)).collect();
    for (i, c) in clients.iter().enumerate() {
        echo_once(c, format!("unix client {i}").as_bytes());
    }
}

#[test]
fn unix_socket_half_close() {
    let dir = TempDir::new("unix-half");
    let path = dir.path().join("echo.sock");
    let server = Server::start(&["--unix", path.to_str().unwrap()]);
    let stream = unix_connect(&server.unix[0]);
    let data = random_bytes(4, 100_000);
    std::io::Write::write_all(&mut &stream, &data).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let (got, eof) = read_to_eof(&stream, data.len() + 1);
    assert_bytes_eq(&got, &data, "Unix half-close");
    assert!(eof, "no EOF after a Unix half-close");
}

#[test]
fn unix_and_tcp_together() {
    let dir = TempDir::new("unix-tcp");
    let path = dir.path().join("echo.sock");
    let server = Server::start(&["-l", "127.0.0.1:0", "--unix", path.to_str().unwrap()]);
    echo_once(&connect(server.addr()), b"tcp");
    echo_once(&unix_connect(&server.unix[0]), b"unix");
}
