//! `--metrics ADDR`: Prometheus text on GET /metrics from the counters the
//! loops publish, GET /healthz (200 serving, 503 draining), 404 elsewhere,
//! 400 and close for malformed requests; a stuck scraper stalls nothing.

mod util;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use util::{connect, echo_once, http, wait_until, Server, IO_TIMEOUT};

const WAIT: Duration = Duration::from_secs(10);

fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    http(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    )
}

/// `name{labels}` -> value for every sample line.
fn samples(body: &str) -> HashMap<String, f64> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// The sum over every sample of metric `name` whose labels contain `with`.
fn total(s: &HashMap<String, f64>, name: &str, with: &str) -> f64 {
    s.iter()
        .filter(|(k, _)| k.starts_with(&format!("{name}{{")) && k.contains(with))
        .map(|(_, v)| v)
        .sum()
}

#[test]
fn metrics_count_the_echo_traffic_by_worker_and_listener() {
    let server = Server::start(&[
        "-l",
        "127.0.0.1:0",
        "-u",
        "127.0.0.1:0",
        "--workers",
        "2",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let m = server.metrics.expect("metrics line");
    let clients: Vec<TcpStream> = (0..4).map(|_| connect(server.addr())).collect();
    for c in &clients {
        echo_once(c, b"0123456789");
    }
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    udp.send_to(b"dgram", server.udp[0]).unwrap();
    udp.recv_from(&mut [0u8; 16]).unwrap();

    let listener = format!("listener=\"tcp {}\"", server.addr());
    let mut s = HashMap::new();
    let counted = wait_until(WAIT, || {
        let (status, head, body) = get(m, "/metrics");
        assert_eq!(status, 200, "{head}");
        assert!(head.contains("openmetrics-text"), "{head}");
        s = samples(&body);
        total(&s, "echo_bytes_sent_total", "") == 45.0
    });
    assert!(counted, "{s:#?}");
    assert_eq!(
        total(&s, "echo_connections_accepted_total", &listener),
        4.0,
        "{s:#?}"
    );
    assert_eq!(total(&s, "echo_connections_open", "worker="), 4.0);
    assert_eq!(total(&s, "echo_bytes_received_total", ""), 45.0);
    assert_eq!(total(&s, "echo_datagrams_total", ""), 1.0);
    // Each worker has its own series; the kernel deals connections out by
    // hash, so which worker woke is chance, but together they did.
    for worker in ["0", "1"] {
        let key = format!("echo_loop_wakeups_total{{worker=\"{worker}\"}}");
        assert!(s.contains_key(&key), "{key} missing: {s:#?}");
    }
    assert!(total(&s, "echo_loop_wakeups_total", "worker=") > 0.0);
    assert!(total(&s, "echo_events_total", "") > 0.0);
    for name in [
        "echo_connections_refused_total{worker=\"1\",reason=\"per_ip\"}",
        "echo_udp_dropped_total{worker=\"0\",reason=\"reflection\"}",
        "echo_backpressure_paused{worker=\"1\"}",
        "echo_queued_bytes{worker=\"0\"}",
    ] {
        assert!(s.contains_key(name), "{name} missing: {s:#?}");
    }
    drop(clients);
    assert!(wait_until(WAIT, || {
        total(&samples(&get(m, "/metrics").2), "echo_connections_open", "") == 0.0
    }));
}

#[test]
fn refusals_are_counted_by_reason() {
    let server = Server::start(&["--max-per-ip", "1", "--metrics", "127.0.0.1:0"]);
    let m = server.metrics.unwrap();
    let kept = connect(server.addr());
    echo_once(&kept, b"first");
    let refused = connect(server.addr());
    let _ = refused.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = (&refused).read(&mut [0u8; 1]);
    assert!(wait_until(WAIT, || {
        let s = samples(&get(m, "/metrics").2);
        total(&s, "echo_connections_refused_total", "reason=\"per_ip\"") == 1.0
    }));
}

#[test]
fn healthz_is_200_while_serving_and_503_while_draining() {
    let mut server = Server::start(&[
        "--metrics",
        "127.0.0.1:0",
        "--max-pending",
        "65536",
        "--shutdown-timeout",
        "5",
        // The copy path counts backpressure; splice keeps bytes in a pipe.
        "--zero-copy",
        "off",
    ]);
    let m = server.metrics.unwrap();
    assert_eq!(get(m, "/healthz").0, 200);
    assert_eq!(get(m, "/healthz").2, "serving\n");
    // A client that sends without reading keeps the drain busy.
    let stuck = connect(server.addr());
    let writer = {
        let mut w = stuck.try_clone().unwrap();
        thread::spawn(move || {
            let chunk = vec![b'x'; 64 * 1024];
            for _ in 0..512 {
                if w.write_all(&chunk).is_err() {
                    break;
                }
            }
        })
    };
    assert!(wait_until(WAIT, || {
        let s = samples(&get(m, "/metrics").2);
        total(&s, "echo_backpressure_paused", "") == 1.0
    }));
    server.term();
    assert!(
        wait_until(WAIT, || get(m, "/healthz").0 == 503),
        "no 503 while draining; stderr:\n{}",
        server.stderr()
    );
    assert_eq!(get(m, "/healthz").2, "draining\n");
    drop(stuck);
    let _ = writer.join();
    assert!(server.wait_exit(WAIT).is_some());
}

#[test]
fn unknown_paths_methods_and_malformed_requests() {
    let server = Server::start(&["--metrics", "127.0.0.1:0"]);
    let m = server.metrics.unwrap();
    assert_eq!(get(m, "/").0, 404);
    assert_eq!(get(m, "/metrics/x").0, 404);
    assert_eq!(get(m, "/metrics?name=x").0, 200);
    assert_eq!(http(m, b"POST /metrics HTTP/1.1\r\n\r\n").0, 405);
    let (status, _, body) = http(m, b"HEAD /metrics HTTP/1.1\r\n\r\n");
    assert_eq!((status, body.as_str()), (200, ""));
    // Malformed, oversized, too many headers: 400, then the server closes.
    assert_eq!(http(m, b"garbage\r\n\r\n").0, 400);
    assert_eq!(http(m, b"GET /metrics HTTP/1.1\r\nno colon\r\n\r\n").0, 400);
    let huge = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(10_000));
    assert_eq!(http(m, huge.as_bytes()).0, 400);
    let many: String = (0..40).map(|i| format!("X-{i}: y\r\n")).collect();
    assert_eq!(
        http(m, format!("GET /metrics HTTP/1.1\r\n{many}\r\n").as_bytes()).0,
        400
    );
    // The endpoint still answers.
    assert_eq!(get(m, "/healthz").0, 200);
}

#[test]
fn a_stuck_scraper_stalls_neither_echo_nor_other_scrapers_for_long() {
    let server = Server::start(&["--metrics", "127.0.0.1:0"]);
    let m = server.metrics.unwrap();
    // Half a request, then silence.
    let mut stuck = TcpStream::connect(m).unwrap();
    stuck.write_all(b"GET /metr").unwrap();
    let started = Instant::now();
    echo_once(&connect(server.addr()), b"echo goes on");
    // Echoed while the scraper is still stuck: the endpoint has not given up on it yet
    // (it would have, had the echo waited for it).
    stuck.set_nonblocking(true).unwrap();
    let pending = (&stuck).read(&mut [0u8; 1]);
    assert!(
        matches!(&pending, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the stuck scraper was answered or closed before the echo: {pending:?}"
    );
    stuck.set_nonblocking(false).unwrap();
    // The endpoint gives up on it within its 2-second limit.
    stuck.set_read_timeout(Some(WAIT)).unwrap();
    let mut rest = Vec::new();
    let _ = stuck.read_to_end(&mut rest);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(6),
        "{waited:?}"
    );
    assert_eq!(get(m, "/healthz").0, 200);
}

#[test]
fn metrics_address_in_use_exits_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (status, _, err) = util::run_cli(&["-l", "127.0.0.1:0", "--metrics", &addr], WAIT);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("metrics {addr}")), "{err}");
}
