//! `--workers N`: N event loops, each with its own selector and SO_REUSEPORT listener; every
//! connection is served correctly whichever worker gets it, and the work is spread.

mod util;

use std::collections::HashMap;
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use util::{assert_bytes_eq, connect, exchange, random_bytes, Server};

const CLIENTS: usize = 200;

fn four_workers(backend: &str) {
    let mut server = Server::start(&["--workers", "4", "--backend", backend]);
    assert_eq!(
        server.tcp.len(),
        1,
        "one listening line per address, whatever the workers: {:?}",
        server.stdout_lines()
    );
    // The loops start right after the sockets are announced: give them a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while server.threads() < 4 && std::time::Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    assert!(
        server.threads() >= 4,
        "{backend}: {} threads with --workers 4",
        server.threads()
    );
    let before = util::thread_cpu_ns(server.pid());
    let clients: Vec<TcpStream> = (0..CLIENTS).map(|_| connect(server.addr())).collect();
    // Every client at once, a few at a time per thread, 64 KiB each.
    thread::scope(|s| {
        for (t, group) in clients.chunks(CLIENTS / 8).enumerate() {
            s.spawn(move || {
                for (i, c) in group.iter().enumerate() {
                    let seed = (t * 1000 + i) as u64;
                    let data = random_bytes(seed, 64 * 1024);
                    let got = exchange(c, &data, 8192, seed);
                    assert_bytes_eq(&got, &data, &format!("{backend}: client {t}/{i}"));
                }
            });
        }
    });
    if let (Some(before), Some(after)) = (before, util::thread_cpu_ns(server.pid())) {
        let before: HashMap<u32, u64> = before.into_iter().collect();
        let busy = after
            .iter()
            .filter(|(tid, ns)| ns.saturating_sub(*before.get(tid).unwrap_or(&0)) > 1_000_000)
            .count();
        assert!(
            busy >= 2,
            "{backend}: only {busy} server thread(s) did any work for {CLIENTS} connections"
        );
    } else {
        eprintln!("per-thread CPU time unavailable (no schedstat): spread not checked");
    }
    drop(clients);
    server.term();
    let status = server
        .wait_exit(Duration::from_secs(5))
        .expect("exit after SIGTERM");
    assert_eq!(status.code(), Some(0), "stderr:\n{}", server.stderr());
    let summary = server.summary(Duration::from_secs(1));
    assert_eq!(
        summary.connections, CLIENTS as u64,
        "totals over all workers: {summary:?}"
    );
    assert_eq!(summary.bytes, (CLIENTS * 64 * 1024) as u64, "{summary:?}");
}

macro_rules! per_backend {
    ($($backend:ident),* $(,)?) => {$(
        #[test]
        fn $backend() {
            four_workers(stringify!($backend));
        }
    )*};
}

per_backend!(epoll, poll, select);

#[test]
fn workers_share_udp_and_unix_listeners() {
    let dir = util::TempDir::new("workers");
    let path = dir.path().join("echo.sock");
    let server = Server::start(&[
        "--workers",
        "2",
        "-l",
        "127.0.0.1:0",
        "-u",
        "127.0.0.1:0",
        "--unix",
        path.to_str().unwrap(),
    ]);
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    for i in 0..20 {
        let msg = format!("datagram {i}");
        udp.send_to(msg.as_bytes(), server.udp[0]).unwrap();
        let mut buf = [0; 64];
        let (n, _) = udp.recv_from(&mut buf).expect("UDP echo with 2 workers");
        assert_eq!(&buf[..n], msg.as_bytes());
    }
    for i in 0..20 {
        let c = std::os::unix::net::UnixStream::connect(&path).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        util::echo_once(&c, format!("unix {i}").as_bytes());
    }
    for i in 0..20 {
        util::echo_once(&connect(server.addr()), format!("tcp {i}").as_bytes());
    }
}
