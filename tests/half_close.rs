//! Half-close: a client that shuts down its write side gets all its data back, then EOF.

mod util;

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use util::{assert_bytes_eq, connect, random_bytes, read_to_eof, Rng, Server};

/// Writes `data` in random chunks, then shuts down the write side, while this thread reads
/// to EOF, starting after `read_delay`. Returns the bytes read and whether a clean EOF ended
/// them.
fn send_then_shutdown(
    stream: &TcpStream,
    data: &[u8],
    seed: u64,
    read_delay: Duration,
) -> (Vec<u8>, bool) {
    thread::scope(|s| {
        s.spawn(|| {
            let mut rng = Rng::new(seed);
            let mut w = stream;
            let mut off = 0;
            while off < data.len() {
                let n = (1 + rng.below(100_000) as usize).min(data.len() - off);
                w.write_all(&data[off..off + n]).expect("write");
                off += n;
            }
            stream.shutdown(Shutdown::Write).expect("shutdown(Write)");
        });
        thread::sleep(read_delay);
        read_to_eof(stream, data.len() + 1)
    })
}

fn data_then_eof(backend: &str) {
    let server = Server::start(&["--backend", backend]);
    for (i, size) in [1usize, 1000, 300_000].into_iter().enumerate() {
        let data = random_bytes(i as u64, size);
        let stream = connect(server.addr());
        let (got, eof) = send_then_shutdown(&stream, &data, i as u64, Duration::ZERO);
        assert_bytes_eq(&got, &data, &format!("{backend}: {size} bytes before EOF"));
        assert!(eof, "{backend}: no clean EOF after {size} bytes");
    }
}

fn shutdown_without_data_gets_eof(backend: &str) {
    let server = Server::start(&["--backend", backend]);
    let stream = connect(server.addr());
    stream.shutdown(Shutdown::Write).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let start = Instant::now();
    let (got, eof) = read_to_eof(&stream, 0);
    assert!(got.is_empty(), "{backend}: unexpected bytes {got:?}");
    assert!(eof, "{backend}: no EOF within {:?}", start.elapsed());
}

/// A client with a small receive buffer, so the server holds queued output when it reads
/// the client's EOF.
fn small_buffer_client(addr: SocketAddr) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&SockAddr::from(addr)).expect("connect");
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(util::IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(util::IO_TIMEOUT)).unwrap();
    stream
}

/// More than `--max-pending` in flight when the client half-closes: the queue still drains.
fn large_queue_then_eof(backend: &str) {
    let server = Server::start(&["--backend", backend, "--max-pending", "65536"]);
    let data = random_bytes(7, 8 << 20);
    let stream = small_buffer_client(server.addr());
    let (got, eof) = send_then_shutdown(&stream, &data, 7, Duration::ZERO);
    assert_bytes_eq(&got, &data, &format!("{backend}: 8 MiB before EOF"));
    assert!(eof, "{backend}: no clean EOF after 8 MiB");
}

/// The client writes everything, half-closes, and reads only later: the server sees EOF
/// with output still queued (8 MiB is more than its socket buffer can hold; the large
/// `--max-pending` lets it read all of it) and must not drop that output.
fn late_reader_after_half_close(backend: &str) {
    let server = Server::start(&["--backend", backend, "--max-pending", "67108864"]);
    let data = random_bytes(8, 8 << 20);
    let stream = small_buffer_client(server.addr());
    (&stream).write_all(&data).expect("write 8 MiB");
    stream.shutdown(Shutdown::Write).unwrap();
    thread::sleep(Duration::from_millis(300));
    let (got, eof) = read_to_eof(&stream, data.len() + 1);
    assert_bytes_eq(&got, &data, &format!("{backend}: late reader"));
    assert!(eof, "{backend}: no clean EOF for the late reader");
}

macro_rules! per_backend {
    ($($backend:ident),* $(,)?) => {$(
        mod $backend {
            #[test]
            fn data_then_eof() {
                super::data_then_eof(stringify!($backend));
            }

            #[test]
            fn shutdown_without_data_gets_eof() {
                super::shutdown_without_data_gets_eof(stringify!($backend));
            }

            #[test]
            fn large_queue_then_eof() {
                super::large_queue_then_eof(stringify!($backend));
            }

            #[test]
            fn late_reader_after_half_close() {
                super::late_reader_after_half_close(stringify!($backend));
            }
        }
    )*};
}

per_backend!(epoll, poll, select);
