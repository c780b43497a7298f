//! Small echo servers the tests start in threads, and a way to run the
//! real binary.

#![allow(dead_code)] // each test file uses a different part

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// How a test server treats each connection's byte stream.
#[derive(Clone, Copy, Debug)]
pub enum Behaviour {
    /// Echo everything.
    Echo,
    /// Echo, but flip one bit of the byte at this stream offset.
    Corrupt(u64),
    /// Echo this many bytes, then close.
    CloseAfter(u64),
    /// Echo this many bytes, then read and discard the rest.
    SilentAfter(u64),
    /// Echo everything twice.
    Twice,
    /// The first this many connections as `Corrupt(64)` (their second
    /// 64-byte message), then `Echo`.
    CorruptFirst(usize),
    /// Echo this many bytes, then reset the connection (RST).
    ResetAfter(u64),
    /// Echo everything, each read's bytes this many milliseconds late.
    DelayMs(u64),
}

/// Limits that keep a forgotten server from running forever.
const MAX_CONNECTIONS: usize = 10_000;
const IDLE: Duration = Duration::from_secs(20);

/// A TCP server on 127.0.0.1:0; also returns the peers it accepted.
pub fn tcp_server(behaviour: Behaviour) -> (SocketAddr, Arc<Mutex<Vec<SocketAddr>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let peers = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&peers);
    thread::spawn(move || {
        for (k, stream) in listener.incoming().take(MAX_CONNECTIONS).enumerate() {
            let Ok(stream) = stream else { continue };
            if let Ok(peer) = stream.peer_addr() {
                seen.lock().unwrap().push(peer);
            }
            let behaviour = match behaviour {
                Behaviour::CorruptFirst(n) if k < n => Behaviour::Corrupt(64),
                Behaviour::CorruptFirst(_) => Behaviour::Echo,
                b => b,
            };
            thread::spawn(move || serve(stream, behaviour));
        }
    });
    (addr, peers)
}

fn serve(mut stream: TcpStream, behaviour: Behaviour) {
    let _ = stream.set_read_timeout(Some(IDLE));
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; 64 * 1024];
    let mut offset = 0u64;
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let chunk = &mut buf[..n];
        match behaviour {
            Behaviour::Echo | Behaviour::CorruptFirst(_) => {}
            Behaviour::DelayMs(ms) => thread::sleep(Duration::from_millis(ms)),
            Behaviour::ResetAfter(limit) => {
                let keep = limit.saturating_sub(offset).min(n as u64) as usize;
                if stream.write_all(&chunk[..keep]).is_err() {
                    return;
                }
                offset += n as u64;
                if offset >= limit {
                    // On loopback the bytes written are in the client's
                    // receive queue when write returns; a zero linger then
                    // closes with RST instead of FIN.
                    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                    return;
                }
                continue;
            }
            Behaviour::Twice => {
                // Both copies in one write, so that they arrive together and
                // the client sees more than it sent, not a copy that lines up
                // with its next message (which would be a different mismatch).
                if stream.write_all(&chunk.repeat(2)).is_err() {
                    return;
                }
            }
            Behaviour::SilentAfter(limit) => {
                let keep = limit.saturating_sub(offset).min(n as u64) as usize;
                if stream.write_all(&chunk[..keep]).is_err() {
                    return;
                }
                offset += n as u64;
                continue;
            }
            Behaviour::Corrupt(at) => {
                if (offset..offset + n as u64).contains(&at) {
                    chunk[(at - offset) as usize] ^= 0x20;
                }
            }
            Behaviour::CloseAfter(limit) => {
                let keep = limit.saturating_sub(offset).min(n as u64) as usize;
                let _ = stream.write_all(&chunk[..keep]);
                if offset + n as u64 >= limit {
                    return;
                }
            }
        }
        if !matches!(behaviour, Behaviour::CloseAfter(_)) && stream.write_all(chunk).is_err() {
            return;
        }
        offset += n as u64;
    }
}

/// A UDP echo server on 127.0.0.1:0; `corrupt` flips a bit in every
/// datagram's last byte.
pub fn udp_server(corrupt: bool) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(IDLE)).unwrap();
    let addr = socket.local_addr().unwrap();
    thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        while let Ok((n, peer)) = socket.recv_from(&mut buf) {
            if corrupt && n > 0 {
                buf[n - 1] ^= 1;
            }
            let _ = socket.send_to(&buf[..n], peer);
        }
    });
    addr
}

/// A UDP echo server on 127.0.0.1:0 that drops every `nth` datagram and
/// echoes the rest; with `reorder`, it holds each odd-numbered datagram it
/// keeps and echoes it after the next one.
pub fn udp_faulty_server(nth: usize, reorder: bool) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(IDLE)).unwrap();
    let addr = socket.local_addr().unwrap();
    thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        let mut held: Option<(Vec<u8>, SocketAddr)> = None;
        let mut k = 0usize;
        while let Ok((n, peer)) = socket.recv_from(&mut buf) {
            k += 1;
            if nth > 0 && k % nth == 0 {
                continue;
            }
            if reorder && held.is_none() && k % 2 == 1 {
                held = Some((buf[..n].to_vec(), peer));
                continue;
            }
            let _ = socket.send_to(&buf[..n], peer);
            if let Some((data, to)) = held.take() {
                let _ = socket.send_to(&data, to);
            }
        }
    });
    addr
}

/// A UDP echo server on 127.0.0.1:0 that echoes every datagram twice.
pub fn udp_duplicating_server() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(IDLE)).unwrap();
    let addr = socket.local_addr().unwrap();
    thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        while let Ok((n, peer)) = socket.recv_from(&mut buf) {
            let _ = socket.send_to(&buf[..n], peer);
            let _ = socket.send_to(&buf[..n], peer);
        }
    });
    addr
}

/// An address nothing listens on: bound, then released.
pub fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// A UDP address nothing listens on: bound, then released.
pub fn closed_udp_port() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap()
}

/// Run echo-bench with `args`; killed after 60 s so a hang fails the test
/// instead of stalling it. Its output is small, so pipes cannot fill.
pub fn bench(args: &[&str]) -> Output {
    bounded(Command::new(env!("CARGO_BIN_EXE_echo-bench")).args(args))
}

/// The timing of a short run: 0.3 s, no warm-up.
pub const SHORT: [&str; 4] = ["-d", "0.3", "--warmup", "0"];

/// [`bench`] with [`SHORT`] added before the last of `args` (the address).
pub fn short(args: &[&str]) -> Output {
    let (addr, flags) = args.split_last().expect("an address");
    let mut all = flags.to_vec();
    all.extend_from_slice(&SHORT);
    all.push(addr);
    bench(&all)
}

/// `echo-bench chaos`: 12 sessions at once for 0.6 s (streams up to 2 MB,
/// 5 s without progress a stall) with `seed`, then `extra`, against `addr`.
pub fn chaos(addr: &str, seed: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "chaos",
        "-c",
        "12",
        "-d",
        "0.6",
        "--max-bytes",
        "2000000",
        "--session-timeout",
        "5",
        "--seed",
        seed,
    ];
    args.extend_from_slice(extra);
    args.push(addr);
    bench(&args)
}

/// Run a shell command line (for `ulimit`), killed after 60 s likewise.
pub fn shell(line: &str) -> Output {
    bounded(Command::new("sh").args(["-c", line]))
}

/// Run `cmd` with its output captured, killed after 60 s.
fn bounded(cmd: &mut Command) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    finish(child, Duration::from_secs(60))
}

/// A histogram as a report carries it (`latency_hist`, `service_hist`):
/// base64 of HdrHistogram's V2 encoding.
pub fn histogram(text: &str) -> hdrhistogram::Histogram<u64> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap();
    hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .unwrap()
}

/// The path of the binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_echo-bench")
}

/// The JSON object (or array) echo-bench printed.
pub fn json(out: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {text}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The workspace's echo-server binary, next to echo-bench's. Built (or
/// brought up to date) once per test binary: `cargo test -p echo-bench`
/// alone does not build it, and a stale one would test old code.
pub fn echo_server_binary() -> std::path::PathBuf {
    static BUILT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let bench = std::path::Path::new(binary());
            let dir = bench.parent().expect("echo-bench lives in a directory");
            let mut cargo = Command::new(env!("CARGO"));
            cargo.args([
                "build",
                "--quiet",
                "-p",
                "echo-server",
                "--bin",
                "echo-server",
            ]);
            if dir.file_name().is_some_and(|n| n == "release") {
                cargo.arg("--release");
            }
            let status = cargo.status().expect("run cargo build -p echo-server");
            assert!(status.success(), "cargo build -p echo-server failed");
            let server = dir.join("echo-server");
            assert!(server.exists(), "no echo-server at {}", server.display());
            server
        })
        .clone()
}

/// A real echo-server process on loopback port 0 (TCP and UDP, and a Unix
/// socket when asked), killed when dropped.
pub struct EchoServer {
    process: testkit::Spawned,
    /// Its TCP listening addresses, as announced.
    pub tcp: Vec<SocketAddr>,
    /// Its UDP address, if asked for.
    pub udp: Option<SocketAddr>,
    /// Its metrics endpoint, if asked for (`--metrics`).
    pub metrics: Option<SocketAddr>,
}

impl EchoServer {
    /// Start it with `args` (e.g. `["-l", "127.0.0.1:0"]`) and wait for
    /// `lines` "listening" lines; panics with its stderr if it does not
    /// get that far.
    pub fn start(args: &[&str], lines: usize) -> EchoServer {
        let mut process = testkit::Spawned::spawn(Command::new(echo_server_binary()).args(args))
            .expect("start echo-server");
        let found = process
            .wait_listening(lines, Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("echo-server {args:?} did not start: {e}"));
        EchoServer {
            process,
            tcp: found.tcp,
            udp: found.udp.first().copied(),
            metrics: found.metrics,
        }
    }

    /// One TCP listener on 127.0.0.1:0.
    pub fn tcp() -> EchoServer {
        EchoServer::start(&["-l", "127.0.0.1:0"], 1)
    }

    /// Its first TCP address as text.
    pub fn addr(&self) -> String {
        self.tcp[0].to_string()
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }
}

/// Start echo-bench with `args` without waiting for it; stdout and stderr
/// piped.
pub fn spawn_bench(args: &[&str]) -> std::process::Child {
    Command::new(binary())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Wait for `child` at most `limit`, then kill it; its output.
pub fn finish(mut child: std::process::Child, limit: Duration) -> Output {
    let end = std::time::Instant::now() + limit;
    while std::time::Instant::now() < end {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    if child.try_wait().unwrap().is_none() {
        let _ = child.kill();
    }
    child.wait_with_output().unwrap()
}

/// Send signal `name` (INT, TERM) to `pid`.
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

/// Every JSON object printed one per line (--json-stream).
pub fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}
