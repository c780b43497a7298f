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
//! Exit status (see [`exit::code`]): 0 when every connection was served and
//! every byte matched, 1 on any error or mismatch, 2 for bad flags, 3 when
//! a `--fail-if` condition held (search: no rate met the SLO), 130 / 143
//! when interrupted by SIGINT / SIGTERM (the report still comes out).

#![forbid(unsafe_code)]

mod chaos;
mod check;
mod cli;
mod client;
mod exit;
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
use exit::{code, status, Signals};
use output::Outputs;
use report::Report;
use run::measure;
use std::process::ExitCode;
use std::time::Duration;

fn single(cli: &Cli, signals: &Signals) -> Result<u8> {
    let c = &cli.common;
    let p = &cli.point;
    let mut cfg = cli::config(c, &cli.addrs, p.connections, p.size, p.pipeline);
    let mut outputs = cli::outputs(c)?;
    cfg.interval = outputs.as_ref().map(Outputs::interval);
    net::ensure_fd_limit(cfg.connections, cfg.threads)?;
    let report = measure(&cfg, outputs.as_mut(), &signals.flag, cli::live_progress());
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
        let report = measure(&cfg, None, &signals.flag, cli::live_progress())
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
    // Runs that measure stop on the first signal and report; chaos and
    // merge keep the default (a signal ends them).
    let signals = || Signals::install();
    let result = match &cli.command {
        Some(Command::Chaos(args)) => {
            chaos(args).map(|ok| if ok { code::OK } else { code::FAILED })
        }
        Some(Command::Merge(args)) => merge::run(args),
        Some(Command::Sweep(args)) => {
            cli::validate(&args.common, &args.size, &args.addrs, false);
            signals().and_then(|s| sweep(args, &s))
        }
        Some(Command::Search(args)) => {
            cli::validate(&args.common, &[args.point.size], &args.addrs, false);
            signals().and_then(|s| search::run(args, &s))
        }
        None => {
            cli::validate(&cli.common, &[cli.point.size], &cli.addrs, true);
            signals().and_then(|s| single(&cli, &s))
        }
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("echo-bench: {e:#}");
            ExitCode::from(code::FAILED)
        }
    }
}
