//! Load shape and scale (issue 11): several targets, Unix-domain targets,
//! source address ranges, rate ramps.

mod util;

use util::{bench, json, stderr, tcp_server, Behaviour, EchoServer};

#[test]
fn connections_spread_round_robin_over_targets() {
    let server = EchoServer::start(&["-l", "127.0.0.1:0", "-l", "127.0.0.1:0"], 2);
    let (a, b) = (server.tcp[0].to_string(), server.tcp[1].to_string());
    let out = bench(&["-c", "5", "-d", "0.4", "--warmup", "0", "--json", &a, &b]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = json(&out);
    assert_eq!(r["addr"], format!("{a},{b}"));
    let rows = r["targets"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{r}");
    assert_eq!(
        (rows[0]["addr"].as_str(), rows[1]["addr"].as_str()),
        (Some(&*a), Some(&*b))
    );
    assert_eq!(
        (rows[0]["connected"].clone(), rows[1]["connected"].clone()),
        (3.into(), 2.into())
    );
    let sum: u64 = rows.iter().map(|t| t["messages"].as_u64().unwrap()).sum();
    assert_eq!(sum, r["messages"].as_u64().unwrap());
    assert!(
        rows.iter().all(|t| t["messages"].as_u64().unwrap() > 0),
        "{r}"
    );

    // The table shows a row per target.
    let out = bench(&["-c", "2", "-d", "0.2", "--warmup", "0", &a, &b]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("  target ").count(), 2, "{text}");
}

#[test]
fn a_failing_target_is_counted_on_its_own_row() {
    let good = EchoServer::tcp();
    let (bad, _) = tcp_server(Behaviour::Corrupt(1000));
    let out = bench(&[
        "-c",
        "4",
        "-d",
        "0.4",
        "--warmup",
        "0.1",
        "--json",
        &good.addr(),
        &bad.to_string(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let r = json(&out);
    let rows = r["targets"].as_array().unwrap();
    assert_eq!(rows[0]["mismatches"], 0, "{r}");
    assert_eq!(rows[1]["mismatches"], 2, "{r}");
}

#[test]
fn unix_socket_targets() {
    let path = std::env::temp_dir().join(format!("echo-bench-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let p = path.to_str().unwrap();
    let _server = EchoServer::start(&["--unix", p], 1);
    let target = format!("unix:{p}");
    let out = bench(&[
        "-c", "3", "-p", "2", "-d", "0.4", "--warmup", "0.1", "--json", &target,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = json(&out);
    assert_eq!(r["transport"], "unix");
    assert_eq!(r["addr"], target);
    assert_eq!(r["connected"], 3);
    assert_eq!(r["mismatches"], 0);
    assert!(r["messages"].as_u64().unwrap() > 10, "{r}");
    // Nothing listening there: the path is named.
    drop(_server);
    let _ = std::fs::remove_file(&path);
    let out = bench(&["-c", "1", "-d", "0.2", &target]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("connect {target}")),
        "{}",
        stderr(&out)
    );
    // Stream sockets only.
    let out = bench(&["--udp", "-d", "0.2", &target]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn source_ip_ranges_bind_round_robin() {
    let (addr, peers) = tcp_server(Behaviour::Echo);
    let addr = addr.to_string();
    let out = bench(&[
        "-c",
        "6",
        "--source-ip",
        "127.0.0.5-127.0.0.7",
        "-d",
        "0.2",
        "--warmup",
        "0",
        "--json",
        &addr,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut ips: Vec<String> = peers
        .lock()
        .unwrap()
        .iter()
        .map(|p| p.ip().to_string())
        .collect();
    ips.sort();
    assert_eq!(
        ips,
        [
            "127.0.0.5",
            "127.0.0.5",
            "127.0.0.6",
            "127.0.0.6",
            "127.0.0.7",
            "127.0.0.7"
        ]
    );
    for bad in ["127.0.0.9-127.0.0.1", "127.0.0.1-x", "1.2.3"] {
        let out = bench(&["--source-ip", bad, "-d", "0.2", &addr]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(
            stderr(&out).contains("--source-ip"),
            "{bad}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn a_ramp_reaches_the_rate_gradually() {
    let server = EchoServer::tcp();
    // 400 msg/s reached over the whole 1 s window: half the messages.
    let out = bench(&[
        "-c",
        "4",
        "-r",
        "400",
        "--ramp",
        "1",
        "-d",
        "1",
        "--warmup",
        "0",
        "--json",
        &server.addr(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let messages = json(&out)["messages"].as_u64().unwrap();
    assert!((140..=260).contains(&messages), "{messages}");
    // --ramp means nothing without --rate.
    let out = bench(&["--ramp", "1", "-d", "0.2", &server.addr()]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn connect_rate_ramps_connections_into_the_load() {
    let server = EchoServer::tcp();
    // 10 connections at 10/s, each sending 100 msg/s once connected: the
    // first started at 0 s, the last at 0.9 s, so the load grows from
    // about 100 to 1,000 msg/s over the first second.
    let out = bench(&[
        "-c",
        "10",
        "--connect-rate",
        "10",
        "-r",
        "1000",
        "-d",
        "1.6",
        "--warmup",
        "0",
        "--interval",
        "0.4",
        "--json-stream",
        &server.addr(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lines = util::json_lines(&out);
    let (report, intervals) = lines.split_last().unwrap();
    assert_eq!(report["connected"], 10, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    let counts: Vec<u64> = intervals
        .iter()
        .map(|i| i["messages"].as_u64().unwrap())
        .collect();
    assert_eq!(counts.len(), 4, "{counts:?}");
    // First 0.4 s: at most 4 of 10 connected; last 0.4 s: all of them.
    assert!(counts[0] * 2 < counts[3], "no ramp: {counts:?}");
    assert!((250..=480).contains(&counts[3]), "{counts:?}");
    // Latency counts from due times after each connection joined: no
    // backlog of messages due while it was connecting. Such a backlog puts
    // well over a tenth of the messages 0.25 s to 0.9 s late; p90, not
    // p99, so that a stall of a loaded machine does not fail the run.
    let p90 = report["latency_us"]["p90"].as_f64().unwrap();
    assert!(p90 < 250_000.0, "{report}");
}

/// More connections to one server port than one source address has
/// ephemeral ports: in a fresh network namespace (`unshare -n`, needs
/// root) whose port range is lowered to 1,000 ports, 2,500 connections
/// spread over three addresses with --source-ip all connect, and from one
/// address they fail past the range. (The runs use different addresses:
/// the first run's TIME_WAIT ports would otherwise count against the
/// second.) Run with
/// `cargo test -p echo-bench --test scale -- --ignored`.
#[test]
#[ignore = "needs root for unshare -n; run explicitly"]
fn more_connections_than_the_ephemeral_range_with_source_ips() {
    let server = util::echo_server_binary();
    let script = format!(
        "set -e; ip link set lo up; sysctl -qw net.ipv4.ip_local_port_range='40000 40999'; \
         {server} -l 127.0.0.1:7000 >/dev/null 2>&1 & S=$!; trap 'kill $S' EXIT; sleep 0.5; \
         {bench} -c 2500 -d 1 --warmup 0.2 --source-ip 127.0.0.2-127.0.0.4 --json 127.0.0.1:7000; \
         {bench} -c 2500 -d 1 --warmup 0.2 --connect-timeout 5 --json 127.0.0.1:7000 || true",
        server = server.display(),
        bench = util::binary()
    );
    let child = std::process::Command::new("unshare")
        .args(["-n", "sh", "-c", &script])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run unshare");
    let out = util::finish(child, std::time::Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let reports: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(reports.len(), 2, "{text}");
    let one = &reports[1];
    assert!(
        one["connected"].as_u64().unwrap() <= 1000,
        "one source: {one}"
    );
    assert!(one["connect_errors"].as_u64().unwrap() >= 1500, "{one}");
    let three = &reports[0];
    assert_eq!(three["connected"], 2500, "{three}");
    assert_eq!(three["errors"], 0, "{three}");
    assert!(three["messages"].as_u64().unwrap() > 0, "{three}");
}
