//! Outputs while the run goes on (issue 11): the HdrHistogram interval
//! log, JSON Lines per interval, progress lines; response and service time.

mod util;

use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
use util::{bench, json, json_lines, stderr, EchoServer};

#[test]
fn hdr_log_and_json_stream_cover_every_message() {
    let server = EchoServer::tcp();
    let dir = std::env::temp_dir().join(format!("echo-bench-hlog-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("run.hlog");
    let out = bench(&[
        "-c",
        "3",
        "-d",
        "1.2",
        "--warmup",
        "0.2",
        "--interval",
        "0.5",
        "--json-stream",
        "--hdr-log",
        log.to_str().unwrap(),
        &server.addr(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // JSON Lines: three intervals (0.5 + 0.5 + 0.2 s), then the report.
    let lines = json_lines(&out);
    let (report, intervals) = lines.split_last().unwrap();
    assert_eq!(report["type"], "report");
    assert_eq!(intervals.len(), 3, "{lines:?}");
    let mut counted = 0;
    for (k, i) in intervals.iter().enumerate() {
        assert_eq!(i["type"], "interval");
        assert_eq!(i["index"], k as u64);
        assert!(i["latency_us"]["p99"].as_f64().unwrap() > 0.0, "{i}");
        assert!(i.get("service_time_us").is_none(), "closed loop: {i}");
        counted += i["messages"].as_u64().unwrap();
    }
    let last = intervals.last().unwrap();
    assert!(
        (last["duration_s"].as_f64().unwrap() - 0.2).abs() < 0.01,
        "{last}"
    );
    assert_eq!(counted, report["messages"].as_u64().unwrap(), "{report}");
    // The report's histogram holds every interval's messages.
    let bytes = base64_decode(report["latency_hist"].as_str().unwrap());
    let whole: Histogram<u64> = Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .unwrap();
    assert_eq!(whole.len(), counted);

    // The log: header, then one histogram per interval, same counts.
    let text = std::fs::read(&log).unwrap();
    let mut total = 0;
    let mut histograms = 0;
    let mut base_time = None;
    for entry in IntervalLogIterator::new(&text) {
        match entry.expect("a well-formed interval log") {
            LogEntry::BaseTime(t) => base_time = Some(t),
            LogEntry::Interval(h) => {
                assert!(h.tag().is_none());
                let bytes = base64_decode(h.encoded_histogram());
                let hist: Histogram<u64> = Deserializer::new()
                    .deserialize(&mut bytes.as_slice())
                    .unwrap();
                assert_eq!(
                    hist.len(),
                    intervals[histograms]["messages"].as_u64().unwrap()
                );
                let start = h.start_timestamp().as_secs_f64();
                assert!((start - 0.5 * histograms as f64).abs() < 0.01, "{start}");
                total += hist.len();
                histograms += 1;
            }
            LogEntry::StartTime(_) => {}
        }
    }
    assert!(base_time.is_some(), "BaseTime header");
    assert_eq!(histograms, 3);
    assert_eq!(total, counted);
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains("\"StartTimestamp\",\"Interval_Length\""),
        "{text}"
    );
    // --interval lines on stderr (not a terminal: one line each).
    let err = stderr(&out);
    assert_eq!(
        err.lines().filter(|l| l.contains("msg/s")).count(),
        3,
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

#[test]
fn open_loop_reports_response_and_service_time() {
    let server = EchoServer::tcp();
    let out = bench(&[
        "-c",
        "4",
        "-r",
        "2000",
        "-d",
        "0.8",
        "--warmup",
        "0.2",
        "--json",
        &server.addr(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = json(&out);
    let response = &r["latency_us"];
    let service = &r["service_time_us"];
    // Every message is sent at or after it was due, so each response time
    // is at least its service time, and so is every percentile.
    for p in ["p50", "p90", "p99", "p999", "max"] {
        let (resp, serv) = (response[p].as_f64().unwrap(), service[p].as_f64().unwrap());
        assert!(
            serv > 0.0 && serv <= resp,
            "{p}: service {serv} > response {resp}: {r}"
        );
    }
    let hist = r["service_hist"].as_str().unwrap();
    assert!(hist.starts_with("HISTF"), "{hist}");
    let messages = r["messages"].as_u64().unwrap();
    for (field, text) in [
        ("service_hist", hist),
        ("latency_hist", r["latency_hist"].as_str().unwrap()),
    ] {
        let bytes = base64_decode(text);
        let h: Histogram<u64> = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .unwrap();
        assert_eq!(h.len(), messages, "{field}");
    }

    // The same with intervals on (their histograms are folded into the
    // totals as they close).
    let out = bench(&[
        "-c",
        "4",
        "-r",
        "2000",
        "-d",
        "0.8",
        "--warmup",
        "0.2",
        "--json-stream",
        "--interval",
        "0.3",
        &server.addr(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lines = json_lines(&out);
    let r = lines.last().unwrap();
    let messages = r["messages"].as_u64().unwrap();
    for field in ["service_hist", "latency_hist"] {
        let bytes = base64_decode(r[field].as_str().unwrap());
        let h: Histogram<u64> = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .unwrap();
        assert_eq!(h.len(), messages, "{field}");
    }
    let response = &r["latency_us"];
    let service = &r["service_time_us"];
    for p in ["p50", "p99", "max"] {
        assert!(service[p].as_f64() <= response[p].as_f64(), "{p}: {r}");
    }

    // Closed loop: no service time (it equals the latency).
    let out = bench(&[
        "-c",
        "1",
        "-d",
        "0.2",
        "--warmup",
        "0",
        "--json",
        &server.addr(),
    ]);
    let r = json(&out);
    assert!(r.get("service_time_us").is_none() && r.get("service_hist").is_none());
}

#[test]
fn a_log_that_cannot_be_created_is_named() {
    let server = EchoServer::tcp();
    let out = bench(&[
        "-d",
        "0.2",
        "--hdr-log",
        "/nonexistent-dir/run.hlog",
        &server.addr(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("create /nonexistent-dir/run.hlog"),
        "{}",
        stderr(&out)
    );
}
