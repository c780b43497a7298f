//! echo-bench: a load generator for echo servers that checks every echoed
//! byte and reports throughput and latency.
//!
//! ```text
//! echo-bench [OPTIONS] <ADDR>            one measurement
//! echo-bench sweep [OPTIONS] <ADDR>      connections x size x pipeline matrix
//! ```
//!
//! Exit status: 0 when every connection was served and every byte matched,
//! 1 on any error or mismatch (or when nothing could be measured), 2 for
//! bad flags.

#![forbid(unsafe_code)]

mod chaos;
mod client;
mod net;
mod pace;
mod pattern;
mod report;
mod run;
mod server;
mod stats;
mod udp;

use anyhow::{anyhow, Context, Result};
use clap::{Args, CommandFactory, Parser, Subcommand};
use report::Report;
use run::Config;
use selector::BackendKind;
use std::io::IsTerminal;
use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

/// Load an echo server and verify every byte it echoes.
///
/// Latency is measured from the send of a message's first byte to the
/// receipt of its last echoed byte; with --rate, from the time the message
/// was due, so a server that stalls the sender is not excused
/// (no coordinated omission).
#[derive(Debug, Parser)]
#[command(
    name = "echo-bench",
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    point: PointArgs,
    #[command(flatten)]
    common: Common,
    /// Server address, e.g. 127.0.0.1:7000
    #[arg(value_name = "ADDR", required = true)]
    addr: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a matrix of connections x size x pipeline into one table (--json: one array)
    Sweep(SweepArgs),
    /// Random hostile sessions at once, checking every byte of those that complete
    ///
    /// Each of --connections slots runs one session after another, each of a
    /// random kind: normal traffic, one-byte writes, huge writes, slow or
    /// stalled reads, half-close, RST with data in flight, connect-and-vanish,
    /// reconnect storms. Exit status 1 on any mismatch, loss or stall.
    Chaos(ChaosArgs),
}

#[derive(Debug, Args)]
struct ChaosArgs {
    /// Sessions running at once
    #[arg(short = 'c', long, value_name = "N", default_value_t = 100, value_parser = positive_usize)]
    connections: usize,
    /// Seconds to start new sessions for (running ones then get up to
    /// --session-timeout to finish)
    #[arg(short = 'd', long, value_name = "SECS", default_value_t = 10.0, value_parser = positive_secs)]
    duration: f64,
    /// Largest stream of a "huge" session, bytes
    #[arg(long, value_name = "BYTES", default_value_t = 4 << 20, value_parser = clap::value_parser!(u64).range(1..))]
    max_bytes: u64,
    /// Seconds without progress before a session counts as stalled
    #[arg(long, value_name = "SECS", default_value_t = 10.0, value_parser = positive_secs)]
    session_timeout: f64,
    /// Random seed, to repeat a run (default: from the clock)
    #[arg(long)]
    seed: Option<u64>,
    /// Report this process's open descriptors and memory before and after
    #[arg(long, value_name = "PID")]
    server_pid: Option<u32>,
    /// Print one JSON object on stdout instead of a table
    #[arg(long)]
    json: bool,
    /// Server address, e.g. 127.0.0.1:7000
    #[arg(value_name = "ADDR")]
    addr: String,
}

#[derive(Debug, Args)]
struct PointArgs {
    /// Concurrent connections (UDP: sockets)
    #[arg(short = 'c', long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    connections: u64,
    /// Message size in bytes
    #[arg(short = 's', long, value_name = "BYTES", default_value_t = 64, value_parser = positive_usize)]
    size: usize,
    /// Messages in flight per connection
    #[arg(short = 'p', long, value_name = "N", default_value_t = 1, value_parser = positive_usize)]
    pipeline: usize,
}

#[derive(Debug, Args)]
struct SweepArgs {
    /// Connection counts, comma-separated
    #[arg(short = 'c', long, value_name = "N,..", value_delimiter = ',', default_value = "1,100,1000", value_parser = clap::value_parser!(u64).range(1..))]
    connections: Vec<u64>,
    /// Message sizes in bytes, comma-separated
    #[arg(short = 's', long, value_name = "BYTES,..", value_delimiter = ',', default_value = "64,16384", value_parser = positive_usize)]
    size: Vec<usize>,
    /// Pipeline depths, comma-separated
    #[arg(short = 'p', long, value_name = "N,..", value_delimiter = ',', default_value = "1,8", value_parser = positive_usize)]
    pipeline: Vec<usize>,
    #[command(flatten)]
    common: Common,
    /// Server address, e.g. 127.0.0.1:7000
    #[arg(value_name = "ADDR")]
    addr: String,
}

#[derive(Clone, Debug, Args)]
struct Common {
    /// Measured seconds, after the warm-up
    #[arg(short = 'd', long, value_name = "SECS", default_value_t = 10.0, value_parser = positive_secs)]
    duration: f64,
    /// Seconds of load before measuring (not counted)
    #[arg(long, value_name = "SECS", default_value_t = 1.0, value_parser = secs)]
    warmup: f64,
    /// Open loop: send this many messages per second in total, spread
    /// evenly over the connections, instead of as fast as echoes return
    #[arg(short = 'r', long, value_name = "MSGS/S", value_parser = positive_secs)]
    rate: Option<f64>,
    /// UDP instead of TCP: one socket per connection, datagrams of --size
    #[arg(long)]
    udp: bool,
    /// Seconds a TCP connect and its first echo may take before the
    /// connection counts as a connect error
    #[arg(long, value_name = "SECS", default_value_t = 10.0, value_parser = positive_secs)]
    connect_timeout: f64,
    /// Milliseconds before an unechoed UDP datagram counts as lost
    #[arg(long, value_name = "MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    udp_timeout_ms: u64,
    /// Also report this process's CPU time per echoed message and its memory
    #[arg(long, value_name = "PID")]
    server_pid: Option<u32>,
    /// Print one JSON object (sweep: an array) on stdout instead of a table
    #[arg(long)]
    json: bool,
    /// Split the connections over this many threads
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = positive_usize)]
    threads: usize,
    /// Readiness backend: auto, epoll, poll or select
    #[arg(long, value_name = "NAME", default_value_t = BackendKind::Auto)]
    backend: BackendKind,
    /// Bind connections to this source address, and the next one every
    /// 20,000 connections (default for 127.x targets: 127.0.0.1, then
    /// 127.0.0.2, ...). Give concurrent echo-bench processes different bases.
    #[arg(long, value_name = "IPV4")]
    source_base: Option<Ipv4Addr>,
}

fn positive_usize(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

fn secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if (0.0..1e9).contains(&x) => Ok(x),
        Ok(_) => Err("must be a number of seconds, at least 0".into()),
        Err(e) => Err(e.to_string()),
    }
}

fn positive_secs(s: &str) -> Result<f64, String> {
    match secs(s)? {
        x if x > 0.0 => Ok(x),
        _ => Err("must be greater than 0".into()),
    }
}

fn resolve(addr: &str) -> Result<SocketAddr> {
    addr.to_socket_addrs()
        .with_context(|| format!("resolve {addr}"))?
        .next()
        .ok_or_else(|| anyhow!("resolve {addr}: no address"))
}

fn config(common: &Common, addr: SocketAddr, c: u64, size: usize, pipeline: usize) -> Config {
    Config {
        addr,
        connections: c,
        size,
        duration: Duration::from_secs_f64(common.duration),
        warmup: Duration::from_secs_f64(common.warmup),
        pipeline,
        rate: common.rate,
        udp: common.udp,
        udp_timeout: Duration::from_millis(common.udp_timeout_ms),
        connect_timeout: Duration::from_secs_f64(common.connect_timeout),
        threads: common.threads,
        backend: common.backend,
        source_base: common.source_base,
        server_pid: common.server_pid,
        progress: !common.json && std::io::stderr().is_terminal(),
    }
}

/// Flag combinations clap cannot check; exits 2 like clap's own errors.
fn validate(common: &Common, sizes: &[usize]) {
    const UDP_MAX: usize = 65_507;
    if common.udp && sizes.iter().any(|&s| s > UDP_MAX) {
        Cli::command()
            .error(
                clap::error::ErrorKind::ValueValidation,
                format!("--size: a UDP datagram holds at most {UDP_MAX} bytes"),
            )
            .exit();
    }
}

fn measure(cfg: &Config) -> Result<Report> {
    let outcome = run::run_point(cfg)?;
    Ok(Report::new(
        cfg,
        cfg.backend.resolve().to_string(),
        &outcome,
    ))
}

fn single(cli: &Cli) -> Result<bool> {
    let addr = resolve(cli.addr.as_deref().unwrap_or_default())?;
    let p = &cli.point;
    let cfg = config(&cli.common, addr, p.connections, p.size, p.pipeline);
    net::ensure_fd_limit(cfg.connections, cfg.threads)?;
    let report = measure(&cfg)?;
    if cli.common.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.table());
    }
    if let Some(e) = report.first_error.as_deref().filter(|_| report.failed()) {
        eprintln!("echo-bench: {e}");
    }
    Ok(!report.failed())
}

fn sweep(args: &SweepArgs) -> Result<bool> {
    let addr = resolve(&args.addr)?;
    let max = args.connections.iter().copied().max().unwrap_or(1);
    net::ensure_fd_limit(max, args.common.threads)?;
    let points: Vec<(u64, usize, usize)> = args
        .connections
        .iter()
        .flat_map(|&c| {
            args.size
                .iter()
                .flat_map(move |&s| args.pipeline.iter().map(move |&p| (c, s, p)))
        })
        .collect();
    let mut reports = Vec::new();
    for (k, &(c, s, p)) in points.iter().enumerate() {
        let cfg = config(&args.common, addr, c, s, p);
        if cfg.progress {
            eprintln!(
                "point {}/{}: {c} connections x {s} B, pipeline {p}",
                k + 1,
                points.len()
            );
        }
        let report =
            measure(&cfg).with_context(|| format!("{c} connections x {s} B, pipeline {p}"))?;
        if let Some(e) = report.first_error.as_deref().filter(|_| report.failed()) {
            eprintln!("echo-bench: {c} connections x {s} B, pipeline {p}: {e}");
        }
        reports.push(report);
    }
    if args.common.json {
        println!("{}", serde_json::to_string(&reports)?);
    } else {
        print!("{}", Report::sweep_table(&reports));
    }
    Ok(reports.iter().all(|r| !r.failed()))
}

fn chaos(args: &ChaosArgs) -> Result<bool> {
    let addr = resolve(&args.addr)?;
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
        // Let the server finish closing what the last sessions left behind.
        std::thread::sleep(Duration::from_millis(200));
        report.server_fds_start = fds_start;
        match (server::fd_count(pid), server::rss_kb(pid)) {
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
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.table(addr, args.connections));
    }
    if let Some(e) = report.first_failure.as_deref() {
        eprintln!("echo-bench: chaos seed {seed}: {e}");
    }
    Ok(report.failures == 0)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Some(Command::Chaos(args)) => chaos(args),
        Some(Command::Sweep(args)) => {
            validate(&args.common, &args.size);
            sweep(args)
        }
        None => {
            validate(&cli.common, &[cli.point.size]);
            single(&cli)
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("echo-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
