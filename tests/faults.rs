//! `--fault` (issue 18): each TCP fault does what it says at the offset it
//! says, per listener with `on=`, reproducibly from `--fault-seed`, counted
//! in the metrics; bad specs exit 2 naming the spec.

mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use util::{
    assert_bytes_eq, connect, random_bytes, read_n, read_to_eof, run_cli, wait_until, Server,
};

const WAIT: Duration = Duration::from_secs(10);

/// A server with one TCP listener and `faults` (`--fault` each).
fn faulty(faults: &[&str], extra: &[&str]) -> Server {
    let mut args = vec!["-l", "127.0.0.1:0"];
    for f in faults {
        args.extend_from_slice(&["--fault", f]);
    }
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// Writes `data` from a thread (the echo may stop while it is written),
/// then reads until EOF, an error or `data.len()` bytes; returns what came
/// back and the error that ended it, if any.
fn send_and_read(addr: SocketAddr, data: &[u8]) -> (Vec<u8>, Option<ErrorKind>) {
    let stream = connect(addr);
    let mut writer = stream.try_clone().unwrap();
    let owned = data.to_vec();
    let t = std::thread::spawn(move || {
        let _ = writer.write_all(&owned);
    });
    let mut got = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    let mut r = &stream;
    let end = loop {
        match r.read(&mut buf) {
            Ok(0) => break None,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if got.len() >= data.len() {
                    break None;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => break Some(e.kind()),
        }
    };
    drop(stream);
    let _ = t.join();
    (got, end)
}

#[test]
fn delay_holds_every_byte_at_least_its_duration_and_keeps_order() {
    let server = faulty(&["delay=150ms,jitter=50ms"], &[]);
    let s = connect(server.addr());
    let data = random_bytes(18, 20_000);
    let start = Instant::now();
    let mut w = &s;
    for chunk in data.chunks(997) {
        w.write_all(chunk).unwrap();
    }
    let got = read_n(&s, data.len());
    assert!(
        start.elapsed() >= Duration::from_millis(100),
        "{:?}",
        start.elapsed()
    );
    assert_bytes_eq(&got, &data, "delayed echo (jitter must not reorder)");
    // Every message, not only the first: a second round trip is as late.
    let again = Instant::now();
    util::echo_once(&s, b"ping");
    assert!(again.elapsed() >= Duration::from_millis(100));
}

#[test]
fn rate_limits_the_echo_per_connection() {
    let server = faulty(&["rate=100KiB"], &[]);
    let data = random_bytes(19, 100 * 1024);
    let start = Instant::now();
    let (got, end) = send_and_read(server.addr(), &data);
    let took = start.elapsed();
    assert_eq!(end, None);
    assert_bytes_eq(&got, &data, "rate-limited echo");
    // 100 KiB at 100 KiB/s: the last slice leaves after 0.98 s.
    assert!(took >= Duration::from_millis(900), "{took:?}");
}

#[test]
fn corrupt_flips_exactly_one_byte_at_its_offset() {
    let server = faulty(&["corrupt,after=5000"], &[]);
    let data = random_bytes(20, 12_000);
    let (got, _) = send_and_read(server.addr(), &data);
    assert_eq!(got.len(), data.len());
    let differ: Vec<usize> = (0..data.len()).filter(|&i| got[i] != data[i]).collect();
    assert_eq!(differ, [5000]);
}

#[test]
fn close_ends_the_echo_with_fin_at_its_offset() {
    let server = faulty(&["close,after=10000"], &[]);
    let data = random_bytes(21, 30_000);
    let s = connect(server.addr());
    (&s).write_all(&data).unwrap();
    let (got, clean) = read_to_eof(&s, data.len());
    assert!(clean, "FIN, not an error");
    assert_bytes_eq(&got, &data[..10_000], "echo before the close");
}

#[test]
fn reset_aborts_the_connection_after_its_offset() {
    let server = faulty(&["reset,after=64KiB"], &[]);
    let data = random_bytes(22, 200_000);
    let (got, end) = send_and_read(server.addr(), &data);
    assert_eq!(end, Some(ErrorKind::ConnectionReset), "{} bytes", got.len());
    assert_bytes_eq(&got, &data[..64 * 1024], "echo before the reset");
}

#[test]
fn stall_stops_the_echo_and_reading_stops_at_max_pending() {
    let server = faulty(
        &["stall,after=3000"],
        &["--max-pending", "64KiB", "--metrics", "127.0.0.1:0"],
    );
    let s = connect(server.addr());
    s.set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let data = random_bytes(23, 32 << 20);
    // TCP flow control holds the client: the write times out long before
    // 32 MiB are taken.
    let mut w = &s;
    let mut written = 0;
    while written < data.len() {
        match w.write(&data[written..]) {
            Ok(n) => written += n,
            Err(e) => {
                assert!(matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut
                ));
                break;
            }
        }
    }
    assert!(written < data.len(), "the client was never held");
    assert_bytes_eq(&read_n(&s, 3000), &data[..3000], "echo before the stall");
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut more = [0u8; 1];
    assert!((&s).read(&mut more).is_err(), "nothing after the stall");
    // The server read on until --max-pending and holds it all.
    assert!(
        wait_until(WAIT, || server.metric("echo_queued_bytes") == 65536.0),
        "queued {}",
        server.metric("echo_queued_bytes")
    );
    assert_eq!(
        server.metric("echo_faults_injected_total{worker=\"0\",kind=\"stall\"}"),
        1.0
    );
}

#[test]
fn slow_read_stops_reading_at_its_offset() {
    let server = faulty(&["slow-read,after=3000"], &["--metrics", "127.0.0.1:0"]);
    let s = connect(server.addr());
    s.set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let data = random_bytes(24, 32 << 20);
    let mut w = &s;
    let mut written = 0;
    while let Ok(n) = w.write(&data[written..]) {
        written += n;
    }
    assert!(written < data.len(), "the client was never held");
    assert_bytes_eq(
        &read_n(&s, 3000),
        &data[..3000],
        "echo before the slow read",
    );
    // Not reading at all: nothing is queued in the server either.
    assert!(wait_until(WAIT, || server
        .metric("echo_bytes_received_total")
        == 3000.0));
    assert_eq!(server.metric("echo_queued_bytes"), 0.0);
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(
        (&s).read(&mut [0u8; 1]).is_err(),
        "nothing after the slow read"
    );
    assert_eq!(server.metric("echo_bytes_received_total"), 3000.0);
}

#[test]
fn a_delayed_connection_is_paused_at_max_pending() {
    let server = faulty(
        &["delay=3s"],
        &["--max-pending", "64KiB", "--metrics", "127.0.0.1:0"],
    );
    let s = connect(server.addr());
    s.set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let data = random_bytes(25, 32 << 20);
    let mut w = &s;
    let mut written = 0;
    while let Ok(n) = w.write(&data[written..]) {
        written += n;
    }
    assert!(written < data.len(), "the client was never held");
    assert!(wait_until(WAIT, || server.metric("echo_queued_bytes") == 65536.0));
    assert_eq!(server.metric("echo_backpressure_paused"), 1.0);
    // Then the held bytes come back, in order, the delay later.
    s.set_read_timeout(Some(WAIT)).unwrap();
    assert_bytes_eq(&read_n(&s, 65536), &data[..65536], "delayed echo");
}

#[test]
fn bad_specs_exit_2_naming_the_spec_and_the_problem() {
    for (spec, says) in [
        ("delay=fast", "invalid duration 'fast' for delay"),
        ("reset,p=1.5", "invalid probability '1.5' for p"),
        (
            "explode",
            "unknown fault kind 'explode' (one of delay, rate, stall",
        ),
        ("delay", "delay needs a duration"),
        ("reset,after=lots", "invalid byte count for after"),
        ("stall,on=127.0.0.1:9", "on=127.0.0.1:9 is not a --listen"),
    ] {
        let (status, _, stderr) = run_cli(&["-l", "127.0.0.1:0", "--fault", spec], WAIT);
        assert_eq!(status.code(), Some(2), "{spec}: {stderr}");
        assert!(stderr.contains(spec), "{spec}: {stderr}");
        assert!(stderr.contains(says), "{spec}: {stderr}");
    }
}

#[test]
fn on_ties_a_fault_to_one_listener_beside_a_clean_one() {
    let server = Server::start(&[
        "-l",
        "127.0.0.1:0",
        "-l",
        "127.0.0.2:0",
        "--fault",
        "close,on=127.0.0.2:0",
    ]);
    let clean = server
        .tcp
        .iter()
        .find(|a| a.ip().to_string() == "127.0.0.1");
    let faulty = server
        .tcp
        .iter()
        .find(|a| a.ip().to_string() == "127.0.0.2");
    let (clean, faulty) = (*clean.unwrap(), *faulty.unwrap());
    for _ in 0..3 {
        util::echo_once(&connect(clean), b"clean");
        let s = connect(faulty);
        (&s).write_all(b"faulty").unwrap();
        assert_eq!(read_to_eof(&s, 100), (Vec::new(), true));
    }
}

#[test]
fn on_names_a_proxy_listener_too() {
    let server = Server::start(&[
        "-l",
        "127.0.0.1:0",
        "--listen-proxy",
        "127.0.0.2:0",
        "--fault",
        "corrupt,on=127.0.0.2:0",
    ]);
    util::echo_once(&connect(server.addr()), b"clean");
    let s = connect(server.proxy[0]);
    (&s).write_all(b"PROXY TCP4 192.0.2.1 192.0.2.2 4000 80\r\nabc")
        .unwrap();
    assert_eq!(read_n(&s, 3), [b'a' ^ 0xff, b'b', b'c']);
}

/// Which of 24 connections, one after another, drew `close,p=0.5`.
fn choices(seed: &str) -> Vec<bool> {
    let server = faulty(&["close,p=0.5"], &["--fault-seed", seed]);
    let line = format!("fault-seed {seed}");
    assert!(server.wait_stdout_line(WAIT, |l| l == line).is_some());
    (0..24)
        .map(|_| {
            let s = connect(server.addr());
            (&s).write_all(b"x").unwrap();
            let (got, _) = read_to_eof(&s, 0);
            got.is_empty()
        })
        .collect()
}

#[test]
fn the_same_seed_draws_the_same_connections() {
    let first = choices("42");
    assert!(first.contains(&true) && first.contains(&false), "{first:?}");
    assert_eq!(choices("42"), first);
    assert_ne!(choices("43"), first);
}

#[test]
fn a_random_seed_is_printed_and_trace_and_stats_show_the_fault() {
    let server = faulty(
        &["corrupt,after=2"],
        &["--trace", "--stats-interval", "0.1"],
    );
    let line = server
        .wait_stdout_line(WAIT, |l| l.starts_with("fault-seed "))
        .unwrap();
    assert!(line["fault-seed ".len()..].parse::<u64>().is_ok(), "{line}");
    let s = connect(server.addr());
    (&s).write_all(b"abcd").unwrap();
    assert_eq!(read_n(&s, 4), [b'a', b'b', b'c' ^ 0xff, b'd']);
    let port = s.local_addr().unwrap().port();
    let traced = server.wait_stderr_line(WAIT, |l| l.contains("fault corrupt applied to"));
    assert!(
        traced.is_some_and(|l| l.contains(&port.to_string())),
        "{}",
        server.stderr()
    );
    let stats = server.wait_stderr_line(WAIT, |l| l.contains("faults_injected=corrupt:1"));
    assert!(stats.is_some(), "{}", server.stderr());
}

/// The last `key=N` on the stats lines of `stderr`.
fn last_stat(stderr: &str, key: &str) -> Option<u64> {
    stderr
        .lines()
        .rev()
        .filter(|l| l.starts_with("stats "))
        .find_map(|l| {
            let field = l.split(' ').find(|f| f.starts_with(key))?;
            field[key.len()..].parse().ok()
        })
}

#[test]
fn delayed_bytes_count_against_the_memory_budget() {
    let server = faulty(
        &["delay=5s"],
        &[
            "--max-memory",
            "512KiB",
            "--max-pending",
            "256KiB",
            "--stats-interval",
            "0.1",
        ],
    );
    let data = random_bytes(26, 256 * 1024);
    let clients: Vec<TcpStream> = (0..4)
        .map(|_| {
            let s = connect(server.addr());
            s.set_write_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            let mut w = &s;
            let mut written = 0;
            while let Ok(n) = w.write(&data[written..]) {
                written += n;
                if written == data.len() {
                    break;
                }
            }
            s
        })
        .collect();
    // Four connections could hold 1 MiB; the budget stops them at 512 KiB.
    assert!(
        wait_until(WAIT, || last_stat(&server.stderr(), "budget_paused=")
            .is_some_and(|n| n >= 1)),
        "{}",
        server.stderr()
    );
    let held = last_stat(&server.stderr(), "held=").unwrap();
    assert!(held <= 512 * 1024, "held {held}");
    assert!(
        held >= 256 * 1024,
        "held {held}: the delayed bytes are counted"
    );
    drop(clients);
}
