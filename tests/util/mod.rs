//! Shared helpers for the echo-server integration tests.
//!
//! [`Server`] runs the real binary on port 0, parses its `listening ...` lines, keeps its
//! stdout and stderr in memory for later assertions, and kills it on drop. The rest are small
//! client helpers (connect with timeouts, echo exchanges, byte patterns) and readers for the
//! server's `/proc` figures (fds, RSS, CPU time). Every wait here is bounded.

#![allow(dead_code)]

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};

/// How long the server gets to print its `listening` lines.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);
/// Read and write timeout on every client socket the helpers create.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Prints why a test is skipped and returns from it.
#[macro_export]
macro_rules! skip {
    ($($arg:tt)*) => {{
        eprintln!("SKIP {}: {}", module_path!(), format!($($arg)*));
        return;
    }};
}

/// A running echo-server, killed (SIGKILL) and reaped on drop.
#[derive(Debug)]
pub struct Server {
    child: Child,
    /// TCP listeners, in the order the server printed them.
    pub tcp: Vec<SocketAddr>,
    /// UDP sockets, in the order the server printed them.
    pub udp: Vec<SocketAddr>,
    /// Unix-domain listeners, in the order the server printed them.
    pub unix: Vec<PathBuf>,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
    status: Option<ExitStatus>,
}

/// Options for starting a [`Server`].
#[derive(Debug, Default)]
pub struct Builder {
    args: Vec<String>,
    nofile: Option<u64>,
    envs: Vec<(String, String)>,
}

impl Builder {
    /// Appends command-line arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_string()));
        self
    }

    /// Runs the server under `prlimit --nofile=N:N` (see [`prlimit_available`]).
    pub fn nofile(mut self, n: u64) -> Self {
        self.nofile = Some(n);
        self
    }

    /// Sets an environment variable for the server.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.envs.push((key.to_string(), value.to_string()));
        self
    }

    /// Starts the server and waits for its `listening` lines; panics with its stderr if it
    /// does not get that far.
    pub fn start(self) -> Server {
        match self.try_start() {
            Ok(server) => server,
            Err(e) => panic!("echo-server did not start: {e}"),
        }
    }

    /// Starts the server and waits for its `listening` lines.
    pub fn try_start(mut self) -> Result<Server, String> {
        let listeners = self
            .args
            .iter()
            .filter(|a| matches!(a.as_str(), "-l" | "--listen" | "-u" | "--udp" | "--unix"))
            .count();
        let expected = if listeners == 0 {
            self.args.push("-l".into());
            self.args.push("127.0.0.1:0".into());
            1
        } else {
            listeners
        };
        let mut cmd = match self.nofile {
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}")).arg(bin());
                c
            }
            None => Command::new(bin()),
        };
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().map_err(|e| format!("spawn {}: {e}", bin()))?;
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        collect_lines(child.stdout.take().expect("stdout is piped"), {
            let stdout = stdout.clone();
            move |line| stdout.lock().unwrap().push(line)
        });
        collect_lines(child.stderr.take().expect("stderr is piped"), {
            let stderr = stderr.clone();
            move |line| {
                let mut s = stderr.lock().unwrap();
                s.push_str(&strip_ansi(&line));
                s.push('\n');
            }
        });
        let mut server = Server {
            child,
            tcp: Vec::new(),
            udp: Vec::new(),
            unix: Vec::new(),
            stdout,
            stderr,
            status: None,
        };
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let lines = server.listening_lines();
            if lines.len() >= expected {
                for line in lines {
                    server.add_listener(&line)?;
                }
                return Ok(server);
            }
            if let Some(status) = server.try_wait() {
                // Give the readers a moment to collect the last words.
                thread::sleep(Duration::from_millis(100));
                return Err(format!(
                    "exited with {status} before listening; stderr:\n{}",
                    server.stderr()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no {expected} listening lines within {STARTUP_TIMEOUT:?}; stdout: {:?}; stderr:\n{}",
                    server.stdout_lines(),
                    server.stderr()
                ));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Path of the server binary: the one Cargo built for these tests, or `ECHO_SERVER_BIN` to
/// hold another implementation to the same contract.
pub fn bin() -> String {
    std::env::var("ECHO_SERVER_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_echo-server").into())
}

/// Removes terminal colour sequences (`ESC [ ... letter`), so assertions see plain words.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn collect_lines<R: Read + Send + 'static>(
    pipe: R,
    mut sink: impl FnMut(String) + Send + 'static,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let reader = BufReader::new(pipe);
        for line in reader.split(b'\n') {
            match line {
                Ok(bytes) => sink(String::from_utf8_lossy(&bytes).into_owned()),
                Err(_) => break,
            }
        }
    })
}

impl Server {
    /// Starts a server with `args`, adding `-l 127.0.0.1:0` when no listener is given.
    pub fn start(args: &[&str]) -> Server {
        Builder::default().args(args).start()
    }

    /// A builder for servers that need more than arguments.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The first TCP listener.
    pub fn addr(&self) -> SocketAddr {
        *self.tcp.first().expect("server has a TCP listener")
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn listening_lines(&self) -> Vec<String> {
        let mut seen: Vec<String> = Vec::new();
        for line in self.stdout.lock().unwrap().iter() {
            if line.starts_with("listening ") && !seen.contains(line) {
                seen.push(line.clone());
            }
        }
        seen
    }

    fn add_listener(&mut self, line: &str) -> Result<(), String> {
        let mut words = line.splitn(3, ' ');
        let (_, kind, addr) = (words.next(), words.next(), words.next());
        let bad = || format!("bad listening line {line:?}");
        let addr = addr.ok_or_else(bad)?.trim();
        match kind {
            Some("tcp") => self.tcp.push(addr.parse().map_err(|_| bad())?),
            Some("udp") => self.udp.push(addr.parse().map_err(|_| bad())?),
            Some("unix") => self.unix.push(PathBuf::from(addr)),
            _ => return Err(bad()),
        }
        Ok(())
    }

    /// Sends `sig` to the server.
    pub fn signal(&self, sig: Signal) {
        let pid = Pid::from_raw(self.pid() as i32).expect("child pid is positive");
        kill_process(pid, sig).expect("kill echo-server");
    }

    /// Sends SIGTERM.
    pub fn term(&self) {
        self.signal(Signal::TERM);
    }

    /// Sends SIGINT.
    pub fn int(&self) {
        self.signal(Signal::INT);
    }

    /// The exit status if the server has exited, without waiting.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait on echo-server");
        }
        self.status
    }

    /// Waits at most `timeout` for the server to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Everything the server wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Every stdout line so far, `listening` lines included.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// Waits at most `timeout` for a stderr line matching `pred`; returns it.
    pub fn wait_stderr_line(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&str) -> bool,
    ) -> Option<String> {
        wait_for(timeout, || {
            self.stderr().lines().find(|l| pred(l)).map(str::to_string)
        })
    }

    /// Waits at most `timeout` for a stdout line matching `pred`; returns it.
    pub fn wait_stdout_line(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&str) -> bool,
    ) -> Option<String> {
        wait_for(timeout, || {
            self.stdout_lines().into_iter().find(|l| pred(l))
        })
    }

    /// Waits at most `timeout` for the shutdown summary line and parses it.
    pub fn summary(&self, timeout: Duration) -> Summary {
        let line = self
            .wait_stdout_line(timeout, |l| l.starts_with("summary:"))
            .unwrap_or_else(|| {
                panic!(
                    "no summary line on stdout; stdout: {:?}; stderr:\n{}",
                    self.stdout_lines(),
                    self.stderr()
                )
            });
        Summary::parse(&line).unwrap_or_else(|| panic!("bad summary line {line:?}"))
    }

    /// Open file descriptors of the server.
    pub fn fd_count(&self) -> usize {
        fd_count(self.pid())
    }

    /// Resident set size of the server, in KiB.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid())
    }

    /// CPU time (user + system, every thread) the server has used so far.
    pub fn cpu_time(&self) -> Duration {
        cpu_time(self.pid())
    }

    /// Number of threads of the server.
    pub fn threads(&self) -> usize {
        fs::read_dir(format!("/proc/{}/task", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.try_wait().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The shutdown line: `summary: connections N, bytes echoed B, datagrams echoed D`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub connections: u64,
    pub bytes: u64,
    pub datagrams: u64,
}

impl Summary {
    /// Parses the summary line, `None` if any field is missing.
    pub fn parse(line: &str) -> Option<Summary> {
        let rest = line.strip_prefix("summary:")?;
        let field = |name: &str| -> Option<u64> {
            rest.split(',')
                .map(str::trim)
                .find_map(|part| part.strip_prefix(name))
                .and_then(|n| n.trim().parse().ok())
        };
        Some(Summary {
            connections: field("connections ")?,
            bytes: field("bytes echoed ")?,
            datagrams: field("datagrams echoed ")?,
        })
    }
}

/// Polls `f` every 10 ms until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Polls `cond` every 10 ms until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    wait_for(timeout, || cond().then_some(())).is_some()
}

// ---------------------------------------------------------------------------------------------
// /proc readers

/// Open file descriptors of process `pid` (0 if it is gone).
pub fn fd_count(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// VmRSS of process `pid` in KiB (0 if it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// utime + stime of process `pid` (all threads), from /proc/PID/stat.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name is in parentheses and may hold spaces; fields resume after the last ')'.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `after` starts at field 3.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    // /proc reports clock ticks in USER_HZ, which is 100 on every Linux port we run on.
    Duration::from_millis(ticks * 10)
}

/// On-CPU nanoseconds of each thread of `pid` (from /proc/PID/task/TID/schedstat), if the
/// kernel exposes them.
pub fn thread_cpu_ns(pid: u32) -> Option<Vec<(u32, u64)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let entry = entry.ok()?;
        let tid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let s = fs::read_to_string(entry.path().join("schedstat")).ok()?;
        out.push((tid, s.split_whitespace().next()?.parse().ok()?));
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------------
// Limits and capabilities

/// Raises this test process's RLIMIT_NOFILE soft limit to the hard limit; returns the new soft
/// limit. Servers spawned afterwards inherit it.
pub fn raise_nofile() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current != lim.maximum {
        lim.current = lim.maximum;
        let _ = setrlimit(Resource::Nofile, lim);
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// Whether `prlimit` (util-linux) can run a program under a lower RLIMIT_NOFILE here.
pub fn prlimit_available() -> bool {
    Command::new("prlimit")
        .args(["--nofile=64:64", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Whether IPv6 loopback works here.
pub fn ipv6_available() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok()
}

/// A fresh directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("echo-server-test-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------------------
// Clients

/// Connects to `addr` with read and write timeouts of [`IO_TIMEOUT`].
pub fn connect(addr: impl ToSocketAddrs) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect to echo-server");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

/// Writes `msg` and reads the same number of bytes back; asserts they are equal.
pub fn echo_once<S>(stream: &S, msg: &[u8])
where
    for<'a> &'a S: Read + Write,
{
    let mut w = stream;
    w.write_all(msg).expect("write to echo-server");
    let mut got = vec![0; msg.len()];
    let mut r = stream;
    r.read_exact(&mut got).expect("read echo");
    assert_bytes_eq(&got, msg, "echo");
}

/// Whether a message written now comes back within `wait`: `Some(true)` echoed, `Some(false)`
/// closed by the server (EOF or reset), `None` no answer yet.
pub fn probe(stream: &TcpStream, msg: &[u8], wait: Duration) -> Option<bool> {
    let mut w = stream;
    if w.write_all(msg).is_err() {
        return Some(false);
    }
    read_reply(stream, msg, wait)
}

/// Reads `msg.len()` bytes within `wait` and compares them with `msg`: `Some(true)` echoed,
/// `Some(false)` closed, `None` nothing yet. Panics on wrong bytes.
pub fn read_reply(stream: &TcpStream, msg: &[u8], wait: Duration) -> Option<bool> {
    let deadline = Instant::now() + wait;
    let mut got = Vec::with_capacity(msg.len());
    let mut buf = vec![0; msg.len().max(1)];
    let mut r = stream;
    let result = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break None;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match r.read(&mut buf[..msg.len() - got.len()]) {
            Ok(0) => break Some(false),
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if got.len() == msg.len() {
                    assert_bytes_eq(&got, msg, "probe echo");
                    break Some(true);
                }
            }
            Err(e) if is_timeout(&e) => break None,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break Some(false),
        }
    };
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    result
}

/// Whether `e` is what a read timeout returns.
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Sends `data` in random-sized chunks (at most `max_chunk`) from one thread while reading the
/// echo on this one; returns what came back before EOF, an error, or `data.len()` bytes.
pub fn exchange<S>(stream: &S, data: &[u8], max_chunk: usize, seed: u64) -> Vec<u8>
where
    S: Sync,
    for<'a> &'a S: Read + Write,
{
    thread::scope(|s| {
        s.spawn(|| {
            let mut rng = Rng::new(seed);
            let mut w = stream;
            let mut off = 0;
            while off < data.len() {
                let n = (rng.below(max_chunk as u64) as usize + 1).min(data.len() - off);
                if w.write_all(&data[off..off + n]).is_err() {
                    return;
                }
                off += n;
            }
        });
        read_n(stream, data.len())
    })
}

/// Reads until `n` bytes, EOF, or an error (a timeout included).
pub fn read_n<S>(stream: &S, n: usize) -> Vec<u8>
where
    for<'a> &'a S: Read,
{
    let mut got = Vec::with_capacity(n);
    let mut buf = vec![0; 256 * 1024];
    let mut r = stream;
    while got.len() < n {
        let want = (n - got.len()).min(buf.len());
        match r.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(k) => got.extend_from_slice(&buf[..k]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    got
}

/// Reads until EOF or an error (a timeout included); returns the bytes and whether it ended
/// with a clean EOF.
pub fn read_to_eof<S>(stream: &S, limit: usize) -> (Vec<u8>, bool)
where
    for<'a> &'a S: Read,
{
    let mut got = Vec::new();
    let mut buf = vec![0; 256 * 1024];
    let mut r = stream;
    loop {
        match r.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(k) => {
                got.extend_from_slice(&buf[..k]);
                if got.len() > limit {
                    return (got, false);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return (got, false),
        }
    }
}

/// Asserts two byte strings are equal, reporting lengths and the first difference instead of
/// printing megabytes.
#[track_caller]
pub fn assert_bytes_eq(got: &[u8], want: &[u8], what: &str) {
    if got == want {
        return;
    }
    let first = got.iter().zip(want).position(|(a, b)| a != b);
    panic!(
        "{what}: got {} bytes, want {}; first difference at {:?}",
        got.len(),
        want.len(),
        first
    );
}

/// Deterministic random bytes for payloads.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A small xorshift generator: payloads and chunk sizes, reproducible from a seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform-ish in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// A repeating pseudo-random pattern for long streams: `at(offset, len)` is the slice a
/// stream of the pattern holds at `offset`, so multi-MiB transfers check cheaply.
#[derive(Debug, Clone)]
pub struct Pattern {
    bytes: Vec<u8>,
}

/// Prime period, so the pattern does not line up with power-of-two buffer sizes.
const PATTERN_PERIOD: usize = 65_521;

impl Pattern {
    pub fn new(seed: u64) -> Pattern {
        let mut bytes = random_bytes(seed, PATTERN_PERIOD);
        let head = bytes[..].to_vec();
        // Enough tail that any slice of up to 1 MiB is contiguous.
        while bytes.len() < PATTERN_PERIOD + (1 << 20) {
            bytes.extend_from_slice(&head);
        }
        Pattern { bytes }
    }

    /// The pattern's bytes at stream `offset`, `len` of them (`len` <= 1 MiB).
    pub fn at(&self, offset: u64, len: usize) -> &[u8] {
        let start = (offset % PATTERN_PERIOD as u64) as usize;
        &self.bytes[start..start + len]
    }

    /// Writes `total` bytes of the pattern in chunks of `chunk`, adding each chunk to
    /// `progress`; stops at the first error and returns the bytes written.
    pub fn write<W: Write>(
        &self,
        mut w: W,
        total: u64,
        chunk: usize,
        progress: &AtomicUsize,
    ) -> u64 {
        let mut off = 0;
        while off < total {
            let n = (chunk as u64).min(total - off) as usize;
            if w.write_all(self.at(off, n)).is_err() {
                break;
            }
            off += n as u64;
            progress.fetch_add(n, Ordering::Relaxed);
        }
        off
    }

    /// Reads up to `total` bytes and checks them against the pattern; returns the number of
    /// matching bytes read before EOF, an error, or `total`. Panics at the first wrong byte.
    pub fn verify<R: Read>(&self, mut r: R, total: u64) -> u64 {
        let mut buf = vec![0; 256 * 1024];
        let mut off = 0;
        while off < total {
            let want = (buf.len() as u64).min(total - off) as usize;
            match r.read(&mut buf[..want]) {
                Ok(0) => break,
                Ok(n) => {
                    if buf[..n] != *self.at(off, n) {
                        let i = buf[..n]
                            .iter()
                            .zip(self.at(off, n))
                            .position(|(a, b)| a != b)
                            .unwrap_or(0);
                        panic!("wrong byte at stream offset {}", off + i as u64);
                    }
                    off += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        off
    }
}

/// Runs the server binary with `args` to completion, within `timeout`; returns its status,
/// stdout and stderr.
pub fn run_cli(args: &[&str], timeout: Duration) -> (ExitStatus, String, String) {
    let mut child = Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn echo-server");
    let out = Arc::new(Mutex::new(Vec::new()));
    let err = Arc::new(Mutex::new(Vec::new()));
    let readers = [
        collect_lines(child.stdout.take().unwrap(), {
            let out = out.clone();
            move |l| out.lock().unwrap().push(l)
        }),
        collect_lines(child.stderr.take().unwrap(), {
            let err = err.clone();
            move |l| err.lock().unwrap().push(l)
        }),
    ];
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("echo-server {args:?} still running after {timeout:?}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    // The pipes close with the process, so the readers end.
    for r in readers {
        let _ = r.join();
    }
    let out = out.lock().unwrap().join("\n");
    let err = err.lock().unwrap().join("\n");
    (status, out, err)
}
