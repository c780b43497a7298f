//! The event loop under injected selector faults: spurious readiness,
//! EINTR, reordered and duplicated events, error-with-readable, stale
//! readiness. Real TCP sockets on loopback; no timing luck needed.

use super::*;
use crate::splice::ZeroCopy;
use proptest::prelude::*;
use selector::{Fault, FaultPlan};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread::JoinHandle;

fn config() -> Config {
    Config {
        backend: selector::BackendKind::Poll,
        max_connections: 1000,
        max_per_ip: None,
        max_pending_headers: None,
        proxy_from: Vec::new(),
        max_pending: 64 * 1024,
        max_memory: 1 << 30,
        idle_timeout: None,
        tcp_keepalive: None,
        shutdown_timeout: Duration::from_secs(5),
        udp_rate: None,
        trace: false,
        stats_interval: None,
        zero_copy: ZeroCopy::Auto,
        pipes_per_worker: 16,
        pipe_size: 1 << 20,
        watchdog: None,
        publish: false,
        log_json: false,
    }
}

/// A worker running on its own thread with a fault plan.
struct Running {
    addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<io::Result<Counters>>>,
}

impl Running {
    fn start(plan: FaultPlan, cfg: Config) -> Running {
        Running::start_on(plan, cfg, Listener::Tcp)
    }

    /// [`Running::start`] on a listener of the given kind.
    fn start_on(
        plan: FaultPlan,
        cfg: Config,
        kind: fn(std::net::TcpListener) -> Listener,
    ) -> Running {
        let listener = crate::listen::tcp("127.0.0.1:0".parse().unwrap(), false, 128).unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::new(
            1,
            None,
            crate::budget::Budget::new(cfg.max_memory, cfg.max_connections),
        ));
        let selector = Selector::with_faults(plan).unwrap();
        let (worker, waker) = Worker::new(
            0,
            Arc::new(cfg),
            Arc::clone(&shared),
            selector,
            vec![kind(listener)],
            Vec::new(),
            None,
        )
        .unwrap();
        shared.wakers.set(vec![waker]).unwrap();
        let thread = Some(std::thread::spawn(move || worker.run()));
        Running {
            addr,
            shared,
            thread,
        }
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    /// Shut down as a signal would, and return the loop's totals.
    fn stop(mut self) -> Counters {
        self.shared.shutdown.store(true, Relaxed);
        self.shared.wake_all();
        let thread = self.thread.take().unwrap();
        thread.join().unwrap().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.shared.shutdown.store(true, Relaxed);
            self.shared.wake_all();
            let _ = t.join();
        }
    }
}

fn pattern(seed: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ seed.wrapping_mul(131)) as u8)
        .collect()
}

/// Sends `data` in chunks while reading the echo, then half-closes and
/// reads to EOF; returns what came back.
fn echo(stream: &mut TcpStream, data: &[u8], chunk: usize) -> Vec<u8> {
    let mut back = Vec::with_capacity(data.len());
    let mut buf = [0u8; 16 * 1024];
    let mut sent = 0;
    for piece in data.chunks(chunk.max(1)) {
        stream.write_all(piece).unwrap();
        sent += piece.len();
        // Keep the echo flowing so neither side's buffers fill up.
        while sent - back.len() > 32 * 1024 {
            match stream.read(&mut buf) {
                Ok(0) => panic!("early EOF"),
                Ok(n) => back.extend_from_slice(&buf[..n]),
                Err(e) => panic!("reading the echo: {e}"),
            }
        }
    }
    stream.shutdown(Shutdown::Write).unwrap();
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => back.extend_from_slice(&buf[..n]),
            Err(e) => panic!("reading the echo: {e}"),
        }
    }
    back
}

const BENIGN: [Fault; 5] = [
    Fault::Interrupt,
    Fault::Spurious,
    Fault::Reverse,
    Fault::Duplicate,
    Fault::Stale,
];

#[test]
fn every_byte_comes_back_under_benign_faults() {
    for mode in [ZeroCopy::Off, ZeroCopy::Auto, ZeroCopy::Always] {
        every_byte_comes_back(mode);
    }
}

fn every_byte_comes_back(zero_copy: ZeroCopy) {
    let cfg = Config {
        zero_copy,
        ..config()
    };
    let server = Running::start(FaultPlan::random(7, 3, &BENIGN), cfg);
    let clients: Vec<_> = (0..6)
        .map(|i| {
            let mut stream = server.connect();
            std::thread::spawn(move || {
                let data = pattern(i, 300_000);
                assert!(
                    echo(&mut stream, &data, 1000 + i * 3001) == data,
                    "client {i}"
                );
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let totals = server.stop();
    assert_eq!(totals.accepted, 6);
    assert_eq!(totals.closed, 6);
    assert_eq!(totals.bytes_in, 6 * 300_000);
    assert_eq!(totals.bytes_out, 6 * 300_000);
    assert_eq!(totals.queued, 0);
}

/// A PROXY header cut into pieces, then data: the opening is promoted to
/// an echoing connection under a token of the other range, and every byte
/// after the header comes back, on every path.
#[test]
fn proxied_connections_are_promoted_under_benign_faults() {
    for zero_copy in [ZeroCopy::Off, ZeroCopy::Always] {
        let cfg = Config {
            zero_copy,
            ..config()
        };
        let server = Running::start_on(FaultPlan::random(5, 3, &BENIGN), cfg, Listener::Proxy);
        for i in 0..4 {
            let mut stream = server.connect();
            let header = format!("PROXY TCP4 192.0.2.{i} 198.51.100.2 5000 80\r\n");
            for piece in header.as_bytes().chunks(7) {
                stream.write_all(piece).unwrap();
                // Pacing only, so the pieces tend to arrive in separate
                // reads; the test holds however they arrive.
                std::thread::sleep(Duration::from_millis(2));
            }
            let data = pattern(i, 100_000);
            assert!(echo(&mut stream, &data, 1500) == data, "client {i}");
        }
        let totals = server.stop();
        assert_eq!((totals.accepted, totals.closed), (4, 4));
        assert_eq!(totals.refused_proxy, 0);
        assert_eq!(totals.bytes_out, 4 * 100_000);
        assert_eq!(totals.held, 0, "the budget got back all it counted");
    }
}

#[test]
fn error_with_readable_closes_each_connection_once() {
    // The tutorial's loop would remove such a socket twice and crash.
    let faults = [Fault::ErrorWithReadable, Fault::Duplicate, Fault::Stale];
    let server = Running::start(FaultPlan::random(11, 1, &faults), config());
    let mut cut_short = 0;
    for i in 0..20 {
        let mut stream = server.connect();
        let data = pattern(i, 5000);
        // Two rounds: an error injected on the first closes the connection
        // before the second half is echoed.
        let mut back = vec![0; 2500];
        let _ = stream.write_all(&data[..2500]);
        let got = stream.read(&mut back).unwrap_or(0);
        back.truncate(got);
        let _ = stream.write_all(&data[2500..]);
        let _ = stream.shutdown(Shutdown::Write);
        let _ = stream.read_to_end(&mut back);
        // Closed early or not, what came back is what was sent, in order.
        assert!(data.starts_with(&back), "client {i}: echo is not a prefix");
        cut_short += usize::from(back.len() < data.len());
    }
    assert!(
        cut_short > 0,
        "the injected errors never closed a connection"
    );
    let totals = server.stop();
    assert_eq!(totals.accepted, 20);
    assert_eq!(totals.closed, 20, "every connection closed exactly once");
    assert_eq!(totals.queued, 0);
    assert_eq!(server_open(&totals), 0);
}

fn server_open(c: &Counters) -> u64 {
    c.accepted - c.closed
}

#[test]
fn shutdown_echoes_what_was_received_then_closes() {
    let server = Running::start(FaultPlan::default(), config());
    let mut stream = server.connect();
    // Accepted before the "signal" closes the listener (and its accept queue).
    stream.write_all(b"!").unwrap();
    let mut first = [0u8; 1];
    stream.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"!");
    let data = pattern(3, 20_000);
    stream.write_all(&data).unwrap();
    // Let the bytes reach the server's socket before the "signal".
    std::thread::sleep(Duration::from_millis(100));
    let shared = Arc::clone(&server.shared);
    shared.shutdown.store(true, Relaxed);
    shared.wake_all();
    let mut back = Vec::new();
    stream.read_to_end(&mut back).unwrap();
    assert!(
        back == data,
        "got {} of {} bytes back",
        back.len(),
        data.len()
    );
    drop(stream);
    let totals = server.stop();
    assert_eq!(totals.bytes_out, 20_001);
}

/// A fuzzed client: its stream, what it sent, what came back.
type Client = (TcpStream, Vec<u8>, Vec<u8>);

/// What a fuzzed client does next.
#[derive(Clone, Debug)]
enum Step {
    Write(usize, usize),
    Read(usize),
    Reset(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0usize..4, 1usize..40_000).prop_map(|(c, n)| Step::Write(c, n)),
        3 => (0usize..4).prop_map(Step::Read),
        1 => (0usize..4).prop_map(Step::Reset),
    ]
}

proptest! {
    // 24 cases in the test suite; PROPTEST_CASES=N runs longer by hand.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(24)
    ))]

    /// Random client behaviour under random faults: no panic, nothing lost
    /// on connections that finish, every connection closed in the end.
    #[test]
    fn fuzzed_clients_under_faults(
        seed in any::<u64>(),
        steps in prop::collection::vec(step(), 1..40),
        zero_copy in prop_oneof![Just(ZeroCopy::Off), Just(ZeroCopy::Auto), Just(ZeroCopy::Always)],
    ) {
        let cfg = Config { zero_copy, ..config() };
        let server = Running::start(FaultPlan::random(seed, 4, &BENIGN), cfg);
        let mut clients: Vec<Option<Client>> =
            (0..4).map(|_| Some((server.connect(), Vec::new(), Vec::new()))).collect();
        for (i, s) in steps.iter().enumerate() {
            match *s {
                Step::Write(c, n) => {
                    if let Some((stream, sent, back)) = clients[c].as_mut() {
                        let data = pattern(i, n);
                        // Never more unread echo than the socket buffers
                        // hold, or this single-threaded client would stall.
                        if sent.len() - back.len() + n < 256 * 1024 {
                            stream.write_all(&data).unwrap();
                            sent.extend_from_slice(&data);
                        }
                    }
                }
                Step::Read(c) => {
                    if let Some((stream, sent, back)) = clients[c].as_mut() {
                        if back.len() < sent.len() {
                            let mut buf = vec![0; sent.len() - back.len()];
                            let n = stream.read(&mut buf).unwrap();
                            back.extend_from_slice(&buf[..n]);
                        }
                    }
                }
                Step::Reset(c) => {
                    if let Some((stream, _, _)) = clients[c].take() {
                        let socket = socket2::Socket::from(stream);
                        socket.set_linger(Some(Duration::ZERO)).unwrap();
                    }
                }
            }
        }
        for (stream, sent, mut back) in clients.into_iter().flatten() {
            let mut stream = stream;
            stream.shutdown(Shutdown::Write).unwrap();
            stream.read_to_end(&mut back).unwrap();
            prop_assert!(back == sent, "{} bytes sent, {} back", sent.len(), back.len());
        }
        let totals = server.stop();
        // Reset clients may still sit in the backlog when the loop stops;
        // whatever was accepted was closed, and nothing stayed queued.
        prop_assert!(totals.accepted <= 4);
        prop_assert_eq!(totals.closed, totals.accepted);
        prop_assert_eq!(totals.queued, 0);
        prop_assert_eq!(totals.held, 0, "the budget got back all it counted");
    }
}

#[test]
fn tokens_decode_from_fixed_ranges() {
    assert_eq!(Source::of(WAKER), Some(Source::Waker));
    assert_eq!(Source::of(SIGNALS), Some(Source::Signals));
    assert_eq!(Source::of(HANGUP), Some(Source::Hangup));
    assert_eq!(Source::of(Token(3)), None);
    assert_eq!(Source::of(Token(FIRST_LISTENER)), Some(Source::Listener(0)));
    assert_eq!(Source::of(Token(FIRST_UDP + 3)), Some(Source::Udp(3)));
    assert_eq!(
        Source::of(Token(FIRST_OPENING + 5)),
        Some(Source::Opening(5))
    );
    assert_eq!(Source::of(Token(FIRST_CONN + 7)), Some(Source::Conn(7)));
}
