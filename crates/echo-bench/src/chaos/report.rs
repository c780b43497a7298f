//! What a chaos run found, as a table or JSON.

use crate::stats::thousands;
use std::net::SocketAddr;

/// Counts per kind and overall.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct KindCount {
    /// Sessions started.
    pub started: u64,
    /// Sessions that ended as they should.
    pub ok: u64,
    /// Sessions that failed.
    pub failed: u64,
}

/// The outcome of a chaos run. Field names are the JSON keys.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ChaosReport {
    /// The seed used.
    pub seed: u64,
    /// Seconds sessions were started for.
    pub duration_s: f64,
    /// Sessions started.
    pub sessions: u64,
    /// Sessions that ended as they should (RST and vanish included).
    pub completed: u64,
    /// Bytes written.
    pub bytes_sent: u64,
    /// Echoed bytes received and checked.
    pub bytes_verified: u64,
    /// Failed sessions (the sum of the kinds below).
    pub failures: u64,
    /// Echoes that differed from what was sent.
    pub mismatches: u64,
    /// Completing sessions cut short: end of file or reset before all bytes.
    pub lost: u64,
    /// Sessions with no progress for the session timeout, or unfinished
    /// when the run ended (`--duration` plus the session timeout).
    pub stalls: u64,
    /// Connects that failed.
    pub connect_errors: u64,
    /// Per kind.
    pub kinds: std::collections::BTreeMap<&'static str, KindCount>,
    /// Server descriptors open before the run (`--server-pid`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_fds_start: Option<u64>,
    /// Server descriptors open after the run, once they settled: read
    /// again until the count falls back to `server_fds_start` or three
    /// seconds pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_fds_end: Option<u64>,
    /// Server resident memory after the run, kB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_rss_kb: Option<u64>,
    /// Server peak resident memory, kB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_peak_rss_kb: Option<u64>,
    /// The first failure, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_failure: Option<String>,
}

impl ChaosReport {
    /// The report as a table.
    pub fn table(&self, addr: SocketAddr, connections: usize) -> String {
        use std::fmt::Write as _;
        let mut t = String::new();
        let _ = writeln!(
            t,
            "chaos {addr}: {}, {} s, seed {}",
            crate::report::how_many(connections as u64, "connection"),
            self.duration_s,
            self.seed
        );
        let n = |v: u64| thousands(v);
        let _ = writeln!(
            t,
            "  sessions      {} (completed {})",
            n(self.sessions),
            n(self.completed)
        );
        let _ = writeln!(
            t,
            "  bytes         {} sent, {} echoed and verified",
            n(self.bytes_sent),
            n(self.bytes_verified)
        );
        let _ = writeln!(
            t,
            "  failures      {} (mismatches {}, lost {}, stalls {}, connect {})",
            n(self.failures),
            n(self.mismatches),
            n(self.lost),
            n(self.stalls),
            n(self.connect_errors)
        );
        let _ = writeln!(
            t,
            "  {:<12} {:>10} {:>10} {:>10}",
            "kind", "started", "ok", "failed"
        );
        for (name, k) in &self.kinds {
            let _ = writeln!(
                t,
                "  {name:<12} {:>10} {:>10} {:>10}",
                n(k.started),
                n(k.ok),
                n(k.failed)
            );
        }
        if let (Some(a), Some(b)) = (self.server_fds_start, self.server_fds_end) {
            let settled = if b <= a {
                ""
            } else {
                " (still above after 3 s)"
            };
            let _ = writeln!(
                t,
                "  server        open fds {} before, {} after the sessions closed{settled}",
                n(a),
                n(b)
            );
            let _ = writeln!(
                t,
                "  server        RSS {} kB after (peak {} kB)",
                n(self.server_rss_kb.unwrap_or(0)),
                n(self.server_peak_rss_kb.unwrap_or(0))
            );
        }
        if let Some(e) = &self.first_failure {
            let _ = writeln!(t, "  first failure {e}");
        }
        t
    }
}
