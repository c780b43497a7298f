//! SIGINT and SIGTERM (issue 9): the first stops the run and reports what
//! was measured, marked interrupted, with exit status 128 + the signal; a
//! second exits at once.

mod util;

use std::time::{Duration, Instant};
use util::{finish, json, signal, spawn_bench, stderr, tcp_server, Behaviour, EchoServer};

#[test]
fn the_first_signal_reports_what_was_measured() {
    let server = EchoServer::tcp();
    for (sig, code) in [("INT", 130), ("TERM", 143)] {
        let child = spawn_bench(&[
            "-c",
            "4",
            "-d",
            "30",
            "--warmup",
            "0.2",
            "--json",
            &server.addr(),
        ]);
        std::thread::sleep(Duration::from_millis(1500));
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
    let server = EchoServer::tcp();
    let child = spawn_bench(&["-c", "2", "-d", "30", "--warmup", "0", &server.addr()]);
    std::thread::sleep(Duration::from_millis(800));
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
    let (addr, _) = tcp_server(Behaviour::SilentAfter(640));
    let addr = addr.to_string();
    let child = spawn_bench(&["-c", "2", "-d", "30", "--warmup", "0", "--json", &addr]);
    std::thread::sleep(Duration::from_millis(800));
    let first = Instant::now();
    signal(child.id(), "INT");
    std::thread::sleep(Duration::from_millis(300));
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
    let (addr, _) = tcp_server(Behaviour::SilentAfter(0));
    let addr = addr.to_string();
    let child = spawn_bench(&["-c", "2", "--connect-timeout", "30", "--json", &addr]);
    std::thread::sleep(Duration::from_millis(500));
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
    let (addr, _) = tcp_server(Behaviour::Echo);
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
    std::thread::sleep(Duration::from_millis(500));
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
    let server = EchoServer::tcp();
    let child = spawn_bench(&[
        "sweep",
        "-c",
        "1,2,3",
        "-s",
        "64",
        "-p",
        "1",
        "-d",
        "3",
        "--warmup",
        "0",
        "--json",
        &server.addr(),
    ]);
    std::thread::sleep(Duration::from_millis(4000));
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
