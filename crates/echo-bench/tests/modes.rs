//! Open loop, threads, backends, source addresses, server sampling.

mod util;

use util::{bench, json, stderr, tcp_server, Behaviour};

#[test]
fn open_loop_sends_at_the_asked_rate() {
    let (addr, _) = tcp_server(Behaviour::Echo);
    let addr = addr.to_string();
    let out = bench(&[
        "-c", "4", "-r", "400", "-d", "1", "--warmup", "0.2", "--json", &addr,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = json(&out);
    let messages = r["messages"].as_u64().unwrap();
    assert!((300..=500).contains(&messages), "{r}");
    assert_eq!(r["rate"], 400.0);
}

#[test]
fn threads_split_the_connections() {
    let (addr, peers) = tcp_server(Behaviour::Echo);
    let addr = addr.to_string();
    let out = bench(&[
        "-c",
        "10",
        "--threads",
        "3",
        "-d",
        "0.3",
        "--warmup",
        "0",
        "--json",
        &addr,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = json(&out);
    assert_eq!(r["connected"], 10);
    assert_eq!(r["threads"], 3);
    assert_eq!(peers.lock().unwrap().len(), 10);
}

#[test]
fn every_backend_drives_the_load() {
    let (addr, _) = tcp_server(Behaviour::Echo);
    let addr = addr.to_string();
    for backend in ["epoll", "poll", "select"] {
        let out = bench(&[
            "-c",
            "3",
            "-p",
            "2",
            "--backend",
            backend,
            "-d",
            "0.2",
            "--warmup",
            "0",
            "--json",
            &addr,
        ]);
        assert_eq!(out.status.code(), Some(0), "{backend}: {}", stderr(&out));
        let r = json(&out);
        assert_eq!(r["backend"], backend);
        assert!(r["messages"].as_u64().unwrap() > 0, "{backend}: {r}");
    }
}

#[test]
fn source_base_binds_the_source_address() {
    let (addr, peers) = tcp_server(Behaviour::Echo);
    let addr = addr.to_string();
    let out = bench(&[
        "-c",
        "3",
        "--source-base",
        "127.0.0.3",
        "-d",
        "0.2",
        "--warmup",
        "0",
        "--json",
        &addr,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let peers = peers.lock().unwrap();
    assert_eq!(peers.len(), 3);
    assert!(
        peers.iter().all(|p| p.ip().to_string() == "127.0.0.3"),
        "{peers:?}"
    );
}

#[test]
fn server_pid_reports_cpu_and_memory() {
    // The echo server runs in this test process.
    let (addr, _) = tcp_server(Behaviour::Echo);
    let addr = addr.to_string();
    let pid = std::process::id().to_string();
    let out = bench(&[
        "-c",
        "2",
        "--server-pid",
        &pid,
        "-d",
        "0.5",
        "--warmup",
        "0.1",
        "--json",
        &addr,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = json(&out);
    assert!(r["server_cpu_us_per_msg"].as_f64().unwrap() >= 0.0, "{r}");
    let peak = r["server_peak_rss_kb"].as_u64().unwrap();
    let rss = r["server_rss_kb"].as_u64().unwrap();
    assert!(rss > 0 && peak >= rss, "{r}");
}

#[test]
fn a_missing_server_pid_is_an_error() {
    let (addr, _) = tcp_server(Behaviour::Echo);
    let addr = addr.to_string();
    let out = bench(&["-c", "1", "--server-pid", "999999999", "-d", "0.2", &addr]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("/proc/999999999/stat"),
        "{}",
        stderr(&out)
    );
}
