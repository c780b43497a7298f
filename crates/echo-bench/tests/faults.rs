//! echo-bench reports what each misbehaving peer did, exactly (issue 18
//! section 3): kind, connection and stream offset; `--expect-fault` turns
//! the expected ones from failures into requirements.

mod util;

use serde_json::Value;
use util::{
    bench, json, stderr, tcp_server, udp_duplicating_server, udp_faulty_server, Behaviour,
    EchoServer,
};

/// The fault events of kind `kind` in report `r`.
fn events<'a>(r: &'a Value, kind: &str) -> Vec<&'a Value> {
    r["faults"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .collect()
}

fn seen(r: &Value, kind: &str) -> u64 {
    r["faults"]["seen"][kind].as_u64().unwrap()
}

/// One connection of 1 KiB messages for 0.3 s against `addr`, with `extra`.
fn one_connection(addr: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "-c", "1", "-s", "1024", "-d", "0.3", "--warmup", "0", "--json",
    ];
    args.extend_from_slice(extra);
    args.push(addr);
    bench(&args)
}

/// [`one_connection`] against a scripted server behaving as `b`.
fn run(b: Behaviour, extra: &[&str]) -> std::process::Output {
    let (addr, _) = tcp_server(b);
    one_connection(&addr.to_string(), extra)
}

#[test]
fn corruption_is_reported_at_its_exact_offset() {
    let out = run(Behaviour::Corrupt(5000), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let r = json(&out);
    let e = events(&r, "corrupted");
    assert_eq!(e.len(), 1, "{r}");
    assert_eq!(
        (e[0]["connection"].as_u64(), e[0]["offset"].as_u64()),
        (Some(0), Some(5000))
    );
    assert_eq!(r["mismatches"], 1);
    // Expected: exit 0, the same report.
    let out = run(Behaviour::Corrupt(5000), &["--expect-fault", "corrupted"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(events(&json(&out), "corrupted")[0]["offset"], 5000);
}

#[test]
fn an_early_close_is_reported_where_the_echo_stopped() {
    let out = run(Behaviour::CloseAfter(10_000), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let r = json(&out);
    let e = events(&r, "closed");
    assert_eq!(e.len(), 1, "{r}");
    assert_eq!(e[0]["offset"], 10_000, "{r}");
    let out = run(Behaviour::CloseAfter(10_000), &["--expect-fault", "closed"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn a_reset_after_64_kib_is_reported_within_one_read_of_it() {
    const AFTER: u64 = 64 * 1024;
    let out = run(Behaviour::ResetAfter(AFTER), &["--expect-fault", "reset"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = json(&out);
    let e = events(&r, "reset");
    assert_eq!(e.len(), 1, "{r}");
    let at = e[0]["offset"].as_u64().unwrap();
    // echo-bench reads at most 64 KiB at a time.
    assert!(
        (AFTER..=AFTER + 64 * 1024).contains(&at),
        "reset at {at}: {r}"
    );
    assert_eq!(seen(&r, "closed"), 0, "a reset is not a close: {r}");
}

#[test]
fn a_stall_is_reported_where_the_echo_stopped_moving() {
    let out = run(Behaviour::SilentAfter(3000), &["--stall-after", "0.3"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let r = json(&out);
    let e = events(&r, "stalled");
    assert_eq!(e.len(), 1, "{r}");
    assert_eq!(e[0]["offset"], 3000, "{r}");
    // Expected, the short read it ends in is accounted for.
    let out = run(
        Behaviour::SilentAfter(3000),
        &["--stall-after", "0.3", "--expect-fault", "stalled"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn a_delay_is_reported_with_its_measured_size() {
    let out = run(Behaviour::DelayMs(40), &["--delay-threshold", "20"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "a delay fails nothing: {}",
        stderr(&out)
    );
    let r = json(&out);
    let e = events(&r, "delayed");
    assert_eq!(e.len(), 1, "{r}");
    assert_eq!(e[0]["offset"], 0, "{r}");
    let delay = e[0]["delay_us"].as_f64().unwrap();
    // At least what was injected; the top is far off, since a loaded CI
    // machine can hold the first message back well past the delay.
    assert!((40_000.0..10_000_000.0).contains(&delay), "{delay} us: {r}");
    // A clean server shows no delay at the same threshold.
    let out = run(Behaviour::Echo, &["--delay-threshold", "20"]);
    assert_eq!(seen(&json(&out), "delayed"), 0);
}

#[test]
fn expected_faults_must_be_seen_and_others_still_fail() {
    let out = run(Behaviour::Echo, &["--expect-fault", "reset"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("expected fault reset never seen"),
        "{}",
        stderr(&out)
    );
    let out = run(
        Behaviour::Corrupt(5000),
        &["--expect-fault", "reset,closed"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("beyond the expected faults"),
        "{}",
        stderr(&out)
    );
    let out = bench(&["--expect-fault", "flaky", "127.0.0.1:7"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown fault \"flaky\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn udp_losses_duplicates_and_reordering_are_counted() {
    let udp = |addr: String, extra: &[&str]| {
        let mut args = vec!["--udp", "-c", "1", "-p", "4", "-d", "0.3", "--warmup", "0"];
        args.extend_from_slice(&["--udp-timeout-ms", "100", "--json"]);
        args.extend_from_slice(extra);
        args.push(&addr);
        bench(&args)
    };
    let out = udp(
        udp_faulty_server(5, false).to_string(),
        &["--expect-fault", "lost"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = json(&out);
    assert!(
        seen(&r, "lost") > 0 && seen(&r, "lost") == r["lost"].as_u64().unwrap(),
        "{r}"
    );
    let out = udp(
        udp_faulty_server(0, true).to_string(),
        &["--expect-fault", "reordered"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(seen(&json(&out), "reordered") > 0);
    let out = udp(
        udp_duplicating_server().to_string(),
        &["--expect-fault", "duplicated"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "expected duplicates: {}",
        stderr(&out)
    );
    let r = json(&out);
    assert_eq!(seen(&r, "duplicated"), r["duplicated"].as_u64().unwrap());
}

/// echo-bench against a real echo-server injecting `fault`: one connection
/// of 1 KiB messages for 0.3 s, with `extra`; its exit status and report.
fn against_server(fault: &str, extra: &[&str]) -> (Option<i32>, Value, String) {
    let server = EchoServer::start(&["-l", "127.0.0.1:0", "--fault", fault], 1);
    let out = one_connection(&server.addr(), extra);
    (out.status.code(), json(&out), stderr(&out))
}

/// [`against_server`] with the fault expected: the run passes and reports
/// exactly one event of `kind`; the report and that event.
fn reported_once(fault: &str, extra: &[&str], kind: &str) -> (Value, Value) {
    let (code, r, err) = against_server(fault, extra);
    assert_eq!(code, Some(0), "{err}");
    let e = events(&r, kind);
    assert_eq!(e.len(), 1, "{r}");
    let event = e[0].clone();
    (r, event)
}

#[test]
fn echo_bench_reports_the_servers_corruption_at_its_offset() {
    let (r, e) = reported_once(
        "corrupt,after=5000",
        &["--expect-fault", "corrupted"],
        "corrupted",
    );
    assert_eq!(e["offset"], 5000, "{r}");
    // Not expected: the run fails.
    let (code, _, err) = against_server("corrupt,after=5000", &[]);
    assert_eq!(code, Some(1), "{err}");
}

#[test]
fn echo_bench_reports_the_servers_close_at_its_offset() {
    let (r, e) = reported_once("close,after=10000", &["--expect-fault", "closed"], "closed");
    assert_eq!(e["offset"], 10_000, "{r}");
    assert_eq!(seen(&r, "reset"), 0, "{r}");
}

#[test]
fn echo_bench_reports_the_servers_reset_within_one_read() {
    const AFTER: u64 = 64 * 1024;
    let (r, e) = reported_once("reset,after=64KiB", &["--expect-fault", "reset"], "reset");
    let at = e["offset"].as_u64().unwrap();
    assert!(
        (AFTER..=AFTER + 64 * 1024).contains(&at),
        "reset at {at}: {r}"
    );
    assert_eq!(seen(&r, "closed"), 0, "{r}");
}

#[test]
fn echo_bench_reports_the_servers_stall_at_its_offset() {
    let (r, e) = reported_once(
        "stall,after=3000",
        &["--stall-after", "0.3", "--expect-fault", "stalled"],
        "stalled",
    );
    assert_eq!(e["offset"], 3000, "{r}");
}

#[test]
fn echo_bench_measures_the_servers_delay() {
    let (r, e) = reported_once(
        "delay=40ms",
        &["--delay-threshold", "20", "--expect-fault", "delayed"],
        "delayed",
    );
    assert_eq!(e["offset"], 0, "{r}");
    let delay = e["delay_us"].as_f64().unwrap();
    // At least what was injected; the top is far off, since a loaded CI
    // machine can hold the first message back well past the delay.
    assert!((40_000.0..10_000_000.0).contains(&delay), "{delay} us: {r}");
}

#[test]
fn echo_bench_reports_the_servers_slow_read_as_a_stall_at_its_offset() {
    let (r, e) = reported_once(
        "slow-read,after=3000",
        &["--stall-after", "0.3", "--expect-fault", "stalled"],
        "stalled",
    );
    assert_eq!(e["offset"], 3000, "{r}");
}

#[test]
fn echo_bench_sees_a_slow_rate_as_a_delay() {
    // 1 KiB messages at 20 KiB/s: each comes back about 50 ms late.
    let (code, r, err) = against_server(
        "rate=20KiB",
        &["--delay-threshold", "20", "--expect-fault", "delayed"],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(events(&r, "delayed").len(), 1, "{r}");
    assert_eq!(seen(&r, "stalled"), 0, "{r}");
}
