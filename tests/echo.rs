//! Every byte comes back once, in order, on every backend: many sizes, random chunking, one
//! connection or 2,000 at once (more than select's classic FD_SETSIZE of 1,024).

mod util;

use std::io::Write;
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use util::{assert_bytes_eq, connect, echo_once, exchange, random_bytes, Pattern, Rng, Server};

/// Sizes from one byte to 1 MiB, around the usual buffer boundaries.
const SIZES: &[usize] = &[
    1,
    2,
    7,
    100,
    1000,
    1024,
    4095,
    4096,
    4097,
    16_384,
    65_535,
    65_536,
    65_537,
    300_000,
    1 << 20,
];

fn start(backend: &str) -> Server {
    Server::start(&["--backend", backend])
}

/// One connection per size, each written in random chunks while the echo is read.
fn sizes_in_order(backend: &str) {
    let server = start(backend);
    let mut rng = Rng::new(1);
    for (i, &size) in SIZES.iter().enumerate() {
        let data = random_bytes(i as u64, size);
        let max_chunk = 1 + rng.below(size as u64) as usize;
        let stream = connect(server.addr());
        let got = exchange(&stream, &data, max_chunk, i as u64);
        assert_bytes_eq(&got, &data, &format!("{backend}: {size} bytes"));
    }
}

/// Ping-pong of many differently sized messages on one connection.
fn many_messages_one_connection(backend: &str) {
    let server = start(backend);
    let stream = connect(server.addr());
    let mut rng = Rng::new(2);
    for i in 0..500 {
        let size = 1 + rng.below(5000) as usize;
        echo_once(&stream, &random_bytes(i, size));
    }
    // One stream of all sizes back to back, written in one go.
    let data: Vec<u8> = SIZES
        .iter()
        .take(11)
        .flat_map(|&n| random_bytes(n as u64, n))
        .collect();
    let got = exchange(&stream, &data, data.len(), 3);
    assert_bytes_eq(&got, &data, "back-to-back sizes");
}

/// 2,000 clients connected at once, each with its own message, written in two parts that
/// interleave across clients; every 100th message is large.
fn two_thousand_clients(backend: &str) {
    const CLIENTS: usize = 2000;
    let limit = util::raise_nofile();
    if limit < 2 * CLIENTS as u64 + 200 {
        skip!("RLIMIT_NOFILE hard limit {limit} is too low for {CLIENTS} clients");
    }
    let server = start(backend);
    let mut rng = Rng::new(4);
    let clients: Vec<(TcpStream, Vec<u8>, usize)> = (0..CLIENTS)
        .map(|i| {
            let size = if i % 100 == 0 {
                100_000 + rng.below(50_000) as usize
            } else {
                1 + rng.below(2000) as usize
            };
            let msg = random_bytes(i as u64, size);
            let split = rng.below(size as u64 + 1) as usize;
            (connect(server.addr()), msg, split)
        })
        .collect();
    for (stream, msg, split) in &clients {
        (&*stream)
            .write_all(&msg[..*split])
            .expect("write first part");
    }
    for (stream, msg, split) in &clients {
        (&*stream)
            .write_all(&msg[*split..])
            .expect("write second part");
    }
    for (i, (stream, msg, _)) in clients.iter().enumerate() {
        let got = util::read_n(stream, msg.len());
        assert_bytes_eq(&got, msg, &format!("{backend}: client {i} of {CLIENTS}"));
    }
    assert!(
        server.fd_count() >= CLIENTS,
        "{backend}: server holds {} fds with {CLIENTS} clients open",
        server.fd_count()
    );
    // Everyone still served on a second round, in reverse order.
    for (stream, msg, _) in clients.iter().rev() {
        echo_once(stream, &msg[..msg.len().min(10)]);
    }
}

/// A client that reads late through a small receive buffer: the server's sends come up
/// short, so its queue and the writable path carry the echo. Order and content still hold.
fn partial_writes_keep_order(backend: &str) {
    const TOTAL: u64 = 8 << 20;
    let server = start(backend);
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&SockAddr::from(server.addr())).unwrap();
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(util::IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(util::IO_TIMEOUT)).unwrap();
    let pattern = Pattern::new(6);
    thread::scope(|s| {
        s.spawn(|| {
            let mut rng = Rng::new(6);
            let mut w = &stream;
            let mut off = 0;
            while off < TOTAL {
                let n = (1 + rng.below(100_000)).min(TOTAL - off) as usize;
                w.write_all(pattern.at(off, n)).expect("write");
                off += n as u64;
            }
        });
        thread::sleep(Duration::from_millis(200));
        assert_eq!(
            pattern.verify(&stream, TOTAL),
            TOTAL,
            "{backend}: bytes echoed in order"
        );
    });
}

/// Random message sizes and chunkings on fresh connections to one server.
fn random_chunking(backend: &str) {
    let server = start(backend);
    let mut runner = TestRunner::new(Config {
        cases: 12,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        prop::collection::vec(1usize..=70_000, 1..6),
        1usize..=65_536,
        any::<u64>(),
    );
    runner
        .run(&strategy, |(sizes, max_chunk, seed)| {
            let data: Vec<u8> = sizes
                .iter()
                .enumerate()
                .flat_map(|(i, &n)| random_bytes(seed ^ i as u64, n))
                .collect();
            let stream = connect(server.addr());
            let got = exchange(&stream, &data, max_chunk, seed);
            prop_assert_eq!(got.len(), data.len());
            prop_assert!(got == data, "bytes differ");
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{backend}: {e}"));
}

macro_rules! per_backend {
    ($($backend:ident),* $(,)?) => {$(
        mod $backend {
            #[test]
            fn sizes_in_order() {
                super::sizes_in_order(stringify!($backend));
            }

            #[test]
            fn many_messages_one_connection() {
                super::many_messages_one_connection(stringify!($backend));
            }

            #[test]
            fn two_thousand_clients() {
                super::two_thousand_clients(stringify!($backend));
            }

            #[test]
            fn partial_writes_keep_order() {
                super::partial_writes_keep_order(stringify!($backend));
            }

            #[test]
            fn random_chunking() {
                super::random_chunking(stringify!($backend));
            }
        }
    )*};
}

per_backend!(auto, epoll, poll, select);

#[test]
fn idle_clients_do_not_delay_others() {
    // A client that connects and says nothing must not hold up the loop for the rest.
    let server = Server::start(&[]);
    let _silent: Vec<_> = (0..50).map(|_| connect(server.addr())).collect();
    let stream = connect(server.addr());
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    echo_once(&stream, b"hello");
}
