//! `--udp-rate` under a flood of fresh sources (issue 9): the table forgets the least
//! recently seen sources, so 100,000 spoofed-looking sources cannot reset the bucket of a
//! source that keeps sending. Loopback only: the flood comes from 100,000 addresses in
//! 127.1.0.0/16 and 127.2.0.0/16, one short-lived socket each.

mod util;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::thread;
use std::time::{Duration, Instant};

use util::{assert_bytes_eq, Server};

const RATE: u64 = 1000;
const DATAGRAM: usize = 100;
const FLOOD_SOURCES: u32 = 100_000;

/// Sends one datagram from each of `sources` addresses starting at `first`, a batch at a
/// time, and waits for each batch's echoes (a new source's first datagram is within its
/// cap), so every source reaches the server's table instead of overflowing its receive
/// buffer. Returns how many sources were echoed.
fn flood(server: SocketAddr, first: u32, sources: u32) -> u32 {
    const BATCH: u32 = 64;
    let mut echoed = 0;
    let mut buf = [0u8; 64];
    for start in (first..first + sources).step_by(BATCH as usize) {
        let batch: Vec<UdpSocket> = (start..(start + BATCH).min(first + sources))
            .filter_map(|n| UdpSocket::bind((Ipv4Addr::from(0x7f01_0000 + n), 0)).ok())
            .filter(|sock| sock.send_to(b"flood", server).is_ok())
            .collect();
        for sock in &batch {
            let _ = sock.set_read_timeout(Some(Duration::from_millis(100)));
            if sock.recv_from(&mut buf).is_ok() {
                echoed += 1;
            }
        }
    }
    echoed
}

#[test]
fn issue9_udp_rate_holds_while_100k_other_sources_flood() {
    if UdpSocket::bind("127.1.0.1:0").is_err() {
        skip!("cannot bind addresses in 127.0.0.0/8 other than 127.0.0.1");
    }
    let server = Server::start(&["-u", "127.0.0.1:0", "--udp-rate", &RATE.to_string()]);
    let target = server.udp[0];
    let capped = UdpSocket::bind("127.0.0.1:0").expect("bind the capped source");
    capped
        .set_read_timeout(Some(Duration::from_millis(5)))
        .expect("read timeout");
    let msg = [0x5a; DATAGRAM];
    let flooding = AtomicBool::new(false);
    let window = thread::scope(|s| {
        let capped = &capped;
        let flooding = &flooding;
        // The capped source offers ten times its rate from start to end and counts the
        // echoes that arrive while the flood runs.
        let counter = s.spawn(move || {
            let mut buf = [0u8; 2048];
            let (mut during, mut next_send) = (0u64, Instant::now());
            let start = Instant::now();
            let mut flood_seen = false;
            loop {
                if Instant::now() >= next_send {
                    capped
                        .send_to(&msg, target)
                        .expect("send from the capped source");
                    next_send += Duration::from_millis(10);
                }
                let on = flooding.load(Relaxed);
                flood_seen |= on;
                if flood_seen && !on || start.elapsed() > Duration::from_secs(60) {
                    return during;
                }
                if let Ok((n, _)) = capped.recv_from(&mut buf) {
                    if on {
                        during += n as u64;
                    }
                }
            }
        });
        // A second of the capped source alone spends its one-second burst.
        thread::sleep(Duration::from_millis(1200));
        flooding.store(true, Relaxed);
        let start = Instant::now();
        let half = FLOOD_SOURCES / 2;
        let floods: Vec<_> = [0, half]
            .into_iter()
            .map(|first| s.spawn(move || flood(target, first, half)))
            .collect();
        let sent: u32 = floods
            .into_iter()
            .map(|f| f.join().expect("flood thread"))
            .sum();
        let window = start.elapsed();
        flooding.store(false, Relaxed);
        let during = counter.join().expect("capped source thread");
        (sent, window, during)
    });
    let (sent, window, during) = window;
    assert!(
        sent >= FLOOD_SOURCES * 9 / 10,
        "only {sent} of {FLOOD_SOURCES} flood sources were echoed"
    );
    let allowed = RATE as f64 * window.as_secs_f64() * 1.1 + DATAGRAM as f64;
    eprintln!(
        "capped source: {during} bytes echoed in {window:?} of flood from {sent} sources \
         (cap {RATE} B/s, allowed {allowed:.0})"
    );
    assert!(
        during as f64 <= allowed,
        "{during} bytes echoed in {window:?} to a source capped at {RATE} B/s \
         (more than 1.1x) while {sent} other sources flooded"
    );
    assert!(
        during as f64 >= RATE as f64 * window.as_secs_f64() / 4.0,
        "only {during} bytes echoed in {window:?}: the capped source was starved, not capped"
    );
    // The table is full of flood sources; a new one still gets its own bucket.
    let fresh = UdpSocket::bind("127.0.0.3:0").expect("bind a fresh source");
    fresh
        .set_read_timeout(Some(Duration::from_secs(3)))
        .expect("read timeout");
    fresh.send_to(b"after the flood", target).expect("send");
    let mut buf = [0u8; 64];
    let (n, _) = fresh
        .recv_from(&mut buf)
        .expect("a fresh source is echoed after the flood");
    assert_bytes_eq(&buf[..n], b"after the flood", "echo to a fresh source");
}
