//! Nothing outlives its connection (issue 9): with `--idle-timeout 3600`, 50,000 short
//! connections leave the idle list's size (the stats line's `idle_tracked`) and the
//! server's RSS where they started. Before, each accept left a 32-byte deadline behind
//! for an hour: 1.6 MiB for 50,000.

mod util;

use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use util::{connect, echo_once, wait_for, Server};

const CHURN: usize = 50_000;

/// The last stats line's `field=N`.
fn last_stat(server: &Server, field: &str) -> Option<u64> {
    server
        .stderr()
        .lines()
        .rev()
        .filter(|l| l.starts_with("stats "))
        .find_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix(field)?.strip_prefix('=')?.parse().ok())
        })
}

/// Opens and resets `n` connections, `threads` at a time; every 100th echoes first, so the
/// server is known to keep up.
fn churn(addr: SocketAddr, n: usize, threads: usize) {
    thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                for i in (t..n).step_by(threads) {
                    let stream = TcpStream::connect(addr).expect("connect");
                    if i % 100 == 0 {
                        echo_once(&stream, b"still here");
                    }
                    // A reset, not a FIN: no TIME_WAIT left to exhaust the client's ports.
                    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                }
            });
        }
    });
}

/// Waits until the stats line shows `accepted > n` and only the one long-lived connection
/// open.
fn settled(server: &Server, n: u64) -> bool {
    wait_for(Duration::from_secs(30), || {
        let done = last_stat(server, "accepted")? > n && last_stat(server, "open")? == 1;
        done.then_some(())
    })
    .is_some()
}

#[test]
fn issue9_churned_connections_leave_no_idle_entries_behind() {
    let server = Server::start(&["--idle-timeout", "3600", "--stats-interval", "0.1"]);
    let open = connect(server.addr());
    echo_once(&open, b"one connection stays open throughout");
    churn(server.addr(), 2_000, 2);
    assert!(
        settled(&server, 2_000),
        "warm-up: stderr:\n{}",
        server.stderr()
    );
    thread::sleep(Duration::from_millis(300));
    let before_rss = server.rss_kib();
    let before_tracked = last_stat(&server, "idle_tracked");
    assert_eq!(
        before_tracked,
        Some(1),
        "the open connection is the one tracked"
    );

    let start = Instant::now();
    churn(server.addr(), CHURN, 2);
    assert!(
        settled(&server, (2_000 + CHURN) as u64),
        "the server never saw {CHURN} more connections come and go; stderr:\n{}",
        server.stderr()
    );
    thread::sleep(Duration::from_millis(300));
    let after_rss = server.rss_kib();
    let after_tracked = last_stat(&server, "idle_tracked");
    eprintln!(
        "{CHURN} connections in {:.1} s: RSS {before_rss} -> {after_rss} KiB, \
         idle_tracked {before_tracked:?} -> {after_tracked:?}",
        start.elapsed().as_secs_f64()
    );
    assert_eq!(
        after_tracked,
        Some(1),
        "the idle list kept closed connections"
    );
    assert!(
        after_rss <= before_rss + 512,
        "RSS grew from {before_rss} KiB to {after_rss} KiB over {CHURN} closed connections"
    );
    echo_once(&open, b"and it is still served");
}
