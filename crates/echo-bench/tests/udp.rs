//! UDP: datagrams checked, losses counted apart from mismatches.

mod util;

use util::{bench, closed_udp_port, json, stderr, udp_duplicating_server, udp_server, EchoServer};

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
fn counters_agree_when_nothing_answers_issue_12() {
    // Issue 12: a closed port reported "connected 2/2" and "0 sockets got
    // no echo" although no socket got anything.
    let addr = closed_udp_port().to_string();
    let out = bench(&[
        "--udp", "-c", "2", "-d", "0.3", "--warmup", "0", "--json", &addr,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let r = json(&out);
    assert_eq!(r["connected"], 0, "{r}");
    assert_eq!(r["unserved"], 2, "{r}");
    assert_eq!(r["messages"], 0, "{r}");
    assert_eq!(r["errors"], 2, "one error per socket, not two: {r}");
    let table = bench(&["--udp", "-c", "2", "-d", "0.3", "--warmup", "0", &addr]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("connected     0/2"), "{text}");
    assert!(text.contains("2 sockets got no echo"), "{text}");
}

#[test]
fn a_real_echo_server_answers_every_socket() {
    let server = EchoServer::start(&["-u", "127.0.0.1:0"], 1);
    let addr = server.udp.unwrap().to_string();
    let out = bench(&[
        "--udp", "-c", "3", "-d", "0.4", "--warmup", "0.1", "--json", &addr,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = json(&out);
    assert_eq!(r["connected"], 3, "{r}");
    assert_eq!(r["unserved"], 0, "{r}");
    assert_eq!(r["transport"], "udp");
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

#[test]
fn duplicated_datagrams_are_counted_apart_and_fail_the_run_issue_22() {
    // Every datagram echoed twice: the first copy completes it, the second
    // is a duplicate, not a late echo.
    for size in ["64", "3"] {
        let addr = udp_duplicating_server().to_string();
        let out = bench(&[
            "--udp", "-c", "2", "-p", "2", "-s", size, "-d", "0.3", "--warmup", "0", "--json",
            &addr,
        ]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let r = json(&out);
        let (messages, dup) = (
            r["messages"].as_u64().unwrap(),
            r["duplicated"].as_u64().unwrap(),
        );
        assert!(messages > 10, "{r}");
        // Each message of the window, and each still in flight when it
        // ended (at most 2 x 2), came back twice.
        assert!((messages..=messages + 4).contains(&dup), "{size} B: {r}");
        assert_eq!(r["late"], 0, "{r}");
        assert_eq!(r["mismatches"], 0, "{r}");
        assert!(
            stderr(&out).contains("echoed more than once"),
            "{}",
            stderr(&out)
        );
        let table = bench(&[
            "--udp", "-c", "1", "-s", size, "-d", "0.2", "--warmup", "0", &addr,
        ]);
        assert_eq!(table.status.code(), Some(1));
        let text = String::from_utf8_lossy(&table.stdout);
        assert!(text.contains("duplicated    "), "{text}");
    }
}
