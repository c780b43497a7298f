//! UDP: datagrams checked, losses counted apart from mismatches.

mod util;

use util::{bench, closed_udp_port, json, stderr, udp_server};

#[test]
fn udp_echo_is_verified() {
    let addr = udp_server(false).to_string();
    let out = bench(&[
        "--udp", "-c", "3", "-s", "200", "-d", "0.4", "--warmup", "0.1", "--json", &addr,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = json(&out);
    assert_eq!(r["transport"], "udp");
    assert_eq!(r["connected"], 3);
    assert_eq!(r["mismatches"], 0);
    assert!(r["lost"].is_u64(), "{r}");
    assert!(r["messages"].as_u64().unwrap() > 10, "{r}");
}

#[test]
fn tiny_datagrams_carry_a_partial_sequence_number() {
    let addr = udp_server(false).to_string();
    let out = bench(&[
        "--udp", "-c", "2", "-s", "3", "-p", "4", "-d", "0.3", "--warmup", "0", "--json", &addr,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json(&out)["mismatches"], 0);
}

#[test]
fn corrupted_datagrams_are_mismatches() {
    let addr = udp_server(true).to_string();
    let out = bench(&[
        "--udp", "-c", "2", "-d", "0.3", "--warmup", "0", "--json", &addr,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let r = json(&out);
    assert!(r["mismatches"].as_u64().unwrap() >= 2, "{r}");
    assert!(
        stderr(&out).contains("echoed bytes differ"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn nobody_listening_is_an_error() {
    let addr = closed_udp_port().to_string();
    let out = bench(&[
        "--udp", "-c", "2", "-d", "0.3", "--warmup", "0", "--json", &addr,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("connection refused"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn udp_open_loop_over_threads() {
    let addr = udp_server(false).to_string();
    let out = bench(&[
        "--udp",
        "-c",
        "4",
        "--threads",
        "2",
        "-r",
        "400",
        "-d",
        "1",
        "--warmup",
        "0.2",
        "--json",
        &addr,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = json(&out);
    assert_eq!(r["connected"], 4);
    let messages = r["messages"].as_u64().unwrap();
    assert!((300..=500).contains(&messages), "{r}");
}
