//! `NOTIFY_SOCKET` never blocks the server (issue 22 #4): with the service manager's queue
//! full, every connection still echoes and one SIGTERM still ends the server; an abstract
//! address (`@name`, as systemd passes it) receives `READY=1`.

mod util;

use std::io::ErrorKind;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

use util::{connect, probe, Server, TempDir};

const WAIT: Duration = Duration::from_secs(10);

/// Sends datagrams to `sink` until its queue takes no more; returns how many it took.
fn fill(sink: &SocketAddr) -> usize {
    let filler = UnixDatagram::unbound().unwrap();
    filler.set_nonblocking(true).unwrap();
    let mut sent = 0;
    loop {
        match filler.send_to_addr(b"STATUS=filler", sink) {
            Ok(_) => sent += 1,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return sent,
            Err(e) => panic!("filling the notify socket: {e}"),
        }
        assert!(sent < 1_000_000, "the notify queue never filled");
    }
}

#[test]
fn a_full_notify_queue_blocks_neither_echo_nor_sigterm_issue22() {
    let dir = TempDir::new("notify-full");
    let path = dir.path().join("notify.sock");
    // Bound and never read.
    let sink = UnixDatagram::bind(&path).unwrap();
    let queued = fill(&sink.local_addr().unwrap());
    let mut server = Server::builder()
        .env("NOTIFY_SOCKET", path.to_str().unwrap())
        .args(["--workers", "2", "--stats-interval", "0.1"])
        .start();
    // Several STATUS lines come due while the queue stays full.
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(500) {
        let client = connect(server.addr());
        assert_eq!(
            probe(&client, b"still echoing", Duration::from_secs(3)),
            Some(true),
            "no echo with the notify queue full ({queued} datagrams queued)"
        );
    }
    server.term();
    let took = Instant::now();
    let exit = server.wait_exit(WAIT);
    assert!(
        exit.is_some_and(|s| s.success()),
        "one SIGTERM did not end the server within {WAIT:?}: {exit:?}; stderr:\n{}",
        server.stderr()
    );
    eprintln!("exited {:?} after SIGTERM", took.elapsed());
    let err = server.stderr();
    assert_eq!(
        err.matches("queue is full").count(),
        1,
        "the dropped messages are logged once:\n{err}"
    );
}

#[test]
fn an_abstract_notify_address_gets_ready_issue22() {
    let name = format!("echo-server-notify-test-{}", std::process::id());
    let sink = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(&name).unwrap()).unwrap();
    sink.set_read_timeout(Some(WAIT)).unwrap();
    let _server = Server::builder()
        .env("NOTIFY_SOCKET", &format!("@{name}"))
        .start();
    let mut buf = [0u8; 256];
    let n = sink
        .recv(&mut buf)
        .expect("READY=1 on the abstract address");
    assert_eq!(String::from_utf8_lossy(&buf[..n]), "READY=1\n");
}
