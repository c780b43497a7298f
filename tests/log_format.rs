//! `--log-format json`: one JSON object per stderr line, with timestamp,
//! level, target, message and fields; `--trace` narrates in both formats.

mod util;

use serde_json::Value;
use std::time::Duration;
use util::{connect, echo_once, run_cli, Server};

const WAIT: Duration = Duration::from_secs(5);

#[test]
fn json_lines_carry_timestamp_level_target_message_and_fields() {
    let server = Server::start(&["--log-format", "json", "--trace", "--stats-interval", "0.1"]);
    let stream = connect(server.addr());
    let peer = stream.local_addr().unwrap().to_string();
    echo_once(&stream, b"json");
    let line = server
        .wait_stderr_line(WAIT, |l| l.contains("new connection from"))
        .unwrap_or_else(|| panic!("no trace line; stderr:\n{}", server.stderr()));
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
    assert!(v["timestamp"].is_string(), "{line}");
    assert_eq!(v["level"], "INFO", "{line}");
    assert_eq!(v["target"], "trace", "{line}");
    assert_eq!(v["peer"], peer.as_str(), "{line}");
    assert_eq!(v["span"]["worker"], 0, "{line}");
    assert!(v["message"].as_str().unwrap().contains(&peer), "{line}");
    let received = server
        .wait_stderr_line(WAIT, |l| l.contains("received 4 bytes from"))
        .expect("received narration");
    let v: Value = serde_json::from_str(&received).unwrap();
    assert_eq!(
        (v["peer"].as_str(), v["bytes"].as_u64()),
        (Some(peer.as_str()), Some(4))
    );
    let stats = server
        .wait_stderr_line(WAIT, |l| l.contains("\"target\":\"stats\""))
        .expect("the stats line as JSON");
    let v: Value = serde_json::from_str(&stats).unwrap();
    assert!(
        v["message"].as_str().unwrap().starts_with("stats open="),
        "{stats}"
    );
    // Every line is JSON, none is left in the text format.
    for l in server.stderr().lines() {
        serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}"));
    }
}

#[test]
fn text_is_the_default_and_unknown_formats_are_usage_errors() {
    let server = Server::start(&["--trace"]);
    echo_once(&connect(server.addr()), b"x");
    let line = server
        .wait_stderr_line(WAIT, |l| l.contains("new connection from"))
        .expect("text trace line");
    assert!(!line.starts_with('{'), "{line}");
    let (status, _, _) = run_cli(&["--log-format", "xml"], WAIT);
    assert_eq!(status.code(), Some(2));
}
