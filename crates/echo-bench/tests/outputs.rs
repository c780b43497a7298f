//! Outputs while the run goes on (issue 11): the HdrHistogram interval
//! log, JSON Lines per interval, progress lines; response and service time.

mod util;

use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use util::{bench, histogram, json, json_lines, short, stderr, EchoServer};

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
    let whole = histogram(report["latency_hist"].as_str().unwrap());
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
                let hist = histogram(h.encoded_histogram());
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

#[test]
fn open_loop_reports_response_and_service_time() {
    let server = EchoServer::tcp();
    let addr = server.addr();
    // 4 connections at 2,000 msg/s for 0.8 s, after 0.2 s of warm-up.
    let open_loop = |outputs: &[&str]| {
        let mut args = vec!["-c", "4", "-r", "2000", "-d", "0.8", "--warmup", "0.2"];
        args.extend_from_slice(outputs);
        args.push(&addr);
        let out = bench(&args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        out
    };
    let r = json(&open_loop(&["--json"]));
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
        let h = histogram(text);
        assert_eq!(h.len(), messages, "{field}");
    }

    // The same with intervals on (their histograms are folded into the
    // totals as they close).
    let lines = json_lines(&open_loop(&["--json-stream", "--interval", "0.3"]));
    let r = lines.last().unwrap();
    let messages = r["messages"].as_u64().unwrap();
    for field in ["service_hist", "latency_hist"] {
        let h = histogram(r[field].as_str().unwrap());
        assert_eq!(h.len(), messages, "{field}");
    }
    let response = &r["latency_us"];
    let service = &r["service_time_us"];
    for p in ["p50", "p99", "max"] {
        assert!(service[p].as_f64() <= response[p].as_f64(), "{p}: {r}");
    }

    // Closed loop: no service time (it equals the latency).
    let out = short(&["-c", "1", "--json", &server.addr()]);
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

/// No whole number of four digits or more outside the first line and the
/// latency lines (microseconds, not counts): every count of a thousand or
/// more is written with separators.
fn separated(table: &str) -> bool {
    let counts = table.lines().skip(1).filter(|l| !l.contains("(us)"));
    counts.into_iter().all(|line| {
        line.split(|c: char| !c.is_ascii_digit() && c != '.')
            .filter(|w| !w.contains('.'))
            .all(|digits| digits.len() <= 3)
    })
}

#[test]
fn tables_say_how_many_in_words() {
    let server = EchoServer::tcp();
    let out = short(&["-c", "1", &server.addr()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.lines().next().unwrap().ends_with(", 1 thread"),
        "{text}"
    );
    assert!(separated(&text), "{text}");

    // Two reports merged: the header counts reports, not threads.
    let dir = std::env::temp_dir().join(format!("echo-bench-words-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut files = Vec::new();
    for k in 0..2 {
        let out = short(&["-c", "2", "--threads", "2", "--json", &server.addr()]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let file = dir.join(format!("r{k}.json"));
        std::fs::write(&file, &out.stdout).unwrap();
        files.push(file.to_str().unwrap().to_owned());
    }
    let out = bench(&["merge", &files[0], &files[1]]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let first = text.lines().next().unwrap();
    assert!(first.contains(": 4 connections x 64 B"), "{text}");
    assert!(first.ends_with(", 2 reports (4 threads)"), "{text}");
    assert!(!text.contains("(s)") && separated(&text), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn chaos_table_separates_thousands_and_reads_fds_once_settled() {
    let server = EchoServer::tcp();
    let pid = server.pid().to_string();
    let out = util::chaos(&server.addr(), "6", &["--server-pid", &pid]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(separated(&text), "{text}");
    let bytes = text.lines().find(|l| l.contains("echoed and verified"));
    assert!(bytes.is_some_and(|l| l.contains(',')), "{text}");
    // The server is back to the descriptors it had before the sessions
    // (pipes of the zero-copy path included, once closed).
    let fds = text.lines().find(|l| l.contains("open fds")).unwrap();
    let figures: Vec<u64> = fds
        .split(|c: char| !c.is_ascii_digit() && c != ',')
        .filter(|w| w.chars().any(|c| c.is_ascii_digit()))
        .map(|w| w.replace(',', "").parse().unwrap())
        .collect();
    assert!(
        figures.len() == 2 && figures[1] <= figures[0],
        "{fds}: {text}"
    );
    assert!(fds.ends_with("after the sessions closed"), "{text}");
}

#[test]
fn man_page_and_completions_come_from_the_parser() {
    let out = bench(&["--generate-man"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let man = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(man.contains(".TH echo-bench 1"), "{man}");
    for flag in [
        "fail\\-if",
        "start\\-at",
        "generate\\-completions",
        "chaos",
        "merge",
    ] {
        assert!(man.contains(flag), "man page lacks {flag}");
    }
    // ENVIRONMENT names every variable the source declares (`*_ENV`).
    let environment = man
        .split(".SH ENVIRONMENT\n")
        .nth(1)
        .and_then(|rest| rest.split("\n.SH ").next())
        .unwrap_or_else(|| panic!("no ENVIRONMENT section:\n{man}"));
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/src/shard.rs");
    let declared: Vec<String> = std::fs::read_to_string(src)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("pub const ") && l.contains("_ENV: &str = \""))
        .map(|l| l.split('"').nth(1).unwrap().to_string())
        .collect();
    assert_eq!(declared.len(), 2, "{declared:?}");
    for name in declared {
        let roff = format!("\\fB{name}\\fR");
        assert!(environment.contains(&roff), "lacks {name}:\n{environment}");
    }

    let out = bench(&["--generate-completions", "bash"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let script = String::from_utf8_lossy(&out.stdout).into_owned();
    let backend = script.split("--backend)").nth(1).unwrap_or("");
    let offered = backend.lines().nth(1).unwrap_or("");
    assert!(
        offered.contains("\"auto ") && offered.contains(" poll select\""),
        "{offered}"
    );
    // File names for paths only, not for numbers.
    for (flag, files) in [
        ("--hdr-log", true),
        ("--connections", false),
        ("--rate", false),
    ] {
        let case = script
            .split(&format!("{flag})"))
            .nth(1)
            .and_then(|r| r.lines().nth(1));
        let case = case.unwrap_or_else(|| panic!("no {flag} case in:\n{script}"));
        assert_eq!(case.contains("compgen -f"), files, "{flag}: {case}");
    }

    // Alone only.
    let out = bench(&["--generate-man", "127.0.0.1:7"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}
