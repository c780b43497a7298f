//! Usage errors that name what was wrong and exit 2 (issue 9): the same address twice, an
//! address that does not parse, negative durations, a stats interval below 0.1 s, byte
//! counts with and without suffixes; and the help text's notes on IPv6 and the scanning
//! backends.

mod util;

use std::time::Duration;

use util::{connect, echo_once, run_cli, Server};

const QUICK: Duration = Duration::from_secs(10);

/// Runs the server with `args`, wants exit 2 and a stderr line naming `value`.
#[track_caller]
fn assert_refused(args: &[&str], value: &str) {
    let (status, _out, err) = run_cli(args, QUICK);
    assert_eq!(status.code(), Some(2), "{args:?}: stderr:\n{err}");
    assert!(
        err.lines().any(|l| l.contains(value)),
        "{args:?}: no stderr line names {value:?}:\n{err}"
    );
    assert!(!err.contains("panicked"), "{args:?}: stderr:\n{err}");
}

/// A port nobody listens on now, so a refusal cannot be a bind failure in disguise.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a probe port")
        .port()
}

#[test]
fn issue9_the_same_address_twice_exits_2() {
    let addr = format!("127.0.0.1:{}", free_port());
    assert_refused(&["-l", &addr, "-l", &addr], &addr);
    assert_refused(&["-u", &addr, "-u", &addr], &addr);
    assert_refused(
        &["--unix", "/tmp/twice.sock", "--unix", "/tmp/twice.sock"],
        "/tmp/twice.sock",
    );
}

#[test]
fn issue9_port_zero_twice_and_tcp_plus_udp_are_fine() {
    let server = Server::start(&["-l", "127.0.0.1:0", "-l", "127.0.0.1:0"]);
    assert_eq!(server.tcp.len(), 2);
    assert_ne!(server.tcp[0], server.tcp[1]);
    for addr in &server.tcp {
        echo_once(&connect(addr), b"port 0 twice");
    }
}

#[test]
fn issue9_unparsable_addresses_exit_2() {
    for bad in [
        "garbage",
        "127.0.0.1",
        "127.0.0.1:99999",
        "999.1.1.1:80",
        "::1:80",
    ] {
        assert_refused(&["-l", bad], bad);
        assert_refused(&["-u", bad], bad);
    }
}

#[test]
fn issue9_negative_durations_exit_2() {
    for flag in [
        "--idle-timeout",
        "--shutdown-timeout",
        "--stats-interval",
        "--tcp-keepalive",
    ] {
        assert_refused(&[flag, "-1", "-l", "127.0.0.1:0"], "-1");
        assert_refused(&[&format!("{flag}=-0.5"), "-l", "127.0.0.1:0"], "-0.5");
    }
}

#[test]
fn issue9_stats_interval_below_a_tenth_exits_2() {
    assert_refused(&["--stats-interval", "0.05", "-l", "127.0.0.1:0"], "0.05");
    let server = Server::start(&["--stats-interval", "0.1"]);
    assert!(
        server
            .wait_stderr_line(QUICK, |l| l.contains("stats "))
            .is_some(),
        "no stats line at 0.1 s; stderr:\n{}",
        server.stderr()
    );
}

#[test]
fn issue9_byte_counts_take_suffixes() {
    assert_refused(&["--max-pending", "10MB", "-l", "127.0.0.1:0"], "MB");
    assert_refused(&["--max-memory", "0", "-l", "127.0.0.1:0"], "0");
    let server = Server::start(&["--max-pending", "64KiB", "--max-memory", "16MiB"]);
    echo_once(&connect(server.addr()), b"suffixes");
}

#[test]
fn issue9_help_tells_the_families_and_the_scanning_backends() {
    let (status, out, err) = run_cli(&["--help"], QUICK);
    assert_eq!(status.code(), Some(0), "stderr:\n{err}");
    let flat = out.split_whitespace().collect::<Vec<_>>().join(" ");
    for said in [
        "[::]:PORT is IPv6 only",
        "-l 0.0.0.0:PORT -l [::]:PORT",
        "scan every registered descriptor",
        "SIGHUP is logged and otherwise ignored",
    ] {
        assert!(flat.contains(said), "--help does not say {said:?}:\n{out}");
    }
}
