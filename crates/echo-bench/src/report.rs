//! The result of a point as people read it (a table) and as scripts read it
//! (JSON with fixed keys, documented field by field in docs/echo-bench-json.md).

use crate::fault::{Faults, Kind};
use crate::plan::{Config, Outcome};
use crate::shard::Shard;
use crate::stats::{encode_histogram, thousands, Percentiles, Stats};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// One point's result. Field names are the JSON contract.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    /// "report" (JSON Lines from --json-stream also carry "interval" objects).
    #[serde(rename = "type")]
    pub kind: String,
    /// The server address(es), comma-separated.
    pub addr: String,
    /// "tcp", "unix" or "udp".
    pub transport: String,
    /// The readiness backend the workers used.
    pub backend: String,
    /// Worker threads used (never more than connections).
    pub threads: usize,
    /// Connections asked for.
    pub connections: u64,
    /// Message size in bytes.
    pub size: usize,
    /// Messages in flight per connection.
    pub pipeline: usize,
    /// Open-loop rate (messages/s), `null` in closed loop.
    pub rate: Option<f64>,
    /// Connections established (UDP: sockets that got an echo).
    pub connected: u64,
    /// Messages echoed, verified and completed in the window.
    pub messages: u64,
    /// Their bytes (one direction).
    pub bytes: u64,
    /// The window's length in seconds.
    pub duration_s: f64,
    /// `messages / duration_s`.
    pub msgs_per_sec: f64,
    /// `bytes / duration_s / 1e6`.
    pub mbytes_per_sec: f64,
    /// Send of a message's first byte (or its due time, with `rate`) to
    /// receipt of its last echoed byte.
    pub latency_us: Percentiles,
    /// With `rate`: send of a message's first byte to receipt of its last
    /// echoed byte.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_time_us: Option<Percentiles>,
    /// `latency_us`'s histogram: HdrHistogram V2 compressed, base64, ns.
    pub latency_hist: String,
    /// `service_time_us`'s histogram, likewise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_hist: Option<String>,
    /// Failed connections: connect errors, closes, resets, short reads, and
    /// connections not served in the window.
    pub errors: u64,
    /// The part of `errors` that failed to connect.
    pub connect_errors: u64,
    /// Messages whose echo differed from what was sent.
    pub mismatches: u64,
    /// UDP only: datagrams never echoed within the timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost: Option<u64>,
    /// UDP only: echoes that came after their datagram was counted lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late: Option<u64>,
    /// UDP only: echoes of a datagram already echoed (a fault: the run
    /// fails, as on a mismatch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicated: Option<u64>,
    /// UDP only: sockets that got no echo in the window (all lost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unserved: Option<u64>,
    /// The run was cut short by SIGINT or SIGTERM.
    pub interrupted: bool,
    /// One row per target, in the order given.
    pub targets: Vec<TargetRow>,
    /// Server CPU time (user + system) in the window per message, in µs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_cpu_us_per_msg: Option<f64>,
    /// Server peak resident memory (VmHWM), kB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_peak_rss_kb: Option<u64>,
    /// Server resident memory at the end (VmRSS), kB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_rss_kb: Option<u64>,
    /// echo-bench's own CPU time in the window per message, in µs (all its
    /// threads): how close the load generator itself is to saturation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bench_cpu_us_per_msg: Option<f64>,
    /// Faults seen: per kind, and where on which connection.
    #[serde(default)]
    pub faults: Faults,
    /// The shard this report is of (`--shard`, `--shards`), if sharded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    /// `--start-at`, Unix seconds: when the load started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<f64>,
    /// The first failure, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

/// One target's share of a report.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TargetRow {
    /// The target.
    pub addr: String,
    /// Connections established to it.
    pub connected: u64,
    /// Messages completed in the window.
    pub messages: u64,
    /// `messages / duration_s`.
    pub msgs_per_sec: f64,
    /// Failed connections.
    pub errors: u64,
    /// Mismatched echoes.
    pub mismatches: u64,
    /// Latency percentiles, µs.
    pub latency_us: Percentiles,
    /// Its histogram, as `latency_hist`.
    pub latency_hist: String,
}

/// `x` rounded to `digits` decimals.
pub fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// The faults of `s`, with the UDP counts kept apart (`lost` counts the
/// window only) added.
fn faults(s: &Stats, udp: bool) -> Faults {
    let mut f = s.faults.clone();
    if udp {
        f.count(Kind::Lost, s.lost, 0);
        f.count(Kind::Duplicated, s.duplicated, s.duplicated);
    }
    f
}

impl TargetRow {
    fn new(addr: String, s: &Stats, secs: f64) -> TargetRow {
        TargetRow {
            addr,
            connected: s.connected,
            messages: s.messages,
            msgs_per_sec: round(s.messages as f64 / secs, 1),
            errors: s.errors.total(),
            mismatches: s.mismatches,
            latency_us: Percentiles::of(&s.latency),
            latency_hist: encode_histogram(&s.latency),
        }
    }
}

/// `n` and its noun, singular or plural: "1 thread", "2 threads".
pub fn how_many(n: u64, noun: &str) -> String {
    let s = if n == 1 { "" } else { "s" };
    format!("{} {noun}{s}", thousands(n))
}

impl Report {
    /// Build the report for `cfg` from what the run measured.
    pub fn new(cfg: &Config, backend: String, o: &Outcome) -> Report {
        let s = &o.stats;
        let secs = o.window.as_secs_f64().max(1e-9);
        let udp = cfg.transport == crate::plan::Transport::Udp;
        let open_loop = cfg.rate.is_some();
        let targets: Vec<String> = cfg.targets.iter().map(ToString::to_string).collect();
        Report {
            kind: "report".into(),
            addr: targets.join(","),
            transport: cfg.transport.name(&cfg.targets).into(),
            backend,
            threads: cfg
                .threads
                .min(usize::try_from(cfg.connections).unwrap_or(usize::MAX)),
            connections: cfg.connections,
            size: cfg.size,
            pipeline: cfg.pipeline,
            rate: cfg.rate,
            connected: s.connected,
            messages: s.messages,
            bytes: s.bytes,
            duration_s: round(secs, 3),
            msgs_per_sec: round(s.messages as f64 / secs, 1),
            mbytes_per_sec: round(s.bytes as f64 / secs / 1e6, 3),
            latency_us: Percentiles::of(&s.latency),
            service_time_us: open_loop.then(|| Percentiles::of(&s.service)),
            latency_hist: encode_histogram(&s.latency),
            service_hist: open_loop.then(|| encode_histogram(&s.service)),
            errors: s.errors.total(),
            connect_errors: s.errors.connect,
            mismatches: s.mismatches,
            lost: udp.then_some(s.lost),
            late: udp.then_some(s.late),
            duplicated: udp.then_some(s.duplicated),
            unserved: udp.then_some(s.silent),
            interrupted: o.interrupted,
            targets: targets
                .into_iter()
                .zip(&o.per_target)
                .map(|(addr, t)| TargetRow::new(addr, t, secs))
                .collect(),
            server_cpu_us_per_msg: o
                .server_cpu_us
                .map(|us| round(us as f64 / s.messages.max(1) as f64, 3)),
            server_peak_rss_kb: o.server_rss_kb.map(|r| r.1),
            server_rss_kb: o.server_rss_kb.map(|r| r.0),
            bench_cpu_us_per_msg: o
                .own_cpu_us
                .map(|us| round(us as f64 / s.messages.max(1) as f64, 3)),
            faults: faults(s, udp),
            shard: cfg.shard,
            start_at: cfg.start_at.map(crate::shard::unix_secs),
            first_error: s.first_error.clone(),
        }
    }

    /// Whether the run found a fault: an error, a mismatch or a duplicated
    /// datagram (UDP losses are reported, not faults).
    pub fn failed(&self) -> bool {
        self.errors > 0 || self.mismatches > 0 || self.duplicated.unwrap_or(0) > 0
    }

    /// The single-point table.
    pub fn table(&self) -> String {
        self.table_by(&how_many(self.threads as u64, "thread"))
    }

    /// The single-point table, its first line ending with `who` ran it
    /// ("4 threads"; "2 reports (4 threads)" for a merge).
    pub fn table_by(&self, who: &str) -> String {
        let mut t = String::new();
        let rate = self.rate.map_or_else(
            || "closed loop".to_owned(),
            |r| format!("open loop at {r} msg/s"),
        );
        if self.interrupted {
            let _ = writeln!(
                t,
                "INTERRUPTED: the figures cover the window up to the signal"
            );
        }
        let _ = writeln!(
            t,
            "{} {}: {} x {} B, pipeline {}, {}, {} s, backend {}, {who}",
            self.transport,
            self.addr,
            how_many(self.connections, "connection"),
            self.size,
            self.pipeline,
            rate,
            self.duration_s,
            self.backend,
        );
        if let Some(sh) = self.shard {
            let _ = writeln!(t, "  shard         {sh} of the run");
        }
        let _ = writeln!(t, "  connected     {}/{}", self.connected, self.connections);
        let _ = writeln!(
            t,
            "  messages      {:>14}   {:>12} msg/s",
            thousands(self.messages),
            thousands(self.msgs_per_sec as u64)
        );
        let _ = writeln!(
            t,
            "  bytes         {:>14}   {:>12.2} MB/s",
            thousands(self.bytes),
            self.mbytes_per_sec
        );
        let l = &self.latency_us;
        let _ = writeln!(
            t,
            "  latency (us)  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
            l.p50, l.p90, l.p99, l.p999, l.max
        );
        if let Some(l) = &self.service_time_us {
            let _ = writeln!(
                t,
                "  service (us)  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
                l.p50, l.p90, l.p99, l.p999, l.max
            );
        }
        let _ = writeln!(
            t,
            "  errors        {} (connect {})",
            self.errors, self.connect_errors
        );
        let _ = writeln!(t, "  mismatches    {}", self.mismatches);
        if let Some(d) = self.duplicated {
            let _ = writeln!(t, "  duplicated    {d} datagrams (echoed more than once)");
        }
        if let (Some(lost), Some(late)) = (self.lost, self.late) {
            let silent = self.unserved.unwrap_or(0);
            let _ = writeln!(
                t,
                "  lost          {lost} datagrams (late {late}; {silent} sockets got no echo)"
            );
        }
        self.faults_table(&mut t);
        if let Some(cpu) = self.server_cpu_us_per_msg {
            let _ = writeln!(
                t,
                "  server        {cpu} us CPU/msg, RSS {} kB (peak {} kB)",
                self.server_rss_kb.unwrap_or(0),
                self.server_peak_rss_kb.unwrap_or(0)
            );
        }
        if let Some(cpu) = self.bench_cpu_us_per_msg {
            let busy = cpu * self.msgs_per_sec / 1e4;
            let _ = writeln!(
                t,
                "  echo-bench    {cpu} us CPU/msg ({busy:.0}% of one core)"
            );
        }
        if self.targets.len() > 1 {
            for r in &self.targets {
                let _ = writeln!(
                    t,
                    "  target {}: connected {}, {} msg/s, p99 {} us, errors {}, mismatches {}",
                    r.addr,
                    r.connected,
                    thousands(r.msgs_per_sec as u64),
                    r.latency_us.p99,
                    r.errors,
                    r.mismatches
                );
            }
        }
        if let Some(e) = &self.first_error {
            let _ = writeln!(t, "  first error   {e}");
        }
        t
    }

    /// The faults seen, if any: counts, then the first few events.
    fn faults_table(&self, t: &mut String) {
        let seen: Vec<String> = self
            .faults
            .seen
            .iter()
            .filter(|(_, &n)| n > 0)
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        if seen.is_empty() {
            return;
        }
        let _ = writeln!(t, "  faults        {}", seen.join(", "));
        for e in self.faults.events.iter().take(5) {
            let delay = e
                .delay_us
                .map(|d| format!(" by {d} us"))
                .unwrap_or_default();
            let _ = writeln!(
                t,
                "    connection {} {} at offset {}{delay}",
                e.connection, e.kind, e.offset
            );
        }
        let more = self.faults.events.len().saturating_sub(5) as u64 + self.faults.events_dropped;
        if more > 0 {
            let _ = writeln!(t, "    ... and {more} more");
        }
    }

    /// One table for a sweep, a row per point.
    pub fn sweep_table(reports: &[Report]) -> String {
        let mut t = String::new();
        let server = reports.iter().any(|r| r.server_cpu_us_per_msg.is_some());
        let _ = write!(
            t,
            "{:>7} {:>6} {:>4} {:>12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>6} {:>5}",
            "conns",
            "size",
            "pipe",
            "msg/s",
            "MB/s",
            "p50us",
            "p99us",
            "p999us",
            "maxus",
            "errors",
            "mism"
        );
        if server {
            let _ = write!(t, " {:>9} {:>9}", "cpu/msg", "rss_kB");
        }
        t.push('\n');
        for r in reports {
            let l = &r.latency_us;
            let _ = write!(
                t,
                "{:>7} {:>6} {:>4} {:>12} {:>9.2} {:>9} {:>9} {:>9} {:>9} {:>6} {:>5}",
                r.connections,
                r.size,
                r.pipeline,
                thousands(r.msgs_per_sec as u64),
                r.mbytes_per_sec,
                l.p50,
                l.p99,
                l.p999,
                l.max,
                r.errors,
                r.mismatches
            );
            if let Some(cpu) = r.server_cpu_us_per_msg {
                let _ = write!(t, " {:>9} {:>9}", cpu, r.server_peak_rss_kb.unwrap_or(0));
            }
            t.push('\n');
        }
        t
    }
}
