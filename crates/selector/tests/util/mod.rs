//! Helpers shared by the selector test binaries: descriptor pairs, bounded
//! waits for events, and the macro that runs one test on every backend.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use selector::{BackendKind, Event, Events, Selector, Token};
use std::fs::File;
use std::io::Read;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// The concrete backends this OS has (kqueue on macOS and the BSDs), from
/// the library's own list, in the order the suite runs them.
pub const KINDS: &[BackendKind] = &BackendKind::CONCRETE;

/// How long one wait inside [`expect_events`] may take.
const POLL_TIMEOUT: Duration = Duration::from_millis(100);
/// How long the bounded waits ([`expect_events`], [`retry`]) keep trying
/// before they give up. A time, not a count of selects: when another event
/// is already ready every select returns at once, and a loaded machine may
/// deliver a FIN, a reset or an urgent byte late (softirq work deferred to
/// ksoftirqd). A pass returns as soon as the awaited state shows.
pub const WAIT_LIMIT: Duration = Duration::from_secs(5);
/// The pause between tries, so waits that return at once do not spin.
pub const RETRY_PAUSE: Duration = Duration::from_millis(5);

/// Turns `fn name(kind: BackendKind)` test bodies into one `#[test]` each,
/// `every_backend::name`, that runs the body on every backend in [`KINDS`]
/// and names the backend of a failure.
#[macro_export]
macro_rules! per_backend {
    ($($test:ident),+ $(,)?) => {
        mod every_backend {
            $( #[test] fn $test() { $crate::util::on_every_backend(super::$test) } )+
        }
    };
}

/// Runs `test` on each backend of [`KINDS`] in turn.
pub fn on_every_backend(test: fn(BackendKind)) {
    for &kind in KINDS {
        let _named = NameOnPanic(kind);
        test(kind);
    }
}

/// Says which backend a test failed on, as the panic unwinds past it.
struct NameOnPanic(BackendKind);

impl Drop for NameOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("(failed on the {} backend)", self.0);
        }
    }
}

/// A selector on `kind`, checked to really use it.
pub fn selector(kind: BackendKind) -> Selector {
    let selector = Selector::with_backend(kind).unwrap();
    assert_eq!(selector.backend(), kind);
    selector
}

/// What one event should say, compared flag for flag.
#[derive(Clone, Copy, PartialEq, Eq, Debug, PartialOrd, Ord)]
pub struct Expect {
    pub token: Token,
    pub readable: bool,
    pub writable: bool,
    pub error: bool,
    pub hangup: bool,
    /// Only set with priority interest, so tests without it never see it.
    pub priority: bool,
}

impl Expect {
    /// An event for `token` with no flags yet; add them with the builders.
    pub fn token(token: usize) -> Expect {
        Expect {
            token: Token(token),
            readable: false,
            writable: false,
            error: false,
            hangup: false,
            priority: false,
        }
    }
    pub fn readable(token: usize) -> Expect {
        Expect::token(token).and_readable()
    }
    pub fn writable(token: usize) -> Expect {
        Expect::token(token).and_writable()
    }
    pub fn and_readable(mut self) -> Expect {
        self.readable = true;
        self
    }
    pub fn and_writable(mut self) -> Expect {
        self.writable = true;
        self
    }
    pub fn and_error(mut self) -> Expect {
        self.error = true;
        self
    }
    pub fn and_hangup(mut self) -> Expect {
        self.hangup = true;
        self
    }
    pub fn and_priority(mut self) -> Expect {
        self.priority = true;
        self
    }
}

impl From<Event> for Expect {
    fn from(event: Event) -> Expect {
        Expect {
            token: event.token(),
            readable: event.is_readable(),
            writable: event.is_writable(),
            error: event.is_error(),
            hangup: event.is_hangup(),
            priority: event.is_priority(),
        }
    }
}

/// The events of the last select, sorted by token.
pub fn seen(events: &Events) -> Vec<Expect> {
    let mut seen: Vec<Expect> = events.iter().map(Expect::from).collect();
    seen.sort();
    seen
}

/// Calls `attempt` until it returns true or [`WAIT_LIMIT`] has passed,
/// pausing [`RETRY_PAUSE`] between tries; whether it ever returned true.
pub fn retry(mut attempt: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + WAIT_LIMIT;
    loop {
        if attempt() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(RETRY_PAUSE);
    }
}

/// Waits (for at most [`WAIT_LIMIT`]) until one select reports exactly
/// `expected`: no event missing, none extra, every flag as given. Earlier
/// selects may report less or other things (kernel latency, spurious
/// wakeups); the last one seen is in the panic message.
#[track_caller]
pub fn expect_events(selector: &mut Selector, events: &mut Events, expected: &[Expect]) {
    let mut expected = expected.to_vec();
    expected.sort();
    let mut last = Vec::new();
    let mut selects = 0;
    let found = retry(|| {
        selector.select(events, Some(POLL_TIMEOUT)).unwrap();
        selects += 1;
        last = seen(events);
        last == expected
    });
    assert!(
        found,
        "{}: expected {expected:?}\n after {selects} selects in {WAIT_LIMIT:?} the last one reported {last:?}",
        selector.backend()
    );
}

/// Checks that a short wait reports nothing.
#[track_caller]
pub fn expect_no_events(selector: &mut Selector, events: &mut Events) {
    selector
        .select(events, Some(Duration::from_millis(20)))
        .unwrap();
    assert!(
        events.is_empty(),
        "{}: expected no events, got {:?}",
        selector.backend(),
        seen(events)
    );
}

/// A pipe as `(read end, write end)`, both close-on-exec and blocking.
pub fn pipe() -> (File, File) {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    (File::from(r), File::from(w))
}

/// A connected pair of TCP streams on loopback: `(client, server side)`.
pub fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    (client, server)
}

/// Two UDP sockets on loopback, each connected to the other.
pub fn udp_pair() -> (UdpSocket, UdpSocket) {
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    a.connect(b.local_addr().unwrap()).unwrap();
    b.connect(a.local_addr().unwrap()).unwrap();
    (a, b)
}

/// A regular file, unlinked already, with a few bytes in it.
pub fn regular_file() -> File {
    let mut path = std::env::temp_dir();
    let unique = format!(
        "selector-test-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    );
    path.push(unique.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_"));
    let file = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    std::io::Write::write_all(&mut &file, b"contents").unwrap();
    file
}

/// Reads what is there without blocking; returns the byte count (0 at end of
/// file or when nothing is pending).
pub fn drain(fd: impl AsFd) -> usize {
    let fd = fd.as_fd();
    let mut buf = [0u8; 4096];
    let mut total = 0;
    loop {
        match rustix::io::read(fd, &mut buf) {
            Ok(0) => return total,
            Ok(n) => total += n,
            Err(rustix::io::Errno::AGAIN) => return total,
            Err(e) => panic!("drain fd {}: {e}", fd.as_raw_fd()),
        }
    }
}

/// Makes `fd` non-blocking.
pub fn set_nonblocking(fd: impl AsFd) {
    let fd = fd.as_fd();
    let flags = rustix::fs::fcntl_getfl(fd).unwrap();
    rustix::fs::fcntl_setfl(fd, flags | rustix::fs::OFlags::NONBLOCK).unwrap();
}

/// Reads exactly `n` bytes from a blocking reader.
pub fn read_exact(mut reader: impl Read, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    reader.read_exact(&mut buf).unwrap();
    buf
}

/// A duplicate of `fd` at a number of its own, high up, that no other
/// test in the binary uses, so it can be closed and its number handed to
/// the selector (or reused on purpose) without another thread reopening it.
///
/// Other descriptors are opened at the lowest free numbers, far below;
/// each call takes the next number down from just under the limit.
pub fn private_dup(fd: impl AsFd) -> OwnedFd {
    static NEXT: AtomicI32 = AtomicI32::new(0);
    let top = raise_fd_limit().min(8192) as RawFd - 1;
    let below = NEXT.fetch_add(1, Ordering::Relaxed);
    assert!(below < 256, "private_dup: too many calls in one binary");
    let dup = dup_at_least(fd, top - below);
    assert_eq!(dup.as_raw_fd(), top - below, "private_dup: number taken");
    dup
}

/// A descriptor number that is closed and stays closed for the test (see
/// [`private_dup`]).
pub fn closed_fd() -> RawFd {
    let (r, _w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    let dup = private_dup(&r);
    let raw = dup.as_raw_fd();
    drop(dup);
    raw
}

/// A pipe whose read end has a number of its own (see [`private_dup`]).
pub fn private_pipe() -> (File, File) {
    let (r, w) = pipe();
    (File::from(private_dup(&r)), w)
}

/// Raises the soft descriptor limit to the hard one, and returns it.
pub fn raise_fd_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        setrlimit(Resource::Nofile, limit).unwrap();
    }
    limit.current.unwrap_or(u64::MAX)
}

/// A duplicate of `fd` numbered at least `min` (close-on-exec).
pub fn dup_at_least(fd: impl AsFd, min: RawFd) -> OwnedFd {
    let dup = rustix::io::fcntl_dupfd_cloexec(fd, min).unwrap();
    assert!(dup.as_raw_fd() >= min);
    dup
}

/// Measures how long `f` takes.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let value = f();
    (value, start.elapsed())
}
