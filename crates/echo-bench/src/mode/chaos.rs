//! `echo-bench chaos`: random hostile sessions at once (the sessions
//! themselves are [`crate::chaos`]).

use crate::chaos;
use crate::cli::value::{count, positive_secs};
use crate::cli::FormatArgs;
use crate::exit::code;
use crate::{net, server};
use anyhow::Result;
use clap::Args;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct ChaosArgs {
    /// Sessions running at once
    #[arg(short = 'c', long, value_name = "N", default_value_t = 100, value_parser = count::<usize>)]
    pub connections: usize,
    /// Seconds to start new sessions for (running ones then finish: each
    /// may take up to ten --session-timeouts while it keeps making progress)
    #[arg(short = 'd', long, value_name = "SECS", default_value_t = 10.0, value_parser = positive_secs)]
    pub duration: f64,
    /// Largest stream of a "huge" session, bytes
    #[arg(long, value_name = "BYTES", default_value_t = 4 << 20, value_parser = count::<u64>)]
    pub max_bytes: u64,
    /// Seconds without progress before a session counts as stalled
    #[arg(long, value_name = "SECS", default_value_t = 10.0, value_parser = positive_secs)]
    pub session_timeout: f64,
    /// Random seed, to repeat a run (default: from the clock)
    #[arg(long)]
    pub seed: Option<u64>,
    /// Report this process's open descriptors and memory before and after
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    #[command(flatten)]
    pub format: FormatArgs,
    /// Server address, e.g. 127.0.0.1:7000
    #[arg(value_name = "ADDR", value_parser = netaddr::parse_socket_addr)]
    pub addr: SocketAddr,
}

/// How long the server may take to close what the last sessions left
/// behind before its descriptor count is read for the report.
const SETTLE: Duration = Duration::from_secs(3);

/// The server's descriptor count once it falls back to `start`, or the
/// count when [`SETTLE`] has passed (the report then says it had not).
fn settled_fds(pid: u32, start: u64) -> Result<u64> {
    let deadline = std::time::Instant::now() + SETTLE;
    loop {
        let fds = server::fd_count(pid)?;
        if fds <= start || std::time::Instant::now() >= deadline {
            return Ok(fds);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Run the sessions and print the report: exit 0, or 1 on any failure.
///
/// # Errors
///
/// When the run cannot start or the server process cannot be read.
pub fn run(args: &ChaosArgs) -> Result<u8> {
    let addr = args.addr;
    net::ensure_fd_limit(args.connections as u64, 1)?;
    let seed = args.seed.unwrap_or_else(|| {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        t.map_or(1, |d| d.as_nanos() as u64)
    });
    let cfg = chaos::ChaosConfig {
        addr,
        connections: args.connections,
        duration: Duration::from_secs_f64(args.duration),
        max_bytes: args.max_bytes,
        session_timeout: Duration::from_secs_f64(args.session_timeout),
        seed,
    };
    let fds_start = args.server_pid.map(server::fd_count).transpose()?;
    let mut report = chaos::run(&cfg)?;
    if let Some(pid) = args.server_pid {
        report.server_fds_start = fds_start;
        let settled = settled_fds(pid, fds_start.unwrap_or(0));
        match (settled, server::rss_kb(pid)) {
            (Ok(fds), Ok((rss, peak))) => {
                report.server_fds_end = Some(fds);
                report.server_rss_kb = Some(rss);
                report.server_peak_rss_kb = Some(peak);
            }
            // Gone: still report what the sessions saw, and fail the run.
            _ => {
                report.failures += 1;
                report
                    .first_failure
                    .get_or_insert_with(|| format!("server process {pid} is gone"));
            }
        }
    }
    args.format
        .print(&report, || report.table(addr, args.connections))?;
    if let Some(e) = report.first_failure.as_deref() {
        eprintln!("echo-bench: chaos seed {seed}: {e}");
    }
    Ok(if report.failures == 0 {
        code::OK
    } else {
        code::FAILED
    })
}
