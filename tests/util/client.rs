//! Client helpers: connect with timeouts, echo exchanges with checks, and reproducible
//! payloads.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::IO_TIMEOUT;

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

/// One raw HTTP request, sent as is: the status code, the head and the
/// body, read until the server closes (the metrics and control endpoints
/// close after each answer).
pub fn http(addr: SocketAddr, request: &[u8]) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the HTTP endpoint");
    s.set_read_timeout(Some(IO_TIMEOUT))
        .expect("set a read timeout");
    s.write_all(request).expect("send the request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .expect("the server closes after answering");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, head.to_string(), body.to_string())
}
