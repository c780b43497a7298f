//! Every echoed byte is checked: a faithful server passes, and a server
//! that corrupts, closes early or stays silent makes the run fail.

mod util;

use util::{bench, json, stderr, tcp_server, Behaviour};

const SHORT: [&str; 4] = ["-d", "0.4", "--warmup", "0.1"];

fn run(addr: std::net::SocketAddr, extra: &[&str]) -> std::process::Output {
    let addr = addr.to_string();
    let mut args: Vec<&str> = SHORT.to_vec();
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--json", &addr]);
    bench(&args)
}

#[test]
fn faithful_echo_passes_with_every_byte_counted() {
    let (addr, _) = tcp_server(Behaviour::Echo);
    let out = run(addr, &["-c", "4", "-s", "100", "-p", "3"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = json(&out);
    assert_eq!(r["connected"], 4);
    assert_eq!(r["errors"], 0);
    assert_eq!(r["mismatches"], 0);
    let messages = r["messages"].as_u64().unwrap();
    assert!(messages > 10, "{r}");
    assert_eq!(r["bytes"].as_u64().unwrap(), messages * 100);
    // Busy for the whole window: its own CPU time shows (10 ms ticks).
    assert!(r["bench_cpu_us_per_msg"].as_f64().unwrap() > 0.0, "{r}");
    let l = &r["latency_us"];
    let p50 = l["p50"].as_f64().unwrap();
    assert!(p50 > 0.0 && p50 <= l["p99"].as_f64().unwrap());
    assert!(l["p99"].as_f64().unwrap() <= l["max"].as_f64().unwrap());
}

#[test]
fn large_messages_split_across_reads_and_writes() {
    let (addr, _) = tcp_server(Behaviour::Echo);
    let out = run(addr, &["-c", "2", "-s", "200000", "-p", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = json(&out);
    assert!(r["messages"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["mismatches"], 0);
}

#[test]
fn one_corrupted_byte_is_a_mismatch_and_fails_the_run() {
    // Offset 1000 lies in the middle of message 15 of each connection.
    let (addr, _) = tcp_server(Behaviour::Corrupt(1000));
    let out = run(addr, &["-c", "3", "-s", "64"]);
    assert_eq!(out.status.code(), Some(1));
    let r = json(&out);
    assert_eq!(r["mismatches"], 3, "{r}");
    assert!(
        stderr(&out).contains("message 15: echoed bytes"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_server_closing_early_is_an_error() {
    let (addr, _) = tcp_server(Behaviour::CloseAfter(640));
    let out = run(addr, &["-c", "2", "-s", "64"]);
    assert_eq!(out.status.code(), Some(1));
    let r = json(&out);
    assert_eq!(r["errors"], 2, "{r}");
    assert_eq!(r["mismatches"], 0);
    // Closing with unread input makes the kernel send RST instead of FIN, so
    // the client may see either, depending on timing.
    let err = stderr(&out);
    assert!(
        err.contains("closed by the server") || err.contains("connection reset by peer"),
        "{err}"
    );
}

#[test]
fn a_short_echo_is_an_error() {
    // The server echoes 100 bytes of the first 128 and closes: messages 0
    // is whole, message 1 is cut short.
    let (addr, _) = tcp_server(Behaviour::CloseAfter(100));
    let out = run(addr, &["-c", "1", "-s", "64", "-p", "2"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["errors"], 1);
}

#[test]
fn connections_never_served_are_errors() {
    // Message 0 (sent while connecting) comes back, then nothing.
    let (addr, _) = tcp_server(Behaviour::SilentAfter(64));
    let out = run(addr, &["-c", "3"]);
    assert_eq!(out.status.code(), Some(1));
    let r = json(&out);
    assert_eq!(r["connected"], 3);
    assert_eq!(r["messages"], 0);
    assert_eq!(r["errors"], 3, "{r}");
    assert!(stderr(&out).contains("still missing"), "{}", stderr(&out));
}

#[test]
fn a_server_that_accepts_but_never_echoes_is_a_connect_error() {
    let (addr, _) = tcp_server(Behaviour::SilentAfter(0));
    let addr = addr.to_string();
    let out = util::bench(&["-c", "2", "-d", "0.2", "--connect-timeout", "0.5", &addr]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "connect {addr}: no echo within 0.5 s of connecting"
        )),
        "{err}"
    );
}

#[test]
fn echoing_more_than_was_sent_is_a_mismatch() {
    let (addr, _) = tcp_server(Behaviour::Twice);
    let out = run(addr, &["-c", "2"]);
    assert_eq!(out.status.code(), Some(1));
    // Caught on the first echo, while connecting: nothing is left to
    // measure. How many bytes too many depends on how the server's reads
    // split what was sent.
    assert!(
        stderr(&out).contains(" more bytes echoed than sent"),
        "{}",
        stderr(&out)
    );
}
