//! Process hygiene (issue 9): a closed stdout or stderr never panics the server or changes
//! its exit status; SIGHUP is logged and ignored; a live Unix socket with a full backlog
//! fails at once; `--tcp-keepalive` arms the kernel's keepalive timer on accepted sockets.

mod util;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};
use socket2::{Domain, SockAddr, Socket, Type};
use util::{bin, connect, echo_once, run_cli, wait_for, Server, TempDir};

const QUICK: Duration = Duration::from_secs(10);

fn signal(child: &Child, sig: Signal) {
    let pid = Pid::from_raw(child.id() as i32).expect("child pid is positive");
    kill_process(pid, sig).expect("signal echo-server");
}

/// Waits at most `QUICK` for the child to exit; its exit code.
fn exit_code(child: &mut Child) -> Option<i32> {
    let status = wait_for(QUICK, || child.try_wait().expect("try_wait"));
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("echo-server still running {QUICK:?} after SIGTERM");
    }
    status.and_then(|s| s.code())
}

/// Reads the `listening tcp ADDR` line from a piped stdout.
fn listening_addr(out: &mut impl BufRead) -> SocketAddr {
    let mut line = String::new();
    out.read_line(&mut line).expect("read the listening line");
    line.trim()
        .strip_prefix("listening tcp ")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("bad listening line {line:?}"))
}

#[test]
fn issue9_closed_stdout_does_not_change_the_exit_status() {
    // As `echo-server | head -1`: the reader takes the first line and goes away.
    let mut child = Command::new(bin())
        .args(["-l", "127.0.0.1:0", "-l", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn echo-server");
    let mut out = BufReader::new(child.stdout.take().expect("piped"));
    let addr = listening_addr(&mut out);
    drop(out);
    echo_once(&connect(addr), b"stdout is closed now");
    signal(&child, Signal::TERM);
    let code = exit_code(&mut child);
    let mut err = String::new();
    let _ = std::io::Read::read_to_string(&mut child.stderr.take().expect("piped"), &mut err);
    assert_eq!(code, Some(0), "stderr:\n{err}");
    assert!(!err.contains("panicked"), "stderr:\n{err}");
}

#[test]
fn issue9_closed_stderr_does_not_change_the_exit_status() {
    let mut child = Command::new(bin())
        .args([
            "-l",
            "127.0.0.1:0",
            "-vv",
            "--trace",
            "--stats-interval",
            "0.1",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn echo-server");
    drop(child.stderr.take());
    let mut out = BufReader::new(child.stdout.take().expect("piped"));
    let addr = listening_addr(&mut out);
    let stream = connect(addr);
    for i in 0..20 {
        echo_once(&stream, format!("log line {i} goes nowhere").as_bytes());
    }
    std::thread::sleep(Duration::from_millis(300)); // a few stats lines into the void
    signal(&child, Signal::TERM);
    drop(stream);
    let code = exit_code(&mut child);
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut out, &mut rest);
    assert_eq!(code, Some(0), "stdout after listening:\n{rest}");
    assert!(rest.contains("summary:"), "stdout after listening:\n{rest}");
}

#[test]
fn issue9_sighup_is_logged_and_ignored() {
    let mut server = Server::start(&[]);
    let stream = connect(server.addr());
    echo_once(&stream, b"before the hangup");
    server.signal(Signal::HUP);
    let line = server.wait_stderr_line(QUICK, |l| l.contains("SIGHUP"));
    assert!(
        line.is_some(),
        "no SIGHUP line; stderr:\n{}",
        server.stderr()
    );
    server.signal(Signal::HUP);
    std::thread::sleep(Duration::from_millis(200));
    assert!(server.try_wait().is_none(), "SIGHUP ended the server");
    echo_once(&stream, b"after the hangup");
    echo_once(&connect(server.addr()), b"a new client after the hangup");
    drop(stream);
    server.term();
    let status = server.wait_exit(QUICK).expect("exit after SIGTERM");
    assert_eq!(status.code(), Some(0), "stderr:\n{}", server.stderr());
    assert_eq!(server.summary(QUICK).connections, 2);
}

#[test]
fn issue9_live_unix_socket_with_a_full_backlog_fails_at_once() {
    let dir = TempDir::new("full-backlog");
    let path = dir.path().join("live.sock");
    // A "server" that listens and never accepts, with the smallest backlog.
    let listener = Socket::new(Domain::UNIX, Type::STREAM, None).expect("unix socket");
    listener
        .bind(&SockAddr::unix(&path).expect("socket path"))
        .expect("bind");
    listener.listen(0).expect("listen");
    let mut queued = Vec::new();
    let full = (0..64).any(|_| {
        let client = Socket::new(Domain::UNIX, Type::STREAM, None).expect("unix socket");
        client.set_nonblocking(true).expect("nonblocking");
        let result = client.connect(&SockAddr::unix(&path).expect("socket path"));
        queued.push(client);
        result.is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock)
    });
    assert!(full, "64 clients did not fill a backlog of 0");
    let shown = path.display().to_string();
    let start = Instant::now();
    let (status, _out, err) = run_cli(&["--unix", &shown], QUICK);
    let took = start.elapsed();
    assert_eq!(status.code(), Some(1), "stderr:\n{err}");
    assert!(
        err.lines().any(|l| l.contains(&shown)),
        "no line names {shown}:\n{err}"
    );
    assert!(took < Duration::from_secs(3), "took {took:?} to refuse");
    assert!(path.exists(), "the live server's socket was removed");
}

/// The kernel's timer on the server's end of a connection: (`tr`, `tm->when` in clock
/// ticks) from /proc/net/tcp, found by the server's port and the client's port.
fn server_side_timer(server: SocketAddr, client: SocketAddr) -> Option<(u32, u64)> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let want = (
        format!(":{:04X}", server.port()),
        format!(":{:04X}", client.port()),
    );
    table.lines().skip(1).find_map(|row| {
        let f: Vec<&str> = row.split_whitespace().collect();
        if f.len() < 6 || !f[1].ends_with(&want.0) || !f[2].ends_with(&want.1) {
            return None;
        }
        let (tr, when) = f[5].split_once(':')?;
        Some((
            u32::from_str_radix(tr, 16).ok()?,
            u64::from_str_radix(when, 16).ok()?,
        ))
    })
}

#[test]
fn issue9_tcp_keepalive_arms_the_timer_on_accepted_sockets() {
    if !std::path::Path::new("/proc/net/tcp").exists() {
        skip!("no /proc/net/tcp to read the kernel's timers from");
    }
    // tr = 2 is the keepalive timer; 0 is none.
    for (args, want) in [
        (&["--tcp-keepalive", "7"][..], Some(7)),
        (&[][..], Some(60)),
        (&["--tcp-keepalive", "0"][..], None),
    ] {
        let server = Server::start(args);
        let stream = connect(server.addr());
        echo_once(&stream, b"keepalive?");
        let client = stream.local_addr().expect("client address");
        let timer = server_side_timer(server.addr(), client)
            .unwrap_or_else(|| panic!("{args:?}: the connection is not in /proc/net/tcp"));
        match want {
            Some(secs) => {
                assert_eq!(timer.0, 2, "{args:?}: no keepalive timer: {timer:?}");
                // USER_HZ is 100 wherever Linux runs this.
                assert!(
                    timer.1 <= secs * 100 && timer.1 > (secs - 2) * 100,
                    "{args:?}: keepalive due in {} ticks, not about {secs} s",
                    timer.1
                );
            }
            None => assert_ne!(timer.0, 2, "{args:?}: keepalive is armed: {timer:?}"),
        }
    }
}
