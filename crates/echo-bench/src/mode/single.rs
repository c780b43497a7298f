//! `echo-bench [OPTIONS] ADDR...`: one measurement.

use crate::check;
use crate::cli::{self, FormatArgs, LoadArgs, PaceArgs, PointArgs, StreamArgs, VerdictArgs};
use crate::exit::{status, Signals};
use crate::net;
use crate::output::Outputs;
use crate::run::measure;
use anyhow::Result;
use clap::Args;
use netaddr::Target;

/// The flags of a single run.
#[derive(Debug, Args)]
pub struct SingleArgs {
    #[command(flatten)]
    pub point: PointArgs,
    #[command(flatten)]
    pub pace: PaceArgs,
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub streams: StreamArgs,
    #[command(flatten)]
    pub format: FormatArgs,
    #[command(flatten)]
    pub verdict: VerdictArgs,
    #[arg(
        value_name = "ADDR",
        required = true,
        value_parser = netaddr::parse_target,
        help = "Server address(es): IP:PORT, [V6]:PORT, HOST:PORT or unix:/path; \
                connections go round-robin over several"
    )]
    pub addrs: Vec<Target>,
}

/// Run one measurement and print its report.
///
/// # Errors
///
/// When the run cannot start or its outputs cannot be written.
pub fn run(args: &SingleArgs, signals: &Signals) -> Result<u8> {
    args.load.check(&[args.point.size], &args.addrs);
    let mut cfg = args
        .load
        .config(&args.addrs, args.point, args.pace.rate, args.pace.ramp);
    let mut outputs = args.streams.outputs()?;
    cfg.interval = outputs.as_ref().map(Outputs::interval);
    net::ensure_fd_limit(cfg.connections, cfg.threads)?;
    let report = measure(&cfg, outputs.as_mut(), &signals.flag, cli::live_progress());
    if let Some(o) = outputs.as_mut() {
        o.finish()?;
    }
    let report = report?;
    let format = FormatArgs {
        json: args.format.json || args.streams.json_stream,
    };
    format.print(&report, || report.table())?;
    if let Some(e) = report.first_error.as_deref().filter(|_| report.failed()) {
        eprintln!("echo-bench: {e}");
    }
    let held = check::violations(&args.verdict.fail_if, &report);
    for line in &held {
        eprintln!("echo-bench: {line}");
    }
    if report.interrupted {
        eprintln!("echo-bench: interrupted: reporting the window up to the signal");
    }
    Ok(status(report.failed(), signals, !held.is_empty()))
}
