//! echo-bench: a load generator for echo servers that checks every echoed
//! byte and reports throughput and latency.
//!
//! ```text
//! echo-bench [OPTIONS] <ADDR>...                one measurement
//! echo-bench sweep [OPTIONS] <ADDR>...          connections x size x pipeline matrix
//! echo-bench search --slo EXPR [OPTIONS] <ADDR>...   highest rate meeting the SLO
//! echo-bench merge REPORT.json...               several machines' reports as one
//! echo-bench chaos [OPTIONS] <ADDR>             random hostile sessions
//! ```
//!
//! Exit status (see [`exit`]): 0 when every connection was served and
//! every byte matched, 1 on any error or mismatch, 2 for bad flags, 3 when
//! a `--fail-if` condition held (search: no rate met the SLO), 130 / 143
//! when interrupted by SIGINT / SIGTERM (the report still comes out).

#![forbid(unsafe_code)]

mod chaos;
mod check;
mod cli;
mod client;
mod merge;
mod net;
mod output;
mod pace;
mod pattern;
mod plan;
mod report;
mod run;
mod search;
mod server;
mod stats;
mod udp;
mod worker;

use anyhow::{Context, Result};
use clap::Parser;
use cli::{ChaosArgs, Cli, Command, SweepArgs};
use output::Outputs;
use plan::Config;
use report::Report;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Exit statuses, the documented contract.
pub mod exit {
    /// Every connection served, every byte matched, no condition held.
    pub const OK: u8 = 0;
    /// An error or a mismatch, an unreachable server, too few descriptors.
    pub const FAILED: u8 = 1;
    /// Bad flags (clap's own code).
    pub const USAGE: u8 = 2;
    /// A `--fail-if` condition held; `search`: not even the lowest rate met the SLO.
    pub const CONDITION: u8 = 3;
    /// Interrupted: 128 + the signal's number (SIGINT 130, SIGTERM 143).
    pub const INTERRUPTED_BASE: u8 = 128;
}

/// SIGINT and SIGTERM: the first sets the flag (the run stops and reports),
/// a second exits at once with 128 + its number.
#[derive(Debug)]
pub struct Signals {
    /// Set by the first signal.
    pub flag: Arc<AtomicBool>,
    /// Its number.
    pub which: Arc<AtomicUsize>,
}

impl Signals {
    fn install() -> Result<Signals> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        use signal_hook::flag;
        let s = Signals {
            flag: Arc::new(AtomicBool::new(false)),
            which: Arc::new(AtomicUsize::new(0)),
        };
        for sig in [SIGINT, SIGTERM] {
            // Registered first, so it sees the flag before this signal sets
            // it: only a second signal exits here.
            let code = i32::from(exit::INTERRUPTED_BASE) + sig;
            flag::register_conditional_shutdown(sig, code, Arc::clone(&s.flag))
                .context("install signal handler")?;
            flag::register(sig, Arc::clone(&s.flag)).context("install signal handler")?;
            flag::register_usize(sig, Arc::clone(&s.which), sig as usize)
                .context("install signal handler")?;
        }
        Ok(s)
    }

    fn interrupted(&self) -> Option<u8> {
        self.flag.load(Ordering::Relaxed).then(|| {
            let sig = self.which.load(Ordering::Relaxed) as u8;
            exit::INTERRUPTED_BASE.saturating_add(sig)
        })
    }
}

/// The exit status of a finished run: a fault beats an interruption, which
/// beats a `--fail-if` condition.
fn status(failed: bool, signals: &Signals, conditions_held: bool) -> u8 {
    if failed {
        exit::FAILED
    } else if let Some(code) = signals.interrupted() {
        code
    } else if conditions_held {
        exit::CONDITION
    } else {
        exit::OK
    }
}

/// Measure one point, writing interval outputs as they come.
fn measure(cfg: &Config, mut outputs: Option<&mut Outputs>, signals: &Signals) -> Result<Report> {
    let mut sink = |s: &plan::IntervalSample| {
        if let Some(o) = outputs.as_deref_mut() {
            o.write(s);
        }
    };
    let progress = cfg.interval.is_none() && cli::live_progress();
    let mut watch = run::Watch {
        progress,
        interrupt: &signals.flag,
        on_interval: &mut sink,
    };
    let outcome = run::run_point(cfg, &mut watch)?;
    Ok(Report::new(
        cfg,
        cfg.backend.resolve().to_string(),
        &outcome,
    ))
}

fn single(cli: &Cli, signals: &Signals) -> Result<u8> {
    let c = &cli.common;
    let p = &cli.point;
    let mut cfg = cli::config(c, &cli.addrs, p.connections, p.size, p.pipeline);
    let mut outputs = cli::outputs(c)?;
    cfg.interval = outputs.as_ref().map(Outputs::interval);
    net::ensure_fd_limit(cfg.connections, cfg.threads)?;
    let report = measure(&cfg, outputs.as_mut(), signals);
    if let Some(o) = outputs.as_mut() {
        o.finish()?;
    }
    let report = report?;
    if c.json || c.json_stream {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.table());
    }
    if let Some(e) = report.first_error.as_deref().filter(|_| report.failed()) {
        eprintln!("echo-bench: {e}");
    }
    let held = check::violations(&c.fail_if, &report);
    for line in &held {
        eprintln!("echo-bench: {line}");
    }
    if report.interrupted {
        eprintln!("echo-bench: interrupted: reporting the window up to the signal");
    }
    Ok(status(report.failed(), signals, !held.is_empty()))
}

fn sweep(args: &SweepArgs, signals: &Signals) -> Result<u8> {
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
        if signals.interrupted().is_some() {
            break;
        }
        let cfg = cli::config(&args.common, &args.addrs, c, s, p);
        if cli::live_progress() && !args.common.json {
            eprintln!(
                "point {}/{}: {c} connections x {s} B, pipeline {p}",
                k + 1,
                points.len()
            );
        }
        let report = measure(&cfg, None, signals)
            .with_context(|| format!("{c} connections x {s} B, pipeline {p}"))?;
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
    let held: Vec<String> = reports
        .iter()
        .flat_map(|r| check::violations(&args.common.fail_if, r))
        .collect();
    for line in &held {
        eprintln!("echo-bench: {line}");
    }
    let failed = reports.iter().any(Report::failed);
    Ok(status(failed, signals, !held.is_empty()))
}

fn chaos(args: &ChaosArgs) -> Result<bool> {
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
    let signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("echo-bench: {e:#}");
            return ExitCode::from(exit::FAILED);
        }
    };
    let result = match &cli.command {
        Some(Command::Chaos(args)) => {
            chaos(args).map(|ok| if ok { exit::OK } else { exit::FAILED })
        }
        Some(Command::Sweep(args)) => {
            cli::validate(&args.common, &args.size, &args.addrs);
            sweep(args, &signals)
        }
        Some(Command::Search(args)) => {
            cli::validate(&args.common, &[args.point.size], &args.addrs);
            search::run(args, &signals)
        }
        Some(Command::Merge(args)) => merge::run(args),
        None => {
            cli::validate(&cli.common, &[cli.point.size], &cli.addrs);
            single(&cli, &signals)
        }
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("echo-bench: {e:#}");
            ExitCode::from(exit::FAILED)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_beats_an_interruption_which_beats_a_condition() {
        let s = Signals {
            flag: Arc::new(AtomicBool::new(false)),
            which: Arc::new(AtomicUsize::new(0)),
        };
        assert_eq!(status(false, &s, false), exit::OK);
        assert_eq!(status(false, &s, true), exit::CONDITION);
        s.flag.store(true, Ordering::Relaxed);
        s.which.store(15, Ordering::Relaxed);
        assert_eq!(status(false, &s, true), 143);
        assert_eq!(status(true, &s, true), exit::FAILED);
    }
}
