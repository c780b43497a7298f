//! The command line: the modes, the groups of flags they share, and how a
//! mode's flags become a [`Config`]. Each mode takes only the groups that
//! apply to it, so clap itself refuses a flag given to the wrong mode.

pub mod value;

use crate::check::Condition;
use crate::exit::code;
use crate::fault::{self, Kind};
use crate::mode::{chaos::ChaosArgs, merge::MergeArgs, search::SearchArgs, sweep::SweepArgs};
use crate::output::Outputs;
use crate::plan::{Config, Sources, Transport};
use crate::shard::{self, Shard};
use anyhow::Result;
use clap::{Args, CommandFactory, Parser, Subcommand};
use netaddr::Target;
use selector::BackendKind;
use serde::Serialize;
use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};
use value::{count, positive_secs, rate, secs};

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
    pub single: crate::mode::single::SingleArgs,
    /// Print the man page (roff) on stdout and exit
    #[arg(long, exclusive = true)]
    pub generate_man: bool,
    /// Print a completion script for SHELL (bash, zsh, fish, ...) on stdout and exit
    #[arg(long, value_name = "SHELL", exclusive = true)]
    pub generate_completions: Option<clidoc::Shell>,
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
    /// Without --max-rate, a short closed-loop round measures the ceiling
    /// first and the search runs up to it. A round that misses at
    /// --min-rate is run once more before the search gives up: exit
    /// status 3 when it misses again.
    Search(SearchArgs),
    /// Combine --json reports of separate runs into one exact report
    ///
    /// Counts are summed and latency histograms merged (not percentiles
    /// averaged). Runs are taken to have run at the same time: rates add.
    Merge(MergeArgs),
    /// Random hostile sessions at once, checking every byte of those that complete
    ///
    /// Each of --connections slots runs one session after another, each of a
    /// random kind: normal traffic, one-byte writes, huge writes, slow or
    /// stalled reads, half-close, RST with data in flight, connect-and-vanish,
    /// reconnect storms. Exit status 1 on any mismatch, loss or stall.
    Chaos(ChaosArgs),
}

/// One measurement point's shape (single run and search).
#[derive(Clone, Copy, Debug, Args)]
pub struct PointArgs {
    /// Concurrent connections (UDP: sockets)
    #[arg(short = 'c', long, value_name = "N", default_value_t = 50, value_parser = count::<u64>)]
    pub connections: u64,
    /// Message size in bytes
    #[arg(short = 's', long, value_name = "BYTES", default_value_t = 64, value_parser = count::<usize>)]
    pub size: usize,
    /// Messages in flight per connection
    #[arg(short = 'p', long, value_name = "N", default_value_t = 1, value_parser = count::<usize>)]
    pub pipeline: usize,
}

/// An open-loop rate (single run and sweep; search sets the rate itself).
#[derive(Clone, Copy, Debug, Args)]
pub struct PaceArgs {
    /// Open loop: send this many messages per second in total, spread
    /// evenly over the connections, instead of as fast as echoes return
    #[arg(short = 'r', long, value_name = "MSGS/S", value_parser = rate)]
    pub rate: Option<f64>,
    /// With --rate: grow the rate linearly from 0 to --rate over this many
    /// seconds from the start of the warm-up
    #[arg(long, value_name = "SECS", default_value_t = 0.0, value_parser = secs, requires = "rate")]
    pub ramp: f64,
}

/// How a run loads the server (every mode that measures).
#[derive(Clone, Debug, Args)]
pub struct LoadArgs {
    /// Measured seconds, after the warm-up
    #[arg(short = 'd', long, value_name = "SECS", default_value_t = 10.0, value_parser = positive_secs)]
    pub duration: f64,
    /// Seconds of load before measuring (not counted)
    #[arg(long, value_name = "SECS", default_value_t = 1.0, value_parser = secs)]
    pub warmup: f64,
    /// UDP instead of TCP: one socket per connection, datagrams of --size
    #[arg(long)]
    pub udp: bool,
    /// Seconds a TCP connect and its first echo may take before the
    /// connection counts as a connect error
    #[arg(long, value_name = "SECS", default_value_t = 10.0, value_parser = positive_secs)]
    pub connect_timeout: f64,
    /// Open this many new connections per second while the load runs (a
    /// ramp); each joins the load once its first echo is back (TCP and
    /// Unix only)
    #[arg(long, value_name = "N", value_parser = rate, conflicts_with = "udp")]
    pub connect_rate: Option<f64>,
    /// Milliseconds before an unechoed UDP datagram counts as lost
    #[arg(long, value_name = "MS", default_value_t = 1000, value_parser = count::<u64>)]
    pub udp_timeout_ms: u64,
    /// Also report this process's CPU time per echoed message and its memory
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// Split the connections over this many threads
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = count::<usize>)]
    pub threads: usize,
    /// Readiness backend: auto, epoll, poll or select
    #[arg(long, value_name = "NAME", default_value_t = BackendKind::Auto, value_parser = value::backend())]
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

/// The one output choice: a table for people, or JSON for scripts.
#[derive(Clone, Copy, Debug, Args)]
pub struct FormatArgs {
    /// Print JSON on stdout instead of a table (one object; sweep: an
    /// array of reports)
    #[arg(long)]
    pub json: bool,
}

impl FormatArgs {
    /// Print `value` as JSON, or the table `table` makes.
    ///
    /// # Errors
    ///
    /// When `value` cannot be written as JSON.
    pub fn print<T: Serialize>(self, value: &T, table: impl FnOnce() -> String) -> Result<()> {
        if self.json {
            println!("{}", serde_json::to_string(value)?);
        } else {
            print!("{}", table());
        }
        Ok(())
    }
}

/// Conditions that turn a finished run into exit status 3.
#[derive(Clone, Debug, Args)]
pub struct VerdictArgs {
    /// Exit 3 if this condition holds after the run, e.g. p99>2ms,
    /// errors>0, rate<50000, connected<1000 (repeatable)
    #[arg(long, value_name = "EXPR")]
    pub fail_if: Vec<Condition>,
}

/// The addresses `--source-ip` names.
#[derive(Clone, Debug)]
pub struct SourceIps(pub Vec<IpAddr>);

/// At most this many source addresses (a /16).
const MAX_SOURCES: u32 = 65_536;

fn source_ips(s: &str) -> Result<SourceIps, String> {
    if let Some((a, b)) = s.split_once('-') {
        let ip = |x: &str| -> Result<Ipv4Addr, String> {
            x.trim()
                .parse()
                .map_err(|_| format!("{x:?} is not an IPv4 address"))
        };
        let (a, b) = (ip(a)?, ip(b)?);
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

/// Whether stderr is a terminal, so a live progress line can be drawn.
pub fn live_progress() -> bool {
    std::io::stderr().is_terminal()
}

impl LoadArgs {
    /// The point these flags, `point` and the open-loop `rate` and `ramp`
    /// describe, against `targets`.
    pub fn config(
        &self,
        targets: &[Target],
        point: PointArgs,
        rate: Option<f64>,
        ramp: f64,
    ) -> Config {
        let sources = match (&self.source_ip, self.source_base) {
            (Some(list), _) => Sources::List(list.0.clone()),
            (None, Some(base)) => Sources::Base(base),
            (None, None) => Sources::Auto,
        };
        Config {
            targets: targets.to_vec(),
            transport: if self.udp {
                Transport::Udp
            } else {
                Transport::Stream
            },
            connections: point.connections,
            size: point.size,
            duration: Duration::from_secs_f64(self.duration),
            warmup: Duration::from_secs_f64(self.warmup),
            pipeline: point.pipeline,
            rate,
            ramp: Duration::from_secs_f64(ramp),
            udp_timeout: Duration::from_millis(self.udp_timeout_ms),
            connect_timeout: Duration::from_secs_f64(self.connect_timeout),
            connect_rate: self.connect_rate,
            threads: self.threads,
            backend: self.backend,
            sources,
            server_pid: self.server_pid,
            interval: None,
            first_id: 0,
            shard: None,
            start_at: None,
            stall_after: crate::plan::STALL_AFTER,
            delay_threshold: crate::plan::DELAY_THRESHOLD,
        }
    }

    /// What clap cannot check: message sizes against UDP's limit, and the
    /// kinds of the targets. Exits 2 like clap's own errors.
    pub fn check(&self, sizes: &[usize], targets: &[Target]) {
        const UDP_MAX: usize = 65_507;
        if self.udp && sizes.iter().any(|&s| s > UDP_MAX) {
            usage(format!(
                "--size: a UDP datagram holds at most {UDP_MAX} bytes"
            ));
        }
        let unix = targets
            .iter()
            .filter(|t| matches!(t, Target::Unix(_)))
            .count();
        if unix > 0 && unix < targets.len() {
            usage("ADDR: unix: targets cannot be mixed with IP targets".into());
        }
        if unix > 0 && self.udp {
            usage("ADDR: unix: targets are stream sockets; --udp needs IP targets".into());
        }
    }
}

/// Print `msg` as clap prints a usage error and exit 2.
pub fn usage(msg: String) -> ! {
    let e = Cli::command().error(clap::error::ErrorKind::ValueValidation, msg);
    let _ = e.print();
    std::process::exit(code::USAGE.into())
}

/// The outputs written while a single run goes on.
#[derive(Clone, Debug, Args)]
pub struct StreamArgs {
    /// Print a line per interval on stderr (on a terminal: one line,
    /// rewritten); fractions allowed, e.g. 0.5
    #[arg(long, value_name = "SECS", value_parser = positive_secs)]
    pub interval: Option<f64>,
    /// Print one JSON object per interval on stdout (JSON Lines), then the
    /// final report as the last line (instead of --json)
    #[arg(long, conflicts_with = "json")]
    pub json_stream: bool,
    /// Write an HdrHistogram interval log (V2 compressed, one histogram
    /// per interval, ns) to FILE
    #[arg(long, value_name = "FILE")]
    pub hdr_log: Option<PathBuf>,
}

impl StreamArgs {
    /// The interval outputs asked for, if any (intervals of 1 s unless
    /// `--interval` says otherwise).
    ///
    /// # Errors
    ///
    /// When the `--hdr-log` file cannot be created.
    pub fn outputs(&self) -> Result<Option<Outputs>> {
        let len = Duration::from_secs_f64(self.interval.unwrap_or(1.0));
        let o = Outputs::new(
            len,
            self.interval.is_some(),
            self.json_stream,
            self.hdr_log.as_deref(),
        )?;
        Ok(o.any().then_some(o))
    }
}

/// One shard of a run made by several processes, and its start line
/// (single run only).
#[derive(Clone, Debug, Args)]
pub struct ShardArgs {
    /// Run shard I of N (I from 0): this process's exact share of
    /// --connections and --rate, which are the whole run's totals
    #[arg(long, value_name = "I/N", value_parser = shard::parse, conflicts_with = "shards")]
    pub shard: Option<Shard>,
    /// Run as one of N shards, the index I taken from $JOB_COMPLETION_INDEX
    /// (set in a Kubernetes Indexed Job's pods)
    #[arg(long, value_name = "N", env = shard::COUNT_ENV, value_parser = count::<u64>)]
    pub shards: Option<u64>,
    /// Connect, then wait until TIME to start the load (warm-up, then the
    /// window): RFC 3339 (2026-12-05T17:00:00Z) or Unix seconds, ahead of
    /// now by at most 1 h
    #[arg(long, value_name = "TIME", value_parser = shard::start_at)]
    pub start_at: Option<SystemTime>,
}

impl ShardArgs {
    /// The shard asked for: `--shard`, or `--shards` with the index from
    /// the environment. Exits 2 when the index is missing or bad.
    pub fn shard(&self) -> Option<Shard> {
        if self.shard.is_some() {
            return self.shard;
        }
        let n = self.shards?;
        let var = shard::INDEX_ENV;
        let Ok(text) = std::env::var(var) else {
            usage(format!(
                "--shards {n} (or {}) needs the shard index in {var}, or give --shard I/{n}",
                shard::COUNT_ENV
            ));
        };
        let index = text
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("{var}={text:?} is not a whole number"))
            .and_then(|i| Shard::new(i, n).map_err(|e| format!("{var}={text:?}: {e}")));
        match index {
            Ok(s) => Some(s),
            Err(msg) => usage(format!("--shards {n}: {msg}")),
        }
    }
}

/// Faults: how they are told apart, and which are expected (single run).
#[derive(Clone, Debug, Args)]
pub struct FaultArgs {
    /// These faults are expected: they do not fail the run, but each must
    /// be seen (else exit 1). Kinds: delayed, stalled, closed, reset,
    /// corrupted, lost, duplicated, reordered (repeatable)
    #[arg(long, value_name = "KIND,..", value_parser = fault::parse_kinds)]
    pub expect_fault: Vec<Vec<Kind>>,
    /// Seconds without an echoed byte, while bytes are owed, before a
    /// connection counts as stalled
    #[arg(long, value_name = "SECS", default_value_t = 2.0, value_parser = positive_secs)]
    pub stall_after: f64,
    /// Milliseconds: a connection whose messages, from one on, mostly take
    /// longer than this (from their send) counts as delayed
    #[arg(long, value_name = "MS", default_value_t = 20, value_parser = count::<u64>)]
    pub delay_threshold: u64,
}

impl FaultArgs {
    /// The expected kinds, each once.
    pub fn expected(&self) -> Vec<Kind> {
        let mut kinds: Vec<Kind> = self.expect_fault.iter().flatten().copied().collect();
        kinds.sort();
        kinds.dedup();
        kinds
    }
}
