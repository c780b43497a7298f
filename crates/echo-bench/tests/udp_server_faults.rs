//! echo-bench against a real echo-server's UDP faults (issue 18 sections 1 and 3): drop,
//! duplicate and reorder are each reported as lost, duplicated and reordered datagrams, and
//! `--expect-fault` accepts them.

mod util;

use serde_json::Value;
use util::{bench, json, stderr, EchoServer};

/// Four datagrams in flight on one socket for 0.3 s against a server injecting `fault`,
/// expecting `expect`: the report (the run must pass).
fn against(fault: &str, expect: &str) -> Value {
    let server = EchoServer::start(&["-u", "127.0.0.1:0", "--fault", fault], 1);
    let addr = server.udp.expect("a UDP socket").to_string();
    let out = bench(&[
        "--udp",
        "-c",
        "1",
        "-p",
        "4",
        "-d",
        "0.3",
        "--warmup",
        "0",
        "--udp-timeout-ms",
        "300",
        "--json",
        "--expect-fault",
        expect,
        &addr,
    ]);
    assert_eq!(out.status.code(), Some(0), "{fault}: {}", stderr(&out));
    json(&out)
}

fn seen(r: &Value, kind: &str) -> u64 {
    r["faults"]["seen"][kind].as_u64().unwrap_or(0)
}

#[test]
fn the_servers_udp_drops_are_reported_lost_issue18() {
    let r = against("drop,p=0.2", "lost");
    assert!(seen(&r, "lost") > 0, "{r}");
    assert_eq!(seen(&r, "duplicated"), 0, "{r}");
}

#[test]
fn the_servers_udp_duplicates_are_reported_duplicated_issue18() {
    let r = against("duplicate,p=0.5", "duplicated");
    assert!(seen(&r, "duplicated") > 0, "{r}");
    assert_eq!(seen(&r, "lost"), 0, "{r}");
}

#[test]
fn the_servers_udp_reordering_is_reported_reordered_issue18() {
    let r = against("reorder", "reordered");
    assert!(seen(&r, "reordered") > 0, "{r}");
    assert_eq!(seen(&r, "lost") + seen(&r, "duplicated"), 0, "{r}");
}
