//! The settings the event loops run with, resolved from the command line.

use selector::BackendKind;
use std::time::Duration;

use super::{memory, Cli, LogFormat};
use crate::splice::{self, ZeroCopy};

/// `--max-pending-headers-per-ip` with `--max-per-ip` and no flag of its
/// own: at least this many, so that a proxy's burst of new connections
/// (all from its one address, their headers a moment behind) is not cut.
const PENDING_HEADERS_PER_IP: u32 = 8;

/// What every worker needs to know.
#[derive(Debug, Clone)]
pub struct Config {
    pub backend: BackendKind,
    pub max_connections: usize,
    pub max_per_ip: Option<u32>,
    /// Connections waiting for a PROXY header per TCP peer; `None`: no cap
    /// (none is needed with `--proxy-from`: its sources are trusted, and
    /// the others are closed at accept).
    pub max_pending_headers: Option<u32>,
    /// `--proxy-from`: the sources PROXY listeners take headers from;
    /// empty: any.
    pub proxy_from: Vec<netaddr::Cidr>,
    pub max_pending: usize,
    /// `--max-memory`, resolved.
    pub max_memory: usize,
    pub idle_timeout: Option<Duration>,
    pub tcp_keepalive: Option<Duration>,
    pub shutdown_timeout: Duration,
    pub udp_rate: Option<u64>,
    pub trace: bool,
    pub stats_interval: Option<Duration>,
    pub zero_copy: ZeroCopy,
    /// Pipes each worker may hold for the zero-copy path, and their size.
    pub pipes_per_worker: usize,
    pub pipe_size: usize,
    /// How often worker 0 pings systemd's watchdog (from `WATCHDOG_USEC`).
    pub watchdog: Option<Duration>,
    /// Whether loops publish their counters (for the stats line or metrics).
    pub publish: bool,
    /// `--log-format json`: the stats line goes out as a JSON log line too.
    pub log_json: bool,
}

impl Config {
    /// The configuration for `fds` descriptors left once the server's own
    /// are counted: with zero-copy on, an eighth of them (at most 4,096)
    /// are kept for pipes, so pipes never take the descriptors that new
    /// clients need; the rest bound `--max-connections` by default.
    pub fn new(cli: &Cli, fds: usize) -> Config {
        let nonzero = |d: Duration| (!d.is_zero()).then_some(d);
        let max_pending = usize::try_from(cli.max_pending).unwrap_or(usize::MAX);
        let max_memory = match cli.max_memory {
            Some(b) => usize::try_from(b).unwrap_or(usize::MAX),
            None => {
                let chosen = memory::default_budget();
                tracing::info!(
                    max_memory = chosen.bytes,
                    "memory budget {}: {}",
                    memory::human(chosen.bytes as u64),
                    chosen.why
                );
                chosen.bytes
            }
        };
        // A pipe holds what --max-pending allows, up to the kernel's cap.
        let pipe_size = max_pending.min(splice::pipe_max_size());
        let pipes = match cli.zero_copy {
            ZeroCopy::Off => false,
            ZeroCopy::Always => true,
            ZeroCopy::Auto => memory::pipes_fit(max_memory, max_pending, pipe_size),
        };
        let pipe_fds = if pipes { (fds / 8).min(4096) } else { 0 };
        let default_max_connections = (fds - pipe_fds).max(1);
        Config {
            backend: cli.backend,
            max_connections: cli.max_connections.map_or(default_max_connections, |n| {
                usize::try_from(n).unwrap_or(usize::MAX)
            }),
            max_per_ip: cli.max_per_ip,
            max_pending_headers: match cli.proxy_from.is_empty() {
                true => cli
                    .max_pending_headers_per_ip
                    .or(cli.max_per_ip.map(|n| n.max(PENDING_HEADERS_PER_IP))),
                false => None,
            },
            proxy_from: cli.proxy_from.clone(),
            max_pending,
            max_memory,
            idle_timeout: nonzero(cli.idle_timeout),
            tcp_keepalive: nonzero(cli.tcp_keepalive),
            shutdown_timeout: cli.shutdown_timeout,
            udp_rate: cli.udp_rate,
            trace: cli.trace,
            stats_interval: nonzero(cli.stats_interval),
            zero_copy: cli.zero_copy,
            pipes_per_worker: pipe_fds / 2 / usize::from(cli.workers.max(1)),
            pipe_size,
            watchdog: None,
            publish: !cli.stats_interval.is_zero() || cli.metrics.is_some(),
            log_json: cli.log_format == LogFormat::Json,
        }
    }
}
