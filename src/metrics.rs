//! `--metrics ADDR`: Prometheus metrics and a health check over HTTP, on a
//! listener and a thread of their own.
//!
//! The endpoint only reads what the workers already publish (each loop
//! stores its counters into relaxed atomics after every round, see
//! [`crate::stats::Published`]); it takes no lock a loop takes and sends
//! nothing to a loop, so a slow or hostile scraper can never stall the echo
//! traffic. Requests are parsed by `httparse` and served by a small event
//! loop of the endpoint's own ([`crate::http`]), every connection at once, with
//! strict limits: 8 KiB of request head, 32 headers, 2 seconds to send it
//! (then 400), at most 128 connections open (a new one closes the oldest);
//! anything malformed gets 400 and the connection is closed, as is every
//! connection after its one response. `/metrics` is rendered at most every
//! 100 ms; `/healthz` is live.
//!
//! | path       | answer                                                   |
//! |------------|----------------------------------------------------------|
//! | `/metrics` | 200, OpenMetrics text (Prometheus scrapes it)            |
//! | `/healthz` | 200 `serving`, or 503 `draining` once shutdown began     |
//! | other      | 404; a method other than GET or HEAD gets 405            |

use std::net::TcpListener;
use std::sync::Arc;

use anyhow::Result;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tracing::warn;

use crate::server::Shared;
use crate::stats::Counters;

mod http;

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
            ("proxy_untrusted", |c| c.refused_untrusted),
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

/// Bind the endpoint's listener.
pub fn bind(addr: &netaddr::SocketAddrs) -> Result<TcpListener> {
    crate::http::bind(addr, "metrics")
}

/// Serve the endpoint on a thread of its own until the process exits.
pub fn serve(listener: TcpListener, shared: Arc<Shared>) -> Result<()> {
    crate::http::serve(listener, http::MetricsRoutes::new(shared))
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
    register_faults(&mut registry, &workers);
    let mut text = String::new();
    if let Err(e) = encode(&mut text, &registry) {
        warn!(error = %e, "metrics: cannot encode");
    }
    text
}

/// `echo_faults_injected_total{worker, kind}`: faults that took effect
/// (`--fault`), every kind listed.
fn register_faults(registry: &mut Registry, workers: &[(String, Counters)]) {
    let family = Family::<Labels, Counter>::default();
    for (id, c) in workers {
        for (kind, n) in crate::fault::KINDS.iter().zip(c.faults_injected()) {
            let labels = vec![("worker", id.clone()), ("kind", kind.name.to_string())];
            family.get_or_create(&labels).inc_by(n);
        }
    }
    registry.register(
        "echo_faults_injected",
        "Faults injected (--fault) that took effect, by kind",
        family,
    );
}
