//! The command-line contract: JSON keys, exit codes, error messages.

mod util;

use util::{bench, binary, closed_port, json, shell, stderr, tcp_server, Behaviour};

#[test]
fn json_has_the_contract_keys() {
    let (addr, _) = tcp_server(Behaviour::Echo);
    let addr = addr.to_string();
    let out = bench(&["-c", "2", "-d", "0.3", "--warmup", "0", "--json", &addr]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = json(&out);
    for key in [
        "connections",
        "messages",
        "bytes",
        "duration_s",
        "msgs_per_sec",
        "mbytes_per_sec",
        "latency_us",
        "errors",
        "mismatches",
        "connected",
    ] {
        assert!(r.get(key).is_some(), "missing {key}: {r}");
    }
    for key in ["p50", "p90", "p99", "p999", "max"] {
        assert!(r["latency_us"][key].is_number(), "latency_us.{key}: {r}");
    }
    assert_eq!(r["connections"], 2);
    assert!((r["duration_s"].as_f64().unwrap() - 0.3).abs() < 1e-9);
    let rate = r["msgs_per_sec"].as_f64().unwrap();
    let expected = r["messages"].as_f64().unwrap() / 0.3;
    assert!((rate - expected).abs() <= 1.0, "{rate} vs {expected}");
    // Without --server-pid, no server keys.
    assert!(r.get("server_cpu_us_per_msg").is_none());
    assert!(r.get("lost").is_none(), "lost is for UDP only");
}

#[test]
fn the_table_is_the_default() {
    let (addr, _) = tcp_server(Behaviour::Echo);
    let addr = addr.to_string();
    let out = bench(&["-c", "1", "-d", "0.2", "--warmup", "0", &addr]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("msg/s") && text.contains("p99.9"), "{text}");
    assert!(text.contains("connected     1/1"), "{text}");
    // stderr is not a terminal here: no progress line.
    assert!(!stderr(&out).contains('\r'));
}

#[test]
fn unreachable_address_says_connection_refused() {
    let addr = closed_port().to_string();
    let out = bench(&["-c", "3", "-d", "0.2", &addr]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("connect {addr}: connection refused")),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "no report without a connection");
}

#[test]
fn bad_flags_exit_2() {
    for args in [
        &["--no-such-flag", "127.0.0.1:7"][..],
        &["-c", "0", "127.0.0.1:7"],
        &["-s", "abc", "127.0.0.1:7"],
        &["-d", "0", "127.0.0.1:7"],
        &["--backend", "kqueue", "127.0.0.1:7"],
        &["--udp", "-s", "70000", "127.0.0.1:7"],
        &[],
    ] {
        let out = bench(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn unresolvable_address_is_named() {
    let out = bench(&["-d", "0.2", "no-such-host.invalid:7"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("bad address \"no-such-host.invalid:7\": cannot resolve no-such-host.invalid"),
        "{err}"
    );
    assert!(err.contains("expected IP:PORT or HOST:PORT"), "{err}");
}

#[test]
fn bad_addresses_are_named_with_the_hint_issue_12() {
    for (addr, problem) in [
        ("999.1.1.1:80", "999.1.1.1 is not an IPv4 address"),
        ("localhost", "no port"),
        (
            "127.0.0.1:99999",
            "port \"99999\" is not a number from 0 to 65535",
        ),
        ("unix:", "no path after unix:"),
    ] {
        let out = bench(&["-d", "0.2", addr]);
        assert_eq!(out.status.code(), Some(2), "{addr}");
        let err = stderr(&out);
        assert!(err.contains(problem), "{addr}: {err}");
        assert!(
            err.contains("(expected IP:PORT or HOST:PORT)"),
            "{addr}: {err}"
        );
    }
    // The same rule for chaos's single address.
    let out = bench(&["chaos", "-d", "0.2", "999.1.1.1:80"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("999.1.1.1 is not an IPv4 address"));
}

#[test]
fn too_few_descriptors_fail_at_once_with_advice() {
    let (addr, peers) = tcp_server(Behaviour::Echo);
    let line = format!("ulimit -n 64 && exec {} -c 1000 -d 1 {addr}", binary());
    let out = shell(&line);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("1000 connections need 1032 file descriptors"),
        "{err}"
    );
    assert!(
        err.contains("is 64") && err.contains("ulimit -n 1032"),
        "{err}"
    );
    assert!(
        peers.lock().unwrap().is_empty(),
        "connected before checking"
    );
}

#[test]
fn soft_limit_is_raised_to_the_hard_limit() {
    let (addr, _) = tcp_server(Behaviour::Echo);
    let line = format!(
        "ulimit -Sn 64 && ulimit -Hn 400 && exec {} -c 300 -d 0.3 --warmup 0 --json {addr}",
        binary()
    );
    let out = shell(&line);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json(&out)["connected"], 300);
}

#[test]
fn sweep_runs_the_matrix_into_one_array() {
    let (addr, _) = tcp_server(Behaviour::Echo);
    let addr = addr.to_string();
    let out = bench(&[
        "sweep", "-c", "1,3", "-s", "64,1000", "-p", "1", "-d", "0.2", "--warmup", "0", "--json",
        &addr,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let points = json(&out);
    let points = points.as_array().unwrap();
    let params: Vec<(u64, u64, u64)> = points
        .iter()
        .map(|p| {
            assert_eq!(p["errors"], 0);
            assert!(p["messages"].as_u64().unwrap() > 0);
            let n = |k: &str| p[k].as_u64().unwrap();
            (n("connections"), n("size"), n("pipeline"))
        })
        .collect();
    assert_eq!(params, [(1, 64, 1), (1, 1000, 1), (3, 64, 1), (3, 1000, 1)]);

    let table = bench(&[
        "sweep", "-c", "2", "-s", "64", "-p", "1,4", "-d", "0.2", "--warmup", "0", &addr,
    ]);
    assert_eq!(table.status.code(), Some(0));
    let text = String::from_utf8_lossy(&table.stdout);
    assert_eq!(text.lines().count(), 3, "header and two rows: {text}");
}

#[test]
fn sweep_fails_when_a_point_fails() {
    let (addr, _) = tcp_server(Behaviour::Corrupt(70));
    let addr = addr.to_string();
    let out = bench(&[
        "sweep", "-c", "1", "-s", "64", "-p", "1", "-d", "0.2", "--warmup", "0", "--json", &addr,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)[0]["mismatches"], 1);
}

#[test]
fn each_mode_refuses_flags_it_does_not_take_issue_17() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["search", "--slo", "p99<1ms", "--rate", "10", "127.0.0.1:7"],
            "--rate",
        ),
        (
            &[
                "search",
                "--slo",
                "p99<1ms",
                "--fail-if",
                "errors>0",
                "127.0.0.1:7",
            ],
            "--fail-if",
        ),
        (
            &["search", "--slo", "p99<1ms", "--ramp", "1", "127.0.0.1:7"],
            "--ramp",
        ),
        (
            &["search", "--slo", "p99<1ms", "--json-stream", "127.0.0.1:7"],
            "--json-stream",
        ),
        (&["sweep", "--interval", "1", "127.0.0.1:7"], "--interval"),
        (
            &["sweep", "--hdr-log", "x.hlog", "127.0.0.1:7"],
            "--hdr-log",
        ),
        (&["chaos", "--rate", "10", "127.0.0.1:7"], "--rate"),
        (&["merge", "-c", "3", "a.json"], "-c"),
    ];
    for (args, flag) in cases {
        let out = bench(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!("unexpected argument '{flag}")),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn values_are_refused_by_kind_with_the_flag_named() {
    let cases: &[(&[&str], &str)] = &[
        (&["-r", "0", "127.0.0.1:7"], "--rate"),
        (&["--connect-rate", "fast", "127.0.0.1:7"], "--connect-rate"),
        (&["-c", "0", "127.0.0.1:7"], "--connections"),
        (&["-d", "0", "127.0.0.1:7"], "--duration"),
        (
            &[
                "search",
                "--slo",
                "p99<1ms",
                "--precision",
                "1.5",
                "127.0.0.1:7",
            ],
            "--precision",
        ),
        (
            &[
                "search",
                "--slo",
                "p99<1ms",
                "--min-rate",
                "10",
                "--max-rate",
                "5",
                "127.0.0.1:7",
            ],
            "--max-rate",
        ),
    ];
    for (args, flag) in cases {
        let out = bench(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(flag), "{args:?}: {}", stderr(&out));
    }
}
