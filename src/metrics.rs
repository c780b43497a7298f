//! `--metrics ADDR`: Prometheus metrics and a health check over HTTP, on a
//! listener and a thread of their own.
//!
//! The endpoint only reads what the workers already publish (each loop
//! stores its counters into relaxed atomics after every round, see
//! [`crate::stats::Published`]); it takes no lock a loop takes and sends
//! nothing to a loop, so a slow or hostile scraper can never stall the echo
//! traffic. Requests are parsed by `httparse` and served one at a time with
//! strict limits: 8 KiB of request head, 32 headers, 2 seconds to send it;
//! anything malformed gets 400 and the connection is closed, as is every
//! connection after its one response.
//!
//! | path       | answer                                                   |
//! |------------|----------------------------------------------------------|
//! | `/metrics` | 200, OpenMetrics text (Prometheus scrapes it)            |
//! | `/healthz` | 200 `serving`, or 503 `draining` once shutdown began     |
//! | other      | 404; a method other than GET or HEAD gets 405            |

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tracing::{debug, warn};

use crate::listen;
use crate::server::Shared;
use crate::stats::Counters;

/// Bytes of request line and headers read at most.
const MAX_HEAD: usize = 8 * 1024;
const MAX_HEADERS: usize = 32;
/// How long a client has to send its request, and to take the answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

type Labels = Vec<(&'static str, String)>;
type Field = fn(&Counters) -> u64;
/// A labelled counter's name, help, and its `reason` labels with values.
type ByReason = (&'static str, &'static str, &'static [(&'static str, Field)]);

/// Counters exported per worker: name (the encoder adds `_total`), help
/// (it adds the full stop), value.
const COUNTERS: [(&str, &str, Field); 5] = [
    (
        "echo_bytes_received",
        "Bytes read from clients (TCP and UDP)",
        |c| c.bytes_in,
    ),
    (
        "echo_bytes_sent",
        "Bytes echoed back to clients (TCP and UDP)",
        |c| c.bytes_out,
    ),
    ("echo_datagrams", "UDP datagrams echoed", |c| c.datagrams),
    (
        "echo_loop_wakeups",
        "Returns from the selector's wait",
        |c| c.wakeups,
    ),
    ("echo_events", "Readiness events handled", |c| c.events),
];

/// Gauges exported per worker: name, help, value.
const GAUGES: [(&str, &str, Field); 4] = [
    (
        "echo_connections_open",
        "Client connections open now",
        |c| c.accepted.saturating_sub(c.closed),
    ),
    (
        "echo_backpressure_paused",
        "Connections not read from until their client reads",
        |c| c.paused,
    ),
    (
        "echo_queued_bytes",
        "Bytes received and waiting to be echoed",
        |c| c.queued,
    ),
    (
        "echo_spliced_connections",
        "Connections on the zero-copy path",
        |c| c.spliced,
    ),
];

/// Counters with a `reason` label: name, help, (reason, value) pairs.
const BY_REASON: [ByReason; 2] = [
    (
        "echo_connections_refused",
        "Connections closed at once, by reason",
        &[
            ("per_ip", |c| c.refused_per_ip),
            ("proxy_header", |c| c.refused_proxy),
        ],
    ),
    (
        "echo_udp_dropped",
        "UDP datagrams not echoed, by reason",
        &[
            ("reflection", |c| c.dropped_reflection),
            ("rate", |c| c.dropped_rate),
            ("send_failed", |c| c.dropped_send),
        ],
    ),
];

/// Bind the endpoint's listener (blocking: it has a thread of its own).
pub fn bind(spec: &str) -> Result<TcpListener> {
    let addr = *listen::resolve(spec)?
        .first()
        .with_context(|| format!("bad --metrics address {spec:?}"))?;
    TcpListener::bind(addr).with_context(|| format!("cannot listen on metrics {addr}"))
}

/// Serve the endpoint on a thread of its own until the process exits.
pub fn serve(listener: TcpListener, shared: Arc<Shared>) -> Result<()> {
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for stream in listener.incoming() {
                match stream {
                    Ok(stream) => answer(stream, &shared),
                    Err(e) => {
                        warn!(error = %e, "metrics: accept failed");
                        // EMFILE and the like: do not spin on them.
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        })
        .context("cannot start the metrics thread")?;
    Ok(())
}

/// One request, one response, then close.
fn answer(mut stream: TcpStream, shared: &Shared) {
    let response = match read_request(&mut stream) {
        Ok(Some((method, path))) => respond(&method, &path, shared),
        Ok(None) => (400, "text/plain", "bad request\n".into()),
        Err(e) => {
            debug!(error = %e, "metrics: request not read");
            return;
        }
    };
    let (status, content_type, body) = response;
    let _ = stream.set_write_timeout(Some(REQUEST_TIMEOUT));
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        reason(status),
        body.len()
    );
    let written = stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body.as_bytes()));
    if let Err(e) = written {
        debug!(error = %e, "metrics: response not sent");
    }
    let _ = stream.shutdown(Shutdown::Write);
}

/// Read a request head within the limits: `Some((method, path))`, or
/// `None` when it is malformed or too large. An error: the client left or
/// took too long.
fn read_request(stream: &mut TcpStream) -> io::Result<Option<(String, String)>> {
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let mut buf = vec![0u8; MAX_HEAD];
    let mut len = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left))?;
        let n = stream.read(&mut buf[len..])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        len += n;
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&buf[..len]) {
            Ok(httparse::Status::Complete(_)) => {
                let method = request.method.unwrap_or_default().to_string();
                let path = request.path.unwrap_or_default().to_string();
                return Ok(Some((method, path)));
            }
            Ok(httparse::Status::Partial) if len < buf.len() => continue,
            Ok(httparse::Status::Partial) | Err(_) => return Ok(None),
        }
    }
}

fn respond(method: &str, target: &str, shared: &Shared) -> (u16, &'static str, String) {
    let path = target.split('?').next().unwrap_or_default();
    let known = matches!(path, "/metrics" | "/healthz");
    if known && !matches!(method, "GET" | "HEAD") {
        return (405, "text/plain", "only GET and HEAD\n".into());
    }
    let mut answer = match path {
        "/metrics" => (
            200,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            exposition(shared),
        ),
        "/healthz" if shared.shutdown.load(Relaxed) => (503, "text/plain", "draining\n".into()),
        "/healthz" => (200, "text/plain", "serving\n".into()),
        _ => (404, "text/plain", "not found\n".into()),
    };
    if method == "HEAD" {
        answer.2.clear();
    }
    answer
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// The metrics text: every worker's last published counters, labelled by
/// worker, and accepts labelled by listener too.
pub fn exposition(shared: &Shared) -> String {
    let workers: Vec<(String, Counters)> = shared
        .published
        .iter()
        .enumerate()
        .map(|(i, p)| (i.to_string(), p.load()))
        .collect();
    let worker = |id: &str| -> Labels { vec![("worker", id.to_string())] };
    let mut registry = Registry::default();

    let accepted = Family::<Labels, Counter>::default();
    for (i, p) in shared.published.iter().enumerate() {
        for (listener, count) in p.accepts() {
            let labels = vec![
                ("worker", i.to_string()),
                ("listener", listener.to_string()),
            ];
            accepted.get_or_create(&labels).inc_by(count);
        }
    }
    registry.register(
        "echo_connections_accepted",
        "Client connections accepted",
        accepted,
    );

    for (name, help, field) in COUNTERS {
        let family = Family::<Labels, Counter>::default();
        for (id, c) in &workers {
            family.get_or_create(&worker(id)).inc_by(field(c));
        }
        registry.register(name, help, family);
    }
    for (name, help, field) in GAUGES {
        let family = Family::<Labels, Gauge>::default();
        for (id, c) in &workers {
            family
                .get_or_create(&worker(id))
                .set(i64::try_from(field(c)).unwrap_or(i64::MAX));
        }
        registry.register(name, help, family);
    }
    for (name, help, reasons) in BY_REASON {
        let family = Family::<Labels, Counter>::default();
        for (id, c) in &workers {
            for (why, field) in reasons {
                let labels = vec![("worker", id.clone()), ("reason", why.to_string())];
                family.get_or_create(&labels).inc_by(field(c));
            }
        }
        registry.register(name, help, family);
    }
    let mut text = String::new();
    if let Err(e) = encode(&mut text, &registry) {
        warn!(error = %e, "metrics: cannot encode");
    }
    text
}
