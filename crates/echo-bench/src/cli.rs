//! The command line, and how it becomes a [`Config`].

use crate::check::Condition;
use crate::exit::code;
use crate::output::Outputs;
use crate::plan::{Config, Sources, Transport};
use anyhow::Result;
use clap::{Args, CommandFactory, Parser, Subcommand};
use netaddr::Target;
use selector::BackendKind;
use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Load an echo server and verify every byte it echoes.
///
/// Latency is measured from the send of a message's first byte to the
/// receipt of its last echoed byte; with --rate, from the time the message
/// was due, so a server that stalls the sender is not excused
/// (no coordinated omission); the time from the actual send is then
/// reported as service time.
///
/// Exit status: 0 all served and matched; 1 an error or mismatch; 2 bad
/// flags or addresses; 3 a --fail-if condition held (search: no rate met
/// the SLO); 130/143 interrupted by
/// SIGINT/SIGTERM (the report of what was measured still comes out; a
/// second signal exits at once).
#[derive(Debug, Parser)]
#[command(
    name = "echo-bench",
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub point: PointArgs,
    #[command(flatten)]
    pub common: Common,
    #[arg(
        value_name = "ADDR",
        required = true,
        value_parser = netaddr::parse_target,
        help = "Server address(es): IP:PORT, [V6]:PORT, HOST:PORT or unix:/path; \
                connections go round-robin over several"
    )]
    pub addrs: Vec<Target>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a matrix of connections x size x pipeline into one table (--json: one array)
    Sweep(SweepArgs),
    /// Find the highest --rate that meets an SLO, by bisection
    ///
    /// Runs fixed-rate rounds between --min-rate and --max-rate (bounded by
    /// --rounds and --max-time) and prints every round and the highest
    /// rate that met every --slo condition with no error or mismatch.
    /// Exit status 3 when not even --min-rate met it.
    Search(crate::search::SearchArgs),
    /// Combine --json reports of separate runs into one exact report
    ///
    /// Counts are summed and latency histograms merged (not percentiles
    /// averaged). Runs are taken to have run at the same time: rates add.
    Merge(crate::merge::MergeArgs),
    /// Random hostile sessions at once, checking every byte of those that complete
    ///
    /// Each of --connections slots runs one session after another, each of a
    /// random kind: normal traffic, one-byte writes, huge writes, slow or
    /// stalled reads, half-close, RST with data in flight, connect-and-vanish,
    /// reconnect storms. Exit status 1 on any mismatch, loss or stall.
    Chaos(ChaosArgs),
}

#[derive(Debug, Args)]
pub struct ChaosArgs {
    /// Sessions running at once
    #[arg(short = 'c', long, value_name = "N", default_value_t = 100, value_parser = positive_usize)]
    pub connections: usize,
    /// Seconds to start new sessions for (running ones then finish: each
    /// may take up to ten --session-timeouts while it keeps making progress)
    #[arg(short = 'd', long, value_name = "SECS", default_value_t = 10.0, value_parser = positive_secs)]
    pub duration: f64,
    /// Largest stream of a "huge" session, bytes
    #[arg(long, value_name = "BYTES", default_value_t = 4 << 20, value_parser = clap::value_parser!(u64).range(1..))]
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
    /// Print one JSON object on stdout instead of a table
    #[arg(long)]
    pub json: bool,
    /// Server address, e.g. 127.0.0.1:7000
    #[arg(value_name = "ADDR", value_parser = netaddr::parse_socket_addr)]
    pub addr: SocketAddr,
}

#[derive(Debug, Args)]
pub struct PointArgs {
    /// Concurrent connections (UDP: sockets)
    #[arg(short = 'c', long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    pub connections: u64,
    /// Message size in bytes
    #[arg(short = 's', long, value_name = "BYTES", default_value_t = 64, value_parser = positive_usize)]
    pub size: usize,
    /// Messages in flight per connection
    #[arg(short = 'p', long, value_name = "N", default_value_t = 1, value_parser = positive_usize)]
    pub pipeline: usize,
}

#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Connection counts, comma-separated
    #[arg(short = 'c', long, value_name = "N,..", value_delimiter = ',', default_value = "1,100,1000", value_parser = clap::value_parser!(u64).range(1..))]
    pub connections: Vec<u64>,
    /// Message sizes in bytes, comma-separated
    #[arg(short = 's', long, value_name = "BYTES,..", value_delimiter = ',', default_value = "64,16384", value_parser = positive_usize)]
    pub size: Vec<usize>,
    /// Pipeline depths, comma-separated
    #[arg(short = 'p', long, value_name = "N,..", value_delimiter = ',', default_value = "1,8", value_parser = positive_usize)]
    pub pipeline: Vec<usize>,
    #[command(flatten)]
    pub common: Common,
    /// Server address(es), as for a single run
    #[arg(value_name = "ADDR", required = true, value_parser = netaddr::parse_target)]
    pub addrs: Vec<Target>,
}

#[derive(Clone, Debug, Args)]
pub struct Common {
    /// Measured seconds, after the warm-up
    #[arg(short = 'd', long, value_name = "SECS", default_value_t = 10.0, value_parser = positive_secs)]
    pub duration: f64,
    /// Seconds of load before measuring (not counted)
    #[arg(long, value_name = "SECS", default_value_t = 1.0, value_parser = secs)]
    pub warmup: f64,
    /// Open loop: send this many messages per second in total, spread
    /// evenly over the connections, instead of as fast as echoes return
    #[arg(short = 'r', long, value_name = "MSGS/S", value_parser = positive_secs)]
    pub rate: Option<f64>,
    /// With --rate: grow the rate linearly from 0 to --rate over this many
    /// seconds from the start of the warm-up
    #[arg(long, value_name = "SECS", default_value_t = 0.0, value_parser = secs, requires = "rate")]
    pub ramp: f64,
    /// UDP instead of TCP: one socket per connection, datagrams of --size
    #[arg(long)]
    pub udp: bool,
    /// Seconds a TCP connect and its first echo may take before the
    /// connection counts as a connect error
    #[arg(long, value_name = "SECS", default_value_t = 10.0, value_parser = positive_secs)]
    pub connect_timeout: f64,
    /// Open this many new connections per second while the load runs (a
    /// ramp); each joins the load once its first echo is back
    #[arg(long, value_name = "N", value_parser = positive_secs)]
    pub connect_rate: Option<f64>,
    /// Milliseconds before an unechoed UDP datagram counts as lost
    #[arg(long, value_name = "MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub udp_timeout_ms: u64,
    /// Also report this process's CPU time per echoed message and its memory
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// Print one JSON object (sweep: an array) on stdout instead of a table
    #[arg(long)]
    pub json: bool,
    /// Print a line per interval on stderr (on a terminal: one line,
    /// rewritten); fractions allowed, e.g. 0.5
    #[arg(long, value_name = "SECS", value_parser = positive_secs)]
    pub interval: Option<f64>,
    /// Print one JSON object per interval on stdout (JSON Lines), then the
    /// final report as the last line
    #[arg(long)]
    pub json_stream: bool,
    /// Write an HdrHistogram interval log (V2 compressed, one histogram
    /// per interval, ns) to FILE
    #[arg(long, value_name = "FILE")]
    pub hdr_log: Option<PathBuf>,
    /// Exit 3 if this condition holds after the run, e.g. p99>2ms,
    /// errors>0, rate<50000, connected<1000 (repeatable)
    #[arg(long, value_name = "EXPR")]
    pub fail_if: Vec<Condition>,
    /// Split the connections over this many threads
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = positive_usize)]
    pub threads: usize,
    /// Readiness backend: auto, epoll, poll or select
    #[arg(long, value_name = "NAME", default_value_t = BackendKind::Auto)]
    pub backend: BackendKind,
    /// Bind connections to this source address, and the next one every
    /// 20,000 connections (default for 127.x targets: 127.0.0.1, then
    /// 127.0.0.2, ...). Give concurrent echo-bench processes different bases.
    #[arg(long, value_name = "IPV4", conflicts_with = "source_ip")]
    pub source_base: Option<Ipv4Addr>,
    /// Bind connections round-robin to these local addresses: a range
    /// A-B (IPv4) or a comma-separated list
    #[arg(long, value_name = "A-B|A,B,..", value_parser = source_ips)]
    pub source_ip: Option<SourceIps>,
}

/// The addresses `--source-ip` names.
#[derive(Clone, Debug)]
pub struct SourceIps(pub Vec<IpAddr>);

/// At most this many source addresses (a /16).
const MAX_SOURCES: u32 = 65_536;

fn source_ips(s: &str) -> Result<SourceIps, String> {
    if let Some((a, b)) = s.split_once('-') {
        let a: Ipv4Addr = a
            .trim()
            .parse()
            .map_err(|_| format!("{a:?} is not an IPv4 address"))?;
        let b: Ipv4Addr = b
            .trim()
            .parse()
            .map_err(|_| format!("{b:?} is not an IPv4 address"))?;
        let (lo, hi) = (u32::from(a), u32::from(b));
        if hi < lo {
            return Err(format!("range {a}-{b} runs backwards"));
        }
        if hi - lo >= MAX_SOURCES {
            return Err(format!(
                "range {a}-{b} has more than {MAX_SOURCES} addresses"
            ));
        }
        return Ok(SourceIps(
            (lo..=hi).map(|ip| IpAddr::V4(ip.into())).collect(),
        ));
    }
    s.split(',')
        .map(|ip| {
            ip.trim()
                .parse::<IpAddr>()
                .map_err(|_| format!("{ip:?} is not an IP address"))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(SourceIps)
}

pub fn positive_usize(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

pub fn secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if (0.0..1e9).contains(&x) => Ok(x),
        Ok(_) => Err("must be a number of seconds, at least 0".into()),
        Err(e) => Err(e.to_string()),
    }
}

pub fn positive_secs(s: &str) -> Result<f64, String> {
    match secs(s)? {
        x if x > 0.0 => Ok(x),
        _ => Err("must be greater than 0".into()),
    }
}

/// Whether stderr is a terminal, so a live progress line can be drawn.
pub fn live_progress() -> bool {
    std::io::stderr().is_terminal()
}

/// The point `common` and the arguments describe.
pub fn config(common: &Common, targets: &[Target], c: u64, size: usize, pipeline: usize) -> Config {
    let sources = match (&common.source_ip, common.source_base) {
        (Some(list), _) => Sources::List(list.0.clone()),
        (None, Some(base)) => Sources::Base(base),
        (None, None) => Sources::Auto,
    };
    Config {
        targets: targets.to_vec(),
        transport: if common.udp {
            Transport::Udp
        } else {
            Transport::Stream
        },
        connections: c,
        size,
        duration: Duration::from_secs_f64(common.duration),
        warmup: Duration::from_secs_f64(common.warmup),
        pipeline,
        rate: common.rate,
        ramp: Duration::from_secs_f64(common.ramp),
        udp_timeout: Duration::from_millis(common.udp_timeout_ms),
        connect_timeout: Duration::from_secs_f64(common.connect_timeout),
        connect_rate: common.connect_rate,
        threads: common.threads,
        backend: common.backend,
        sources,
        server_pid: common.server_pid,
        interval: None,
    }
}

/// The interval outputs `common` asks for, if any (intervals of 1 s unless
/// `--interval` says otherwise).
///
/// # Errors
///
/// When the `--hdr-log` file cannot be created.
pub fn outputs(common: &Common) -> Result<Option<Outputs>> {
    let len = Duration::from_secs_f64(common.interval.unwrap_or(1.0));
    let o = Outputs::new(
        len,
        common.interval.is_some(),
        common.json_stream,
        common.hdr_log.as_deref(),
    )?;
    Ok(o.any().then_some(o))
}

/// Flag combinations clap cannot check; exits 2 like clap's own errors.
pub fn validate(common: &Common, sizes: &[usize], targets: &[Target], single: bool) {
    const UDP_MAX: usize = 65_507;
    let fail = |msg: String| -> ! {
        let e = Cli::command().error(clap::error::ErrorKind::ValueValidation, msg);
        let _ = e.print();
        std::process::exit(code::USAGE.into())
    };
    if common.udp && sizes.iter().any(|&s| s > UDP_MAX) {
        fail(format!(
            "--size: a UDP datagram holds at most {UDP_MAX} bytes"
        ));
    }
    let unix = targets
        .iter()
        .filter(|t| matches!(t, Target::Unix(_)))
        .count();
    if unix > 0 && unix < targets.len() {
        fail("ADDR: unix: targets cannot be mixed with IP targets".into());
    }
    if unix > 0 && common.udp {
        fail("ADDR: unix: targets are stream sockets; --udp needs IP targets".into());
    }
    if !single {
        let one_run_only = [
            ("--interval", common.interval.is_some()),
            ("--json-stream", common.json_stream),
            ("--hdr-log", common.hdr_log.is_some()),
        ];
        if let Some((flag, _)) = one_run_only.iter().find(|(_, on)| *on) {
            fail(format!(
                "{flag} applies to a single run, not to sweep or search"
            ));
        }
    }
    if common.udp && common.connect_rate.is_some() {
        fail("--connect-rate paces stream connects; UDP sockets need none".into());
    }
    if common.json && common.json_stream {
        fail("--json and --json-stream: choose one (--json-stream ends with the report)".into());
    }
}
