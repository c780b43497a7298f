//! Connection limits: descriptor exhaustion (EMFILE) under a small RLIMIT_NOFILE,
//! `--max-connections` and `--max-per-ip`. While saturated the server stays near idle, keeps
//! serving the connections it has, and serves new ones once some close.

mod util;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use util::{connect, echo_once, probe, read_reply, Server};

const PING: &[u8] = b"ping";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Echoed,
    Closed,
    Silent,
}

/// What happened to a client that wrote [`PING`]: looks without waiting.
fn state(stream: &TcpStream) -> State {
    stream.set_nonblocking(true).unwrap();
    let mut buf = [0; 4];
    let state = match (&*stream).read(&mut buf) {
        Ok(0) => State::Closed,
        Ok(n) => {
            assert_eq!(&buf[..n], &PING[..n], "wrong echo");
            State::Echoed
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => State::Silent,
        Err(_) => State::Closed,
    };
    stream.set_nonblocking(false).unwrap();
    state
}

/// Opens `n` clients that each write [`PING`], waits, and sorts them by what happened.
fn saturate(addr: SocketAddr, n: usize) -> (Vec<TcpStream>, Vec<TcpStream>, usize) {
    let clients: Vec<TcpStream> = (0..n)
        .map(|_| {
            let c = connect(addr);
            (&c).write_all(PING).unwrap();
            c
        })
        .collect();
    thread::sleep(Duration::from_millis(1500));
    let (mut served, mut waiting, mut closed) = (Vec::new(), Vec::new(), 0);
    for c in clients {
        match state(&c) {
            State::Echoed => served.push(c),
            State::Silent => waiting.push(c),
            State::Closed => closed += 1,
        }
    }
    (served, waiting, closed)
}

/// Saturates a server started under `--nofile 40`, then checks idle CPU, continued service
/// and recovery.
fn exhaustion(extra: &[&str]) {
    if !util::prlimit_available() {
        skip!("prlimit (util-linux) is not available to lower RLIMIT_NOFILE");
    }
    let mut server = Server::builder().args(extra).nofile(40).start();
    let (mut served, mut waiting, closed) = saturate(server.addr(), 80);
    assert!(
        served.len() >= 5,
        "only {} of 80 clients served under RLIMIT_NOFILE 40 ({} waiting, {closed} closed); stderr:\n{}",
        served.len(),
        waiting.len(),
        server.stderr()
    );
    assert!(
        served.len() < 40,
        "{} clients served with only 40 descriptors",
        served.len()
    );
    // Saturated: the backlog keeps the listener readable, which must not become a busy loop.
    let lines_before = server.stderr().lines().count();
    let cpu = server.cpu_time();
    thread::sleep(Duration::from_secs(1));
    let used = server.cpu_time().saturating_sub(cpu);
    assert!(
        used < Duration::from_millis(150),
        "server used {used:?} CPU in 1 s while saturated"
    );
    let logged = server.stderr().lines().count() - lines_before;
    assert!(
        logged < 100,
        "{logged} stderr lines in 1 s while saturated: not rate-limited"
    );
    for c in &served {
        echo_once(c, b"still served");
    }
    // Free some slots: a waiting client, or a new one, gets served.
    let freed = served.len() / 2;
    served.drain(..freed);
    let fresh = connect(server.addr());
    (&fresh).write_all(PING).unwrap();
    let recovered = util::wait_until(Duration::from_secs(5), || {
        state(&fresh) == State::Echoed || waiting.iter().any(|c| state(c) == State::Echoed)
    });
    assert!(
        recovered,
        "nobody served within 5 s after closing {freed} connections; stderr:\n{}",
        server.stderr()
    );
    for c in &served {
        echo_once(c, b"after recovery");
    }
    // Everyone leaves: a new client is served promptly.
    served.clear();
    waiting.clear();
    drop(fresh);
    let last = connect(server.addr());
    assert_eq!(
        probe(&last, PING, Duration::from_secs(5)),
        Some(true),
        "not served after all clients left"
    );
    assert!(server.try_wait().is_none(), "server exited");
}

#[test]
fn emfile_no_busy_loop_and_recovery() {
    // A --max-connections far above the descriptor limit forces accept() into EMFILE.
    exhaustion(&["--max-connections", "10000"]);
}

#[test]
fn default_max_connections_follows_rlimit() {
    exhaustion(&[]);
}

#[test]
fn emfile_on_select_backend() {
    exhaustion(&["--max-connections", "10000", "--backend", "select"]);
}

/// Checks the client beyond a limit is not served, then is (or a new one is) once a slot frees.
fn beyond_limit_waits_for_a_slot(server: &Server, mut admitted: Vec<TcpStream>, extra: TcpStream) {
    let early = probe(&extra, PING, Duration::from_millis(500));
    assert_ne!(early, Some(true), "client beyond the limit was served");
    for c in &admitted {
        echo_once(c, b"admitted");
    }
    admitted.remove(0);
    let served = if early.is_none() {
        read_reply(&extra, PING, Duration::from_secs(3))
    } else {
        // It was accepted and closed: a new client must get the freed slot.
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let fresh = connect(server.addr());
            let got = probe(&fresh, PING, Duration::from_millis(300));
            if got == Some(true) || Instant::now() > deadline {
                break got;
            }
        }
    };
    assert_eq!(served, Some(true), "not served after a slot was freed");
    for c in &admitted {
        echo_once(c, b"still admitted");
    }
}

#[test]
fn max_connections_caps_open_clients() {
    let server = Server::start(&["--max-connections", "5"]);
    let admitted: Vec<TcpStream> = (0..5)
        .map(|i| {
            let c = connect(server.addr());
            echo_once(&c, format!("client {i}").as_bytes());
            c
        })
        .collect();
    let extra = connect(server.addr());
    beyond_limit_waits_for_a_slot(&server, admitted, extra);
}

fn connect_from(source: &str, addr: SocketAddr) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.bind(&SockAddr::from(
        format!("{source}:0").parse::<SocketAddr>().unwrap(),
    ))?;
    socket.connect(&SockAddr::from(addr))?;
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(util::IO_TIMEOUT))?;
    stream.set_write_timeout(Some(util::IO_TIMEOUT))?;
    Ok(stream)
}

#[test]
fn max_per_ip_caps_each_source() {
    let server = Server::start(&["--max-per-ip", "2"]);
    let admitted: Vec<TcpStream> = (0..2)
        .map(|i| {
            let c = connect(server.addr());
            echo_once(&c, format!("client {i}").as_bytes());
            c
        })
        .collect();
    // Another loopback source address has its own allowance.
    match connect_from("127.0.0.2", server.addr()) {
        Ok(other) => echo_once(&other, b"from 127.0.0.2"),
        Err(e) => eprintln!("SKIP part: cannot connect from 127.0.0.2: {e}"),
    }
    let extra = connect(server.addr());
    beyond_limit_waits_for_a_slot(&server, admitted, extra);
}
