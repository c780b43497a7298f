//! SIGINT and SIGTERM (issue 9): the first stops the run and reports what
//! was measured, marked interrupted, with exit status 128 + the signal; a
//! second exits at once.

mod util;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};
use util::{finish, json, signal, spawn_bench, stderr, tcp_server, Behaviour};

/// The message size the runs here use (echo-bench's default).
const SIZE: u64 = 64;

/// A TCP server that echoes the first `echo` bytes of each connection
/// (`u64::MAX`: all of them) and discards the rest; also returns how many
/// bytes it has read from each connection, in the order they were accepted.
fn counting_server(echo: u64) -> (String, Arc<Mutex<Vec<u64>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let read = Arc::new(Mutex::new(Vec::new()));
    let counts = Arc::clone(&read);
    thread::spawn(move || {
        for stream in listener.incoming().take(1000) {
            let Ok(mut stream) = stream else { continue };
            let slot = {
                let mut counts = counts.lock().unwrap();
                counts.push(0);
                counts.len() - 1
            };
            let counts = Arc::clone(&counts);
            thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
                let _ = stream.set_nodelay(true);
                let mut buf = vec![0u8; 64 * 1024];
                let mut offset = 0u64;
                while let Ok(n @ 1..) = stream.read(&mut buf) {
                    let keep = echo.saturating_sub(offset).min(n as u64) as usize;
                    if stream.write_all(&buf[..keep]).is_err() {
                        return;
                    }
                    offset += n as u64;
                    counts.lock().unwrap()[slot] = offset;
                }
            });
        }
    });
    (addr, read)
}

/// Waits (at most 30 s) until `done` holds, checking every 10 ms.
#[track_caller]
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < end, "gave up waiting: {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until connections `conns` (in accept order) have each sent more
/// than `bytes`. Past the first message, a closed-loop connection has had
/// its first echo back: it is connected and the run's window has begun.
#[track_caller]
fn wait_past(read: &Mutex<Vec<u64>>, conns: std::ops::Range<usize>, bytes: u64) {
    wait_for(&format!("connections {conns:?} past {bytes} B"), || {
        let read = read.lock().unwrap();
        read.len() >= conns.end && read[conns.clone()].iter().all(|&n| n > bytes)
    });
}

#[test]
fn the_first_signal_reports_what_was_measured() {
    let (addr, read) = counting_server(u64::MAX);
    for (round, (sig, code)) in [("INT", 130), ("TERM", 143)].into_iter().enumerate() {
        let child = spawn_bench(&["-c", "4", "-d", "30", "--warmup", "0.2", "--json", &addr]);
        // All four connected and sending; then about 1.3 s of window.
        wait_past(&read, round * 4..round * 4 + 4, SIZE);
        thread::sleep(Duration::from_millis(1500));
        let sent = Instant::now();
        signal(child.id(), sig);
        let out = finish(child, Duration::from_secs(20));
        assert!(
            sent.elapsed() < Duration::from_secs(5),
            "{sig}: took {:?}",
            sent.elapsed()
        );
        assert_eq!(out.status.code(), Some(code), "{sig}: {}", stderr(&out));
        let r = json(&out);
        assert_eq!(r["interrupted"], true, "{r}");
        assert_eq!(r["errors"], 0, "{r}");
        assert!(r["messages"].as_u64().unwrap() > 0, "{r}");
        // The window ran about 1.3 s of the 30 asked for, and the rate is
        // per that window.
        let secs = r["duration_s"].as_f64().unwrap();
        assert!((0.5..5.0).contains(&secs), "{r}");
        let rate = r["messages"].as_f64().unwrap() / secs;
        assert!(
            (rate - r["msgs_per_sec"].as_f64().unwrap()).abs() <= 1.0 + rate * 1e-3,
            "{r}"
        );
        assert!(stderr(&out).contains("interrupted"), "{}", stderr(&out));
    }
}

#[test]
fn the_table_says_interrupted() {
    let (addr, read) = counting_server(u64::MAX);
    let child = spawn_bench(&["-c", "2", "-d", "30", "--warmup", "0", &addr]);
    wait_past(&read, 0..2, SIZE);
    signal(child.id(), "INT");
    let out = finish(child, Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(130));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("INTERRUPTED"), "{text}");
    assert!(text.contains("connected     2/2"), "{text}");
}

#[test]
fn a_second_signal_exits_at_once() {
    // Echoes the first 10 messages of each connection, then nothing: after
    // the first signal the run waits (up to 3 s) for echoes still owed.
    let (addr, read) = counting_server(10 * SIZE);
    let child = spawn_bench(&["-c", "2", "-d", "30", "--warmup", "0", "--json", &addr]);
    // Both sent an 11th message, whose echo is owed and never comes.
    wait_past(&read, 0..2, 10 * SIZE);
    let first = Instant::now();
    signal(child.id(), "INT");
    // The second signal comes during the drain the first one began.
    thread::sleep(Duration::from_millis(300));
    signal(child.id(), "INT");
    let out = finish(child, Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(
        first.elapsed() < Duration::from_secs(2),
        "waited for the drain: {:?}",
        first.elapsed()
    );
    assert!(out.stdout.is_empty(), "no report after the second signal");
}

#[test]
fn a_signal_while_connecting_stops_at_once() {
    // Accepts and never echoes: connects wait for a first echo for up to
    // --connect-timeout.
    let (addr, peers) = tcp_server(Behaviour::SilentAfter(0));
    let addr = addr.to_string();
    let child = spawn_bench(&["-c", "2", "--connect-timeout", "30", "--json", &addr]);
    // Both accepted: the handlers are in place and the connects wait.
    wait_for("both connections accepted", || {
        peers.lock().unwrap().len() == 2
    });
    let sent = Instant::now();
    signal(child.id(), "TERM");
    let out = finish(child, Duration::from_secs(20));
    assert!(
        sent.elapsed() < Duration::from_secs(3),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(out.status.code(), Some(143), "{}", stderr(&out));
    let r = json(&out);
    assert_eq!(
        (r["interrupted"].clone(), r["messages"].clone()),
        (true.into(), 0.into())
    );
}

#[test]
fn chaos_keeps_the_default_a_signal_ends_it() {
    use std::os::unix::process::ExitStatusExt;
    let (addr, peers) = tcp_server(Behaviour::Echo);
    let addr = addr.to_string();
    let child = spawn_bench(&[
        "chaos",
        "-c",
        "2",
        "-d",
        "30",
        "--max-bytes",
        "10000",
        &addr,
    ]);
    // Sessions running: anything chaos set up at start is in place.
    wait_for("a chaos session", || !peers.lock().unwrap().is_empty());
    let sent = Instant::now();
    signal(child.id(), "TERM");
    let out = finish(child, Duration::from_secs(20));
    assert!(
        sent.elapsed() < Duration::from_secs(3),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(out.status.signal(), Some(15), "{:?}", out.status);
}

#[test]
fn a_sweep_stops_after_the_interrupted_point() {
    let (addr, read) = counting_server(u64::MAX);
    let child = spawn_bench(&[
        "sweep", "-c", "1,2,3", "-s", "64", "-p", "1", "-d", "3", "--warmup", "0", "--json", &addr,
    ]);
    // The first point's one connection, then the second point's two, in
    // its window.
    wait_past(&read, 1..3, SIZE);
    signal(child.id(), "INT");
    let out = finish(child, Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let points = json(&out);
    let points = points.as_array().unwrap();
    assert_eq!(
        points.len(),
        2,
        "the first point and the interrupted one: {points:?}"
    );
    assert_eq!(points[0]["interrupted"], false);
    assert_eq!(points[1]["interrupted"], true);
    assert!(points[1]["duration_s"].as_f64().unwrap() < 3.0);
}
