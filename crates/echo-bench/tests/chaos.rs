//! `echo-bench chaos`: random sessions against a faithful server pass;
//! a server that corrupts or cuts streams short fails the run.

mod util;

use util::{json, stderr, tcp_server, Behaviour};

fn chaos(addr: std::net::SocketAddr, seed: &str) -> std::process::Output {
    util::chaos(&addr.to_string(), seed, &["--json"])
}

#[test]
fn a_faithful_server_survives_chaos() {
    let (addr, _) = tcp_server(Behaviour::Echo);
    // Seed 6 draws all nine kinds among the first 12 sessions, which the
    // first pass starts at once, however slowly the run goes after that
    // (seed 42 first draws vanish, stalled and storm at sessions 14, 15
    // and 25, so whether they ran hung on how many sessions 0.6 s held).
    let out = chaos(addr, "6");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = json(&out);
    assert_eq!(r["seed"], 6);
    assert_eq!(r["failures"], 0, "{r}");
    assert_eq!(r["sessions"], r["completed"], "{r}");
    assert!(r["bytes_verified"].as_u64().unwrap() > 100_000, "{r}");
    // Every kind got its turn.
    let kinds = r["kinds"].as_object().unwrap();
    for kind in [
        "normal",
        "tiny",
        "huge",
        "slow",
        "stalled",
        "half-close",
        "reset",
        "vanish",
        "storm",
    ] {
        assert!(
            kinds[kind]["started"].as_u64().unwrap() > 0,
            "{kind} never ran: {r}"
        );
    }
}

#[test]
fn corruption_under_chaos_is_found() {
    let (addr, _) = tcp_server(Behaviour::Corrupt(5));
    let out = chaos(addr, "7");
    assert_eq!(out.status.code(), Some(1));
    let r = json(&out);
    assert!(r["mismatches"].as_u64().unwrap() > 0, "{r}");
    assert!(stderr(&out).contains("chaos seed 7"), "{}", stderr(&out));
}

#[test]
fn streams_cut_short_are_lost_bytes() {
    let (addr, _) = tcp_server(Behaviour::CloseAfter(300));
    let out = chaos(addr, "9");
    assert_eq!(out.status.code(), Some(1));
    let r = json(&out);
    assert!(r["lost"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["mismatches"], 0, "{r}");
}
