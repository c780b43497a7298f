//! Pass/fail for CI, the rate search, and merging reports (issue 11).

mod util;

use std::process::Output;
use util::{bench, json, short, stderr, tcp_server, Behaviour, EchoServer, SHORT};

/// `echo-bench search --slo SLO` with `flags` and two connections, each
/// round a short run, against `addr`.
fn search(slo: &str, flags: &[&str], addr: &str) -> Output {
    let mut args = vec!["search", "--slo", slo, "-c", "2"];
    args.extend_from_slice(flags);
    args.push(addr);
    short(&args)
}

#[test]
fn fail_if_prints_every_condition_that_held_and_exits_3() {
    let server = EchoServer::tcp();
    let addr = server.addr();
    let run = |conds: &[&str]| {
        let mut args = vec!["-c", "2", "--json"];
        args.extend_from_slice(&SHORT);
        for c in conds {
            args.extend_from_slice(&["--fail-if", c]);
        }
        args.push(&addr);
        bench(&args)
    };
    let out = run(&["p50>0ns", "errors>0", "connected<1000", "rate<1k"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("fail-if p50>0ns: p50 is"), "{err}");
    assert!(
        err.contains("fail-if connected<1000: connected is 2"),
        "{err}"
    );
    assert!(!err.contains("errors>0"), "did not hold: {err}");
    json(&out); // the report still comes out

    let out = run(&["p99>10s", "errors>0", "mismatches>=1"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stderr(&out).contains("fail-if"));
}

#[test]
fn a_typo_in_a_condition_is_a_usage_error_naming_it() {
    for (expr, says) in [
        ("p98>2ms", "unknown metric \"p98\""),
        ("p99>2mz", "bad value \"2mz\""),
        ("p99 2ms", "no comparison"),
    ] {
        let out = bench(&["--fail-if", expr, "-d", "0.2", "127.0.0.1:7"]);
        assert_eq!(out.status.code(), Some(2), "{expr}");
        assert!(stderr(&out).contains(says), "{expr}: {}", stderr(&out));
    }
}

#[test]
fn a_mismatch_beats_a_condition() {
    let (addr, _) = tcp_server(Behaviour::Corrupt(100));
    let out = short(&["-c", "1", "--fail-if", "p50>0ns", &addr.to_string()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

#[test]
fn search_finds_the_highest_rate_that_meets_the_slo() {
    let server = EchoServer::tcp();
    let addr = server.addr();
    let bracket = ["--min-rate", "100", "--max-rate", "400"];
    // Loopback meets a 1 s p99 at 400 msg/s: round 2 (the top) meets it.
    let out = search("p99<1s", &[&bracket[..], &["--json"]].concat(), &addr);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = json(&out);
    assert_eq!(r["best_rate"], 400.0, "{r}");
    let rounds = r["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 2);
    assert_eq!(rounds[0]["rate"], 100.0);
    assert!(rounds
        .iter()
        .all(|x| x["met"] == true && x["report"]["messages"].as_u64() > Some(0)));

    // Nothing meets a p50 under a nanosecond: exit 3 after the round at
    // --min-rate and its one retry.
    let out = search("p50<1ns", &bracket, &addr);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("no rate tried met the SLO"), "{text}");
    assert_eq!(text.matches(" missed (").count(), 2, "{text}");
    assert_eq!(text.matches("[retry]").count(), 1, "{text}");
    assert!(stderr(&out).contains("not even --min-rate 100 met the SLO"));
}

#[test]
fn search_bisects_between_a_met_and_a_missed_rate() {
    // Fails every round above 300 msg/s by construction: rate<300 is the
    // SLO. Bisection over [100, 1000] must close in on 300 from below.
    let server = EchoServer::tcp();
    let out = search(
        "rate<300",
        &[
            "--rounds",
            "6",
            "--min-rate",
            "100",
            "--max-rate",
            "1000",
            "--json",
        ],
        &server.addr(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = json(&out);
    let rates: Vec<f64> = r["rounds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["rate"].as_f64().unwrap())
        .collect();
    assert_eq!(rates.len(), 6, "{rates:?}");
    assert_eq!(&rates[..4], [100.0, 1000.0, 550.0, 325.0]);
    // 325 msg/s asked may come out just under 300 on a busy machine, so
    // the bracket closes in on 300 from either side of 325.
    let best = r["best_rate"].as_f64().unwrap();
    assert!((200.0..=340.0).contains(&best), "{best} from {rates:?}");
}

#[test]
fn merge_sums_counts_and_merges_histograms() {
    let server = EchoServer::tcp();
    let dir = std::env::temp_dir().join(format!("echo-bench-merge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut files = Vec::new();
    let mut reports = Vec::new();
    for (k, c) in ["2", "3"].iter().enumerate() {
        let out = short(&["-c", c, "--json", &server.addr()]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let file = dir.join(format!("r{k}.json"));
        std::fs::write(&file, &out.stdout).unwrap();
        files.push(file.to_str().unwrap().to_owned());
        reports.push(json(&out));
    }
    let mut args = vec!["merge", "--json"];
    args.extend(files.iter().map(String::as_str));
    let out = bench(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let m = json(&out);
    let sum = |k: &str| reports.iter().map(|r| r[k].as_u64().unwrap()).sum::<u64>();
    for k in ["connections", "connected", "messages", "bytes", "errors"] {
        assert_eq!(m[k].as_u64().unwrap(), sum(k), "{k}: {m}");
    }
    // The merged maximum is the larger maximum, exactly; the median lies
    // between the two medians.
    let max = |r: &serde_json::Value, p: &str| r["latency_us"][p].as_f64().unwrap();
    assert_eq!(
        max(&m, "max"),
        max(&reports[0], "max").max(max(&reports[1], "max"))
    );
    let (lo, hi) = (max(&reports[0], "p50"), max(&reports[1], "p50"));
    assert!((lo.min(hi)..=lo.max(hi)).contains(&max(&m, "p50")), "{m}");
    let rate = reports
        .iter()
        .map(|r| r["msgs_per_sec"].as_f64().unwrap())
        .sum::<f64>();
    assert!((m["msgs_per_sec"].as_f64().unwrap() - rate).abs() < 0.2);

    // --json-stream output merges too (its last line is the report), and
    // open-loop reports merge their service-time histograms.
    let out = short(&["-c", "2", "-r", "400", "--json-stream", &server.addr()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stream = dir.join("stream.jsonl");
    std::fs::write(&stream, &out.stdout).unwrap();
    let last = util::json_lines(&out).pop().unwrap();
    let stream = stream.to_str().unwrap();
    let out = bench(&["merge", "--json", stream, stream]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let m = json(&out);
    assert_eq!(
        m["messages"].as_u64(),
        last["messages"].as_u64().map(|n| 2 * n)
    );
    assert_eq!(m["service_time_us"]["max"], last["service_time_us"]["max"]);
    assert_eq!(
        m["latency_us"]["p99"], last["latency_us"]["p99"],
        "same run twice"
    );

    // Not a report: named.
    let junk = dir.join("junk.json");
    std::fs::write(&junk, "{\"hello\": 1}").unwrap();
    let out = bench(&["merge", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not an echo-bench --json report"),
        "{}",
        stderr(&out)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn run_outputs_are_refused_where_they_do_not_apply() {
    for args in [
        &["sweep", "--hdr-log", "x.hlog", "127.0.0.1:7"][..],
        &["sweep", "--json-stream", "127.0.0.1:7"],
        &[
            "search",
            "--slo",
            "p99<1ms",
            "--max-rate",
            "10",
            "--interval",
            "1",
            "127.0.0.1:7",
        ],
        &["--json", "--json-stream", "127.0.0.1:7"],
        &["--udp", "--connect-rate", "10", "127.0.0.1:7"],
    ] {
        let out = bench(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn search_without_max_rate_measures_the_ceiling_first() {
    let server = EchoServer::tcp();
    let out = search(
        "p99<1s",
        &["--min-rate", "50", "--rounds", "2", "--json"],
        &server.addr(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = json(&out);
    let ceiling = r["ceiling"]["msgs_per_sec"].as_f64().unwrap();
    assert!(ceiling > 50.0, "{r}");
    assert_eq!(
        r["ceiling"]["rate"],
        serde_json::Value::Null,
        "closed loop: {r}"
    );
    let top = r["max_rate"].as_f64().unwrap();
    assert_eq!(top, ceiling.round(), "{r}");
    let rates: Vec<f64> = r["rounds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["rate"].as_f64().unwrap())
        .collect();
    assert_eq!(rates, [50.0, top], "{r}");
    // With --max-rate there is no ceiling round.
    let out = search(
        "p99<1s",
        &["--min-rate", "50", "--max-rate", "60", "--json"],
        &server.addr(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json(&out)["ceiling"], serde_json::Value::Null);
}

#[test]
fn search_retries_a_missed_round_at_the_bottom_once() {
    // The first round's two connections get a corrupted echo, every later
    // connection a clean one: round 1 misses, its retry meets.
    let (addr, _) = tcp_server(Behaviour::CorruptFirst(2));
    let out = search(
        "p99<1s",
        &["--min-rate", "50", "--max-rate", "100", "--json"],
        &addr.to_string(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = json(&out);
    let rounds = r["rounds"].as_array().unwrap();
    let seen: Vec<(f64, bool, bool)> = rounds
        .iter()
        .map(|x| {
            (
                x["rate"].as_f64().unwrap(),
                x["met"] == true,
                x["retry"] == true,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (50.0, false, false),
            (50.0, true, true),
            (100.0, true, false)
        ],
        "{r}"
    );
    assert_eq!(r["best_rate"], 100.0);
}
