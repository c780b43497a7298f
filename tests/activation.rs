//! Socket activation and readiness: sockets inherited from
//! `systemd-socket-activate` are served (no default listener, inherited Unix
//! paths left in place, shared by several workers), and `NOTIFY_SOCKET`
//! receives READY=1, STATUS=, WATCHDOG=1 and STOPPING=1.

mod util;

use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use util::{connect, echo_once, wait_for, Server, TempDir, IO_TIMEOUT};

const WAIT: Duration = Duration::from_secs(10);
const TOOL: &str = "systemd-socket-activate";

/// Whether `systemd-socket-activate` runs here (.ci/run installs it; where
/// it cannot, the tests that need it say they are skipped).
fn have_socket_activate() -> bool {
    Command::new(TOOL)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn inherited_tcp_and_unix_listeners_are_served_by_every_worker() {
    if !have_socket_activate() {
        skip!("{TOOL} is not installed (apt-get install systemd)");
    }
    let addr = format!("127.0.0.1:{}", free_port());
    let dir = TempDir::new("activate");
    let path = dir.path().join("echo.sock");
    let path_arg = path.to_str().unwrap().to_string();
    let builder = Server::builder()
        .wrapped_in([TOOL, "-l", &addr, "-l", &path_arg])
        .args(["--workers", "3"])
        .listening(2);
    // The launcher starts the server on the first connection.
    let starter = thread::spawn(move || builder.try_start());
    let first = wait_for(WAIT, || TcpStream::connect(&addr).ok()).expect("connect");
    first.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    echo_once(&first, b"activated");
    let mut server = starter.join().unwrap().unwrap();
    assert_eq!(server.tcp, vec![addr.parse().unwrap()]);
    assert_eq!(server.unix, vec![path.clone()]);
    let lines = server.stdout_lines();
    assert_eq!(lines.len(), 2, "no default listener: {lines:?}");

    let clients: Vec<TcpStream> = (0..30).map(|_| connect(&addr)).collect();
    for (i, c) in clients.iter().enumerate() {
        echo_once(c, format!("client {i}").as_bytes());
    }
    let unix = UnixStream::connect(&path).unwrap();
    unix.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    echo_once(&unix, b"over unix");
    drop((clients, unix, first));

    server.term();
    let status = server.wait_exit(WAIT).expect("exits after SIGTERM");
    assert!(status.success(), "{status}; stderr:\n{}", server.stderr());
    assert_eq!(server.summary(WAIT).connections, 32);
    assert!(path.exists(), "the inherited socket path was removed");
}

#[test]
fn inherited_udp_socket_is_served_and_flags_add_more() {
    if !have_socket_activate() {
        skip!("{TOOL} is not installed (apt-get install systemd)");
    }
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = probe.local_addr().unwrap().to_string();
    drop(probe);
    let builder = Server::builder()
        .wrapped_in([TOOL, "--datagram", "-l", &addr])
        .args(["-l", "127.0.0.1:0"])
        .listening(2);
    let starter = thread::spawn(move || builder.try_start());
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // The first datagram wakes the launcher; it stays queued for the server.
    let mut buf = [0u8; 64];
    let deadline = Instant::now() + WAIT;
    let n = loop {
        client.send_to(b"ping", &addr).unwrap();
        if let Ok((n, _)) = client.recv_from(&mut buf) {
            break n;
        }
        assert!(Instant::now() < deadline, "no UDP echo");
    };
    assert_eq!(&buf[..n], b"ping");
    let server = starter.join().unwrap().unwrap();
    assert_eq!(server.udp, vec![addr.parse().unwrap()]);
    assert_eq!(server.tcp.len(), 1, "--listen adds a listener");
    echo_once(&connect(server.addr()), b"flag listener");
}

#[test]
fn an_inherited_socket_of_another_kind_is_refused_by_name() {
    if !have_socket_activate() {
        skip!("{TOOL} is not installed (apt-get install systemd)");
    }
    let dir = TempDir::new("activate-dgram");
    let path = dir.path().join("dgram.sock");
    let path_arg = path.to_str().unwrap().to_string();
    let mut server = Server::builder()
        .wrapped_in([TOOL, "--datagram", "-l", &path_arg])
        .listening(0)
        .start();
    let client = UnixDatagram::unbound().unwrap();
    wait_for(WAIT, || client.send_to(b"wake", &path).ok()).expect("send");
    let status = server.wait_exit(WAIT).expect("exits");
    assert_eq!(status.code(), Some(1), "stderr:\n{}", server.stderr());
    let err = server.stderr();
    assert!(
        err.contains("inherited socket 3") && err.contains("not a TCP or Unix stream listener"),
        "{err}"
    );
}

#[test]
fn listen_fds_for_another_process_are_ignored() {
    // LISTEN_PID names someone else, or no one: fd 3 is not ours to take.
    for pid in [Some("1"), None] {
        let mut builder = Server::builder().env("LISTEN_FDS", "1");
        if let Some(pid) = pid {
            builder = builder.env("LISTEN_PID", pid);
        }
        let server = builder.start();
        echo_once(&connect(server.addr()), b"flags only");
        let err = server.stderr();
        assert!(!err.contains("inherited"), "{err}");
    }
}

#[test]
fn notify_socket_gets_ready_status_watchdog_and_stopping() {
    let dir = TempDir::new("notify");
    let path = dir.path().join("notify.sock");
    let sink = UnixDatagram::bind(&path).unwrap();
    sink.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // WATCHDOG_PID must name the server: a shell sets it to its own pid, then
    // execs the server in its place.
    let mut server = Server::builder()
        .wrapped_in(["sh", "-c", r#"WATCHDOG_PID=$$ exec "$0" "$@""#])
        .env("NOTIFY_SOCKET", path.to_str().unwrap())
        .env("WATCHDOG_USEC", "200000")
        .args(["--stats-interval", "0.2"])
        .start();
    let mut seen: Vec<String> = Vec::new();
    let recv_until = |want: &dyn Fn(&[String]) -> bool, seen: &mut Vec<String>| {
        let deadline = Instant::now() + WAIT;
        let mut buf = [0u8; 4096];
        while !want(seen) {
            assert!(Instant::now() < deadline, "got only {seen:?}");
            if let Ok(n) = sink.recv(&mut buf) {
                seen.push(String::from_utf8_lossy(&buf[..n]).trim_end().to_string());
            }
        }
    };
    let count =
        |seen: &[String], prefix: &str| seen.iter().filter(|m| m.starts_with(prefix)).count();
    recv_until(
        &|s| {
            count(s, "READY=1") == 1
                && count(s, "WATCHDOG=1") >= 3
                && count(s, "STATUS=stats ") >= 2
        },
        &mut seen,
    );
    assert_eq!(seen[0], "READY=1", "READY comes first: {seen:?}");
    assert!(
        seen.iter()
            .any(|m| m.starts_with("STATUS=stats open=0 accepted=0")),
        "{seen:?}"
    );
    server.term();
    recv_until(&|s| count(s, "STOPPING=1") == 1, &mut seen);
    assert!(server.wait_exit(WAIT).is_some_and(|s| s.success()));
}

/// A launcher that does what systemd does with two `ReusePort=yes` socket
/// units on one port: binds both, passes them as fds 3 and 4 with
/// LISTEN_FDS/LISTEN_PID, and execs the server (its path is argv[1]).
const TWO_REUSEPORT_SOCKETS: &str = r#"
import os, socket, sys
fds = []
port = 0
for i in range(2):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("127.0.0.1", port))
    s.listen(64)
    port = s.getsockname()[1]
    fds.append(s.detach())
for target, fd in enumerate(fds, start=3):
    if fd != target:
        os.dup2(fd, target)
    os.set_inheritable(target, True)
os.environ.update(LISTEN_FDS="2", LISTEN_PID=str(os.getpid()), LISTEN_FDNAMES="a:b")
os.execv(sys.argv[1], sys.argv[1:])
"#;

#[test]
fn one_listener_per_worker_when_systemd_passes_enough() {
    let python = Command::new("python3").arg("--version").output();
    if !python.is_ok_and(|o| o.status.success()) {
        skip!("python3 is needed to pass two SO_REUSEPORT sockets");
    }
    let server = Server::builder()
        .wrapped_in(["python3", "-c", TWO_REUSEPORT_SOCKETS])
        .args(["--workers", "2", "--metrics", "127.0.0.1:0"])
        .listening(2)
        .start();
    assert_eq!(server.tcp.len(), 1, "one address, announced once");
    let clients: Vec<TcpStream> = (0..40).map(|_| connect(server.addr())).collect();
    for c in &clients {
        echo_once(c, b"spread");
    }
    // Each worker accepted some: the kernel spread them over both sockets.
    let mut m = TcpStream::connect(server.metrics.unwrap()).unwrap();
    std::io::Write::write_all(&mut m, b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
    let mut body = String::new();
    std::io::Read::read_to_string(&mut m, &mut body).unwrap();
    let accepted = |worker: &str| -> f64 {
        body.lines()
            .filter(|l| l.starts_with("echo_connections_accepted_total"))
            .filter(|l| l.contains(&format!("worker=\"{worker}\"")))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    };
    let (a, b) = (accepted("0"), accepted("1"));
    assert_eq!(a + b, 40.0, "{body}");
    assert!(a > 0.0 && b > 0.0, "all on one worker: {a} and {b}");
    // Dealt, not shared: each worker's epoll watches one of fds 3 and 4,
    // and no dup of either (/proc/PID/fdinfo lists what an epoll watches).
    // The metrics endpoint has an epoll of its own, which watches neither.
    let watched = epoll_targets(server.pid());
    assert_eq!(
        watched.len(),
        3,
        "one epoll per worker and one for metrics: {watched:?}"
    );
    let mut listeners: Vec<Vec<u32>> = watched
        .iter()
        .map(|fds| {
            fds.iter()
                .copied()
                .filter(|&fd| fd == 3 || fd == 4)
                .collect()
        })
        .collect();
    listeners.sort();
    assert_eq!(listeners, [vec![], vec![3], vec![4]], "{watched:?}");
}

/// The descriptors each epoll instance of `pid` watches.
fn epoll_targets(pid: u32) -> Vec<Vec<u32>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        let is_epoll = std::fs::read_link(entry.path())
            .is_ok_and(|l| l.to_string_lossy().contains("eventpoll"));
        if !is_epoll {
            continue;
        }
        let info_path = format!("/proc/{pid}/fdinfo/{}", entry.file_name().to_string_lossy());
        let info = std::fs::read_to_string(info_path).unwrap_or_default();
        let fds = info
            .lines()
            .filter_map(|l| l.strip_prefix("tfd:"))
            .filter_map(|l| l.split_whitespace().next()?.parse().ok())
            .collect();
        out.push(fds);
    }
    out
}
