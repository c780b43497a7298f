//! Shards and a start line (issue 19): N processes, each its exact share,
//! one start instant, merged into one run with one verdict; and every set
//! that is not one run refused by name.

mod util;

use base64::Engine as _;
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use util::{bench, binary, finish, json, spawn_bench, stderr, EchoServer};

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("echo-bench-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// echo-bench with `env` set (and JOB_COMPLETION_INDEX, ECHO_BENCH_SHARDS
/// cleared unless set there).
fn bench_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(binary());
    cmd.args(args)
        .env_remove("JOB_COMPLETION_INDEX")
        .env_remove("ECHO_BENCH_SHARDS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// The sum of a counter over its labels, from echo-server's /metrics.
fn metric(addr: SocketAddr, name: &str) -> u64 {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

fn histogram(text: &str) -> Histogram<u64> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap();
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .unwrap()
}

#[test]
fn shards_started_together_merge_into_the_whole_run() {
    let server = EchoServer::start(&["-l", "127.0.0.1:0", "--metrics", "127.0.0.1:0"], 2);
    let metrics = server.metrics.expect("a metrics line");
    let addr = server.addr();
    // 7 connections and 301 msg/s over 3 shards: 3+2+2 and 129+86+86.
    let start = format!("{:.3}", unix_now() + 3.0);
    let children: Vec<_> = (0..3)
        .map(|i| {
            let shard = format!("{i}/3");
            let source = format!("127.0.0.{}", i + 2);
            spawn_bench(&[
                "--shard",
                &shard,
                "--start-at",
                &start,
                "--source-ip",
                &source,
                "-c",
                "7",
                "-r",
                "301",
                "-d",
                "1",
                "--warmup",
                "0",
                "--json",
                &addr,
            ])
        })
        .collect();
    let dir = scratch("shards");
    let mut files = Vec::new();
    let mut reports = Vec::new();
    for (i, child) in children.into_iter().enumerate() {
        let out = finish(child, Duration::from_secs(60));
        assert_eq!(out.status.code(), Some(0), "shard {i}: {}", stderr(&out));
        let r = json(&out);
        let file = dir.join(format!("{i}.json"));
        std::fs::write(&file, &out.stdout).unwrap();
        files.push(file.to_str().unwrap().to_owned());
        reports.push(r);
    }
    let shares: Vec<(u64, u64, f64)> = reports
        .iter()
        .map(|r| {
            (
                r["shard"]["index"].as_u64().unwrap(),
                r["connections"].as_u64().unwrap(),
                r["rate"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(shares, [(0, 3, 129.0), (1, 2, 86.0), (2, 2, 86.0)]);
    let start_at: f64 = start.parse().unwrap();
    assert!(reports
        .iter()
        .all(|r| r["start_at"].as_f64() == Some(start_at)));

    let mut args = vec!["merge", "--json"];
    args.extend(files.iter().map(String::as_str));
    let out = bench(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let m = json(&out);
    let sum = |k: &str| reports.iter().map(|r| r[k].as_u64().unwrap()).sum::<u64>();
    for k in ["messages", "bytes", "connections", "connected"] {
        assert_eq!(m[k].as_u64(), Some(sum(k)), "{k}: {m}");
    }
    assert_eq!(m["connections"], 7);
    assert_eq!(m["rate"], 301.0);
    assert!(m.get("shard").is_none(), "the whole run is no shard: {m}");
    assert_eq!(m["start_at"].as_f64(), Some(start_at));
    // The merged p99 is the p99 of the union of the shards' histograms.
    let mut union = histogram(reports[0]["latency_hist"].as_str().unwrap());
    for r in &reports[1..] {
        union
            .add(histogram(r["latency_hist"].as_str().unwrap()))
            .unwrap();
    }
    let us = |ns: u64| (ns as f64 / 100.0).round() / 10.0;
    assert_eq!(
        m["latency_us"]["p99"].as_f64(),
        Some(us(union.value_at_quantile(0.99)))
    );
    assert_eq!(union.len(), m["messages"].as_u64().unwrap());
    // The server echoed every byte it received, and every byte of the
    // merged window; beyond it only echoes still owed when the window
    // ended (at most one message per connection at -p 1), finished in the
    // drain.
    let (received, sent) = (
        metric(metrics, "echo_bytes_received_total"),
        metric(metrics, "echo_bytes_sent_total"),
    );
    let bytes = m["bytes"].as_u64().unwrap();
    assert_eq!(received, sent, "server: received {received}, sent {sent}");
    assert!(
        (bytes..=bytes + 7 * 64).contains(&sent),
        "server sent {sent}, merged window {bytes}"
    );
    // One verdict for the whole run, with a single run's statuses.
    let mut args = vec!["merge", "--fail-if", "messages<1"];
    args.extend(files.iter().map(String::as_str));
    assert_eq!(bench(&args).status.code(), Some(0));
    let mut args = vec!["merge", "--fail-if", "messages>0"];
    args.extend(files.iter().map(String::as_str));
    let out = bench(&args);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("messages>0"), "{}", stderr(&out));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A real report, rewritten as shard `index/count` started at `start`
/// against `addr`.
fn variant(
    base: &Value,
    dir: &Path,
    name: &str,
    shard: (u64, u64),
    start: f64,
    addr: &str,
) -> String {
    let mut r = base.clone();
    r["shard"] = serde_json::json!({"index": shard.0, "count": shard.1});
    r["start_at"] = serde_json::json!(start);
    r["addr"] = serde_json::json!(addr);
    let path = dir.join(name);
    std::fs::write(&path, r.to_string()).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn merge_refuses_a_set_that_is_not_one_run_and_names_why() {
    let server = EchoServer::tcp();
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
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let base = json(&out);
    let dir = scratch("refusals");
    let a = "127.0.0.1:7";
    let s0 = variant(&base, &dir, "s0.json", (0, 3), 100.0, a);
    let s1 = variant(&base, &dir, "s1.json", (1, 3), 100.0, a);
    let s2 = variant(&base, &dir, "s2.json", (2, 3), 100.0, a);
    let s1_again = variant(&base, &dir, "s1b.json", (1, 3), 100.0, a);
    let s2_late = variant(&base, &dir, "s2late.json", (2, 3), 160.0, a);
    let s2_other = variant(&base, &dir, "s2other.json", (2, 3), 100.0, "127.0.0.1:8");
    let cases: [(&[&str], String); 4] = [
        (
            &[&s0, &s1, &s1_again],
            format!("duplicate shard 1/3: {s1} and {s1_again}"),
        ),
        (&[&s0, &s1], "missing shard 2/3".to_owned()),
        (
            &[&s0, &s1, &s2_late],
            format!("mixed runs: {s2_late} has start 160"),
        ),
        (
            &[&s0, &s1, &s2_other],
            format!("mixed runs: {s2_other} targets 127.0.0.1:8"),
        ),
    ];
    for (files, why) in cases {
        let mut args = vec!["merge"];
        args.extend_from_slice(files);
        let out = bench(&args);
        assert_eq!(out.status.code(), Some(2), "{files:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(&why), "{why}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "no merged report for a refused set");
    }
    let out = bench(&["merge", &s2, &s0, &s1]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn start_times_out_of_range_are_refused_with_exit_2() {
    let now = unix_now();
    for (at, why) in [
        (format!("{:.0}", now - 30.0), "in the past"),
        (format!("{:.0}", now + 3700.0), "at most 3600 s (1 h) ahead"),
        ("2000-01-01T00:00:00Z".to_owned(), "in the past"),
        ("tomorrow".to_owned(), "neither RFC 3339"),
    ] {
        let out = bench(&["--start-at", &at, "127.0.0.1:7"]);
        assert_eq!(out.status.code(), Some(2), "{at}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("--start-at") && err.contains(why),
            "{at}: {err}"
        );
    }
}

#[test]
fn the_shard_comes_from_the_flag_or_the_job_index() {
    let server = EchoServer::tcp();
    let addr = server.addr();
    let run = [
        "-c", "5", "-r", "100", "-d", "0.2", "--warmup", "0", "--json", &addr,
    ];
    // JOB_COMPLETION_INDEX with --shards, or with ECHO_BENCH_SHARDS.
    for (flags, env) in [
        (&["--shards", "2"][..], &[("JOB_COMPLETION_INDEX", "1")][..]),
        (
            &[],
            &[("JOB_COMPLETION_INDEX", "1"), ("ECHO_BENCH_SHARDS", "2")],
        ),
        (&["--shard", "1/2"], &[]),
    ] {
        let mut args = flags.to_vec();
        args.extend_from_slice(&run);
        let out = bench_env(&args, env);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{flags:?} {env:?}: {}",
            stderr(&out)
        );
        let r = json(&out);
        assert_eq!(
            (r["shard"]["index"].as_u64(), r["shard"]["count"].as_u64()),
            (Some(1), Some(2))
        );
        assert_eq!(
            (r["connections"].as_u64(), r["rate"].as_f64()),
            (Some(2), Some(40.0)),
            "{r}"
        );
    }
    // The index alone shards nothing; a missing or bad index is refused.
    let out = bench_env(&run, &[("JOB_COMPLETION_INDEX", "1")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(json(&out).get("shard").is_none());
    for (flags, env, why) in [
        (
            &["--shards", "2"][..],
            &[][..],
            "needs the shard index in JOB_COMPLETION_INDEX",
        ),
        (
            &["--shards", "2"],
            &[("JOB_COMPLETION_INDEX", "2")],
            "not below the count 2",
        ),
        (&["--shard", "2/2"], &[], "not below the count 2"),
        (&["--shard", "0/9"], &[], "leaves shard 0/9 none"),
        (
            &["--shard", "0/2", "--shards", "2"],
            &[],
            "cannot be used with",
        ),
    ] {
        let mut args = flags.to_vec();
        args.extend_from_slice(&run);
        let out = bench_env(&args, env);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(why), "{flags:?}: {}", stderr(&out));
    }
}
