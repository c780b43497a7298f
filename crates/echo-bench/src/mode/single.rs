//! `echo-bench [OPTIONS] ADDR...`: one measurement.

use crate::check;
use crate::cli::{
    self, FaultArgs, FormatArgs, LoadArgs, PaceArgs, PointArgs, ShardArgs, StreamArgs, VerdictArgs,
};
use crate::exit::{status, Signals};
use crate::fault::Kind;
use crate::net;
use crate::output::Outputs;
use crate::plan::Config;
use crate::report::Report;
use crate::run::measure;
use anyhow::Result;
use clap::Args;
use netaddr::Target;
use std::time::Duration;

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
    pub shard: ShardArgs,
    #[command(flatten)]
    pub faults: FaultArgs,
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
    if let Some(sh) = args.shard.shard() {
        take_share(&mut cfg, sh);
    }
    cfg.start_at = args.shard.start_at;
    cfg.stall_after = Duration::from_secs_f64(args.faults.stall_after);
    cfg.delay_threshold = Duration::from_millis(args.faults.delay_threshold);
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
    let failed = judge(&report, &args.faults.expected());
    if let Some(e) = report.first_error.as_deref().filter(|_| failed) {
        eprintln!("echo-bench: {e}");
    }
    let held = check::violations(&args.verdict.fail_if, &report);
    for line in &held {
        eprintln!("echo-bench: {line}");
    }
    if report.interrupted {
        eprintln!("echo-bench: interrupted: reporting the window up to the signal");
    }
    Ok(status(failed, signals, !held.is_empty()))
}

/// Whether the run failed: without `--expect-fault`, on any error,
/// mismatch or duplicate; with it, on any the expected faults do not
/// account for, or on an expected fault never seen (said on stderr).
fn judge(report: &Report, expected: &[Kind]) -> bool {
    if expected.is_empty() {
        return report.failed();
    }
    let failures = report.errors + report.mismatches + report.duplicated.unwrap_or(0);
    let excused = report.faults.excused(expected);
    let mut failed = failures > excused;
    if failed {
        eprintln!(
            "echo-bench: {} failures beyond the expected faults",
            failures - excused
        );
    }
    for k in expected {
        if report.faults.seen(*k) == 0 {
            eprintln!("echo-bench: expected fault {k} never seen");
            failed = true;
        }
    }
    failed
}

/// Narrow `cfg`, the whole run, to shard `sh`'s share of the connections
/// and the rate. Exits 2 when a shard would get no connection.
fn take_share(cfg: &mut Config, sh: crate::shard::Shard) {
    let total = cfg.connections;
    if total < sh.count {
        cli::usage(format!(
            "--connections {total} over {} shards leaves shard {sh} none: \
             give at least one connection per shard",
            sh.count
        ));
    }
    let (first, count) = sh.connections(total);
    cfg.first_id = first;
    cfg.rate = cfg.rate.map(|r| sh.rate(r, total));
    cfg.connect_rate = cfg.connect_rate.map(|r| r * count as f64 / total as f64);
    cfg.connections = count;
    cfg.shard = Some(sh);
}
