//! `--control ADDR` (issue 18 §2): the faults in force read, replaced and cleared over HTTP;
//! a change applies to connections accepted afterwards; a bad request changes nothing and
//! says why; the metrics endpoint's strict limits hold here too.

mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use util::{connect, echo_once, http, run_cli, Server, IO_TIMEOUT};

/// `METHOD /faults` with `body` (and a Content-Length for PUT): status and JSON.
fn call(addr: SocketAddr, method: &str, body: &str) -> (u16, Value) {
    let length = match method {
        "PUT" => format!("Content-Length: {}\r\n", body.len()),
        _ => String::new(),
    };
    let request = format!("{method} /faults HTTP/1.1\r\nHost: x\r\n{length}\r\n{body}");
    let (status, head, text) = http(addr, request.as_bytes());
    assert!(
        head.contains("Content-Type: application/json"),
        "not JSON: {head}"
    );
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text:?}"));
    (status, value)
}

fn start(extra: &[&str]) -> (Server, SocketAddr) {
    let mut args = vec!["-l", "127.0.0.1:0", "--control", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let server = Server::start(&args);
    let control = server.control.expect("a listening control line");
    (server, control)
}

#[test]
fn get_put_delete_round_trip_issue18() {
    let (_server, c) = start(&["--fault-seed", "7", "--fault", "delay=50ms,jitter=10ms"]);
    let (status, state) = call(c, "GET", "");
    assert_eq!(status, 200);
    assert_eq!(state["seed"], 7);
    assert_eq!(state["faults"][0]["kind"], "delay");
    assert_eq!(state["faults"][0]["delay"], "50ms");
    assert_eq!(state["faults"][0]["jitter"], "10ms");

    let list = r#"[{"kind": "delay", "delay": "100ms", "jitter": "10ms", "p": 0.5},
                   {"kind": "reset", "after": "64KiB", "p": 0.1}]"#;
    let (status, put) = call(c, "PUT", list);
    assert_eq!(status, 200, "{put}");
    assert!(put["applies_to"].as_str().unwrap().contains("from now on"));
    let (_, state) = call(c, "GET", "");
    assert_eq!(state["faults"], put["faults"]);
    assert_eq!(state["faults"][0]["p"], 0.5);
    assert_eq!(state["faults"][1]["kind"], "reset");
    assert_eq!(state["faults"][1]["after"], 65536);

    // The object form takes what GET gives, seed included.
    let again = json!({"seed": 7, "faults": [{"kind": "close", "after": 10}]});
    let (status, put) = call(c, "PUT", &again.to_string());
    assert_eq!(status, 200, "{put}");
    assert_eq!(call(c, "GET", "").1["faults"][0]["kind"], "close");

    let (status, head, body) = http(c, b"HEAD /faults HTTP/1.1\r\n\r\n");
    assert_eq!((status, body.as_str()), (200, ""), "{head}");

    let (status, cleared) = call(c, "DELETE", "");
    assert_eq!(status, 200);
    assert_eq!(cleared["faults"], json!([]));
    assert_eq!(call(c, "GET", "").1, json!({"seed": 7, "faults": []}));
}

#[test]
fn a_change_applies_to_connections_accepted_afterwards_issue18() {
    let (server, c) = start(&[]);
    let old = connect(server.tcp[0]);
    echo_once(&old, b"accepted before");
    let (status, _) = call(c, "PUT", r#"[{"kind": "close"}]"#);
    assert_eq!(status, 200);

    let new = connect(server.tcp[0]);
    new.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    (&new).write_all(b"hello").unwrap();
    let mut got = Vec::new();
    (&new)
        .read_to_end(&mut got)
        .expect("the new connection is closed");
    assert_eq!(
        got, b"",
        "a connection accepted after the PUT is closed at once"
    );
    echo_once(&old, b"still echoed");

    assert_eq!(call(c, "DELETE", "").0, 200);
    echo_once(&connect(server.tcp[0]), b"clean again");
}

#[test]
fn a_bad_body_gets_400_with_the_reason_and_changes_nothing_issue18() {
    let (_server, c) = start(&["--fault", "stall,p=0.25"]);
    let before = call(c, "GET", "").1;
    for (body, why) in [
        ("{not json", "not JSON"),
        (
            r#"[{"kind": "delay", "delay": "fast"}]"#,
            "invalid duration 'fast'",
        ),
        (r#"[{"kind": "reset", "p": 1.5}]"#, "p"),
        (r#"[{"kind": "warp"}]"#, "unknown fault kind 'warp'"),
        (r#"[{"kind": "stall", "colour": 1}]"#, "colour"),
        (
            r#"[{"kind": "stall", "on": "127.0.0.1:1"}]"#,
            "on=127.0.0.1:1",
        ),
        (r#"{"faults": 3}"#, "array"),
        ("", "not JSON"),
    ] {
        let (status, answer) = call(c, "PUT", body);
        assert_eq!(status, 400, "{body}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(why), "{body}: {error:?} lacks {why:?}");
    }
    assert_eq!(call(c, "GET", "").1, before);
}

#[test]
fn methods_paths_and_lengths_are_refused_with_reasons_issue18() {
    let (_server, c) = start(&[]);
    let (status, head, body) = http(c, b"POST /faults HTTP/1.1\r\nContent-Length: 2\r\n\r\n[]");
    assert_eq!(status, 405, "{body}");
    assert!(head.contains("\r\nAllow: GET, HEAD, PUT, DELETE"), "{head}");
    assert_eq!(http(c, b"GET /metrics HTTP/1.1\r\n\r\n").0, 404);
    assert_eq!(http(c, b"GET / HTTP/1.1\r\n\r\n").0, 404);
    let (status, _, body) = http(c, b"PUT /faults HTTP/1.1\r\nContent-Length: x1\r\n\r\n[]");
    assert_eq!(status, 400);
    assert!(body.contains("Content-Length"), "{body}");
    let chunked = b"PUT /faults HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n[]\r\n0\r\n\r\n";
    assert_eq!(http(c, chunked).0, 400);
    assert_eq!(http(c, b"garbage\r\n\r\n").0, 400);
    let many: String = (0..40).map(|i| format!("X-{i}: y\r\n")).collect();
    let crowded = format!("GET /faults HTTP/1.1\r\n{many}\r\n");
    assert_eq!(http(c, crowded.as_bytes()).0, 400);
    // The endpoint still answers.
    assert_eq!(call(c, "GET", "").0, 200);
}

#[test]
fn an_oversized_body_gets_413_issue18() {
    let (_server, c) = start(&[]);
    // Announced: answered before the body is sent.
    let (status, _, body) = http(
        c,
        b"PUT /faults HTTP/1.1\r\nContent-Length: 1000000\r\n\r\n",
    );
    assert_eq!(status, 413);
    assert!(body.contains("1000000") && body.contains("65536"), "{body}");
    // Sent whole: the answer still arrives (what follows the head is read and dropped).
    let big = format!("[{}]", vec![r#"{"kind":"close"}"#; 5000].join(","));
    let request = format!(
        "PUT /faults HTTP/1.1\r\nContent-Length: {}\r\n\r\n{big}",
        big.len()
    );
    assert_eq!(http(c, request.as_bytes()).0, 413);
    assert_eq!(call(c, "GET", "").1["faults"], json!([]));
}

#[test]
fn a_request_dripped_too_slowly_gets_400_within_the_deadline_issue18() {
    let (_server, c) = start(&[]);
    let started = Instant::now();
    let mut s = TcpStream::connect(c).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"PUT /faults HTTP/1.1\r\nContent-Length: 10\r\n\r\n[")
        .unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
    assert!(text.contains("request timeout"), "{text}");
    // The deadline is 2 s; a loaded CI machine gets room.
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(8),
        "{took:?}"
    );
}

#[test]
fn metrics_and_control_are_separate_endpoints_issue18() {
    let server = Server::start(&[
        "-l",
        "127.0.0.1:0",
        "--metrics",
        "127.0.0.1:0",
        "--control",
        "127.0.0.1:0",
    ]);
    let (m, c) = (server.metrics.unwrap(), server.control.unwrap());
    assert_ne!(m.port(), c.port());
    assert_eq!(http(m, b"GET /faults HTTP/1.1\r\n\r\n").0, 404);
    assert_eq!(
        http(m, b"PUT /faults HTTP/1.1\r\nContent-Length: 2\r\n\r\n[]").0,
        413
    );
    assert_eq!(http(c, b"GET /metrics HTTP/1.1\r\n\r\n").0, 404);
    assert_eq!(http(m, b"GET /metrics HTTP/1.1\r\n\r\n").0, 200);
    assert_eq!(call(c, "GET", "").0, 200);
}

#[test]
fn a_bad_control_address_exits_2_naming_it_issue18() {
    let (status, _, stderr) = run_cli(&["--control", "nowhere"], IO_TIMEOUT);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--control") && stderr.contains("nowhere"),
        "{stderr}"
    );
}

#[test]
fn a_body_sent_in_pieces_is_read_whole_issue18() {
    let (_server, c) = start(&[]);
    let body = r#"[{"kind": "drop", "p": 0.25}]"#;
    let head = format!(
        "PUT /faults HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut s = TcpStream::connect(c).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    // Pauses only split the request over several reads; nothing waits on them.
    for piece in [&head[..10], &head[10..], &body[..5], &body[5..]] {
        s.write_all(piece.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(30));
    }
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert_eq!(call(c, "GET", "").1["faults"][0]["p"], 0.25);
}
