//! `echo-bench sweep`: a matrix of connections x size x pipeline, one
//! measurement per point, into one table (or one JSON array).

use crate::check;
use crate::cli::{self, value::count, FormatArgs, LoadArgs, PaceArgs, PointArgs, VerdictArgs};
use crate::exit::{status, Signals};
use crate::net;
use crate::report::Report;
use crate::run::measure;
use anyhow::{Context, Result};
use clap::Args;
use netaddr::Target;

#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Connection counts, comma-separated
    #[arg(short = 'c', long, value_name = "N,..", value_delimiter = ',', default_value = "1,100,1000", value_parser = count::<u64>)]
    pub connections: Vec<u64>,
    /// Message sizes in bytes, comma-separated
    #[arg(short = 's', long, value_name = "BYTES,..", value_delimiter = ',', default_value = "64,16384", value_parser = count::<usize>)]
    pub size: Vec<usize>,
    /// Pipeline depths, comma-separated
    #[arg(short = 'p', long, value_name = "N,..", value_delimiter = ',', default_value = "1,8", value_parser = count::<usize>)]
    pub pipeline: Vec<usize>,
    #[command(flatten)]
    pub pace: PaceArgs,
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub format: FormatArgs,
    #[command(flatten)]
    pub verdict: VerdictArgs,
    /// Server address(es), as for a single run
    #[arg(value_name = "ADDR", required = true, value_parser = netaddr::parse_target)]
    pub addrs: Vec<Target>,
}

impl SweepArgs {
    /// Every point of the matrix, connections outermost.
    fn points(&self) -> Vec<PointArgs> {
        let mut out = Vec::new();
        for &connections in &self.connections {
            for &size in &self.size {
                for &pipeline in &self.pipeline {
                    out.push(PointArgs {
                        connections,
                        size,
                        pipeline,
                    });
                }
            }
        }
        out
    }
}

/// Run every point and print them.
///
/// # Errors
///
/// When a point cannot run at all.
pub fn run(args: &SweepArgs, signals: &Signals) -> Result<u8> {
    args.load.check(&args.size, &args.addrs);
    let max = args.connections.iter().copied().max().unwrap_or(1);
    net::ensure_fd_limit(max, args.load.threads)?;
    let points = args.points();
    let mut reports = Vec::new();
    for (k, &p) in points.iter().enumerate() {
        if signals.interrupted().is_some() {
            break;
        }
        let cfg = args
            .load
            .config(&args.addrs, p, args.pace.rate, args.pace.ramp);
        let what = format!(
            "{} connections x {} B, pipeline {}",
            p.connections, p.size, p.pipeline
        );
        if cli::live_progress() && !args.format.json {
            eprintln!("point {}/{}: {what}", k + 1, points.len());
        }
        let report = measure(&cfg, None, &signals.flag, cli::live_progress())
            .with_context(|| what.clone())?;
        if let Some(e) = report.first_error.as_deref().filter(|_| report.failed()) {
            eprintln!("echo-bench: {what}: {e}");
        }
        reports.push(report);
    }
    args.format
        .print(&reports, || Report::sweep_table(&reports))?;
    let held: Vec<String> = reports
        .iter()
        .flat_map(|r| check::violations(&args.verdict.fail_if, r))
        .collect();
    for line in &held {
        eprintln!("echo-bench: {line}");
    }
    let failed = reports.iter().any(Report::failed);
    Ok(status(failed, signals, !held.is_empty()))
}
