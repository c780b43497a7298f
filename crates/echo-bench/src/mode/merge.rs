//! `echo-bench merge`: reports of runs on several load machines as one.
//!
//! Counts add up; latency histograms (carried in every `--json` report)
//! are merged and the percentiles read from the sum, so the result is
//! exact, not an average of percentiles. The runs are taken to have run at
//! the same time against the same servers: rates add, and the window is
//! the longest one. Reports of shards (`--shard`) must make one whole
//! run: [`sharding`] checks that.

mod sharding;

use crate::check;
use crate::cli::{FormatArgs, VerdictArgs};
use crate::exit::{code, verdict};
use crate::report::{how_many, round, Report, TargetRow};
use crate::stats::{decode_histogram, encode_histogram, new_histogram, Percentiles};
use anyhow::{bail, Context, Result};
use clap::Args;
use hdrhistogram::Histogram;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct MergeArgs {
    #[command(flatten)]
    pub format: FormatArgs,
    #[command(flatten)]
    pub verdict: VerdictArgs,
    /// Reports written by `echo-bench --json` (or the last line of
    /// --json-stream), one per file
    #[arg(value_name = "REPORT.json", required = true)]
    pub files: Vec<PathBuf>,
}

/// Read, check, merge, print. The exit status is a single run's: 1 when
/// the merged run failed, 3 when a `--fail-if` condition holds on it, 2
/// when the reports are not one run (a shard twice or missing, mixed runs).
///
/// # Errors
///
/// When a file cannot be read or is not a report, or the reports differ in
/// message size or pipeline (they measured different things).
pub fn run(args: &MergeArgs) -> Result<u8> {
    let reports = args
        .files
        .iter()
        .map(|p| read(p))
        .collect::<Result<Vec<_>>>()?;
    let named: Vec<(String, &Report)> = args
        .files
        .iter()
        .map(|p| p.display().to_string())
        .zip(&reports)
        .collect();
    if let Err(msg) = sharding::one_run(&named) {
        eprintln!("echo-bench: merge: {msg}");
        return Ok(code::USAGE);
    }
    let merged = merge(&reports)?;
    let who = format!(
        "{} ({})",
        how_many(reports.len() as u64, "report"),
        how_many(merged.threads as u64, "thread")
    );
    args.format.print(&merged, || merged.table_by(&who))?;
    if let Some(e) = merged.first_error.as_deref().filter(|_| merged.failed()) {
        eprintln!("echo-bench: {e}");
    }
    let held = check::violations(&args.verdict.fail_if, &merged);
    for line in &held {
        eprintln!("echo-bench: {line}");
    }
    Ok(verdict(merged.failed(), None, !held.is_empty()))
}

/// The report in `path`: one JSON object, or JSON Lines (or a log with
/// other lines mixed in, as `kubectl logs` gives) whose last
/// `"type": "report"` line is taken.
fn read(path: &Path) -> Result<Report> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    let line = text
        .lines()
        .rev()
        .find(|l| l.contains("\"type\":\"report\""))
        .unwrap_or(text.trim());
    serde_json::from_str(line)
        .with_context(|| format!("{}: not an echo-bench --json report", path.display()))
}

fn hist(text: &str, what: &str) -> Result<Histogram<u64>> {
    decode_histogram(text).map_err(|e| anyhow::anyhow!("{what}: {e}"))
}

fn add(into: &mut Histogram<u64>, text: &str, what: &str) -> Result<()> {
    into.add(hist(text, what)?)
        .map_err(|e| anyhow::anyhow!("{what}: {e:?}"))
}

/// Several reports as one.
///
/// # Errors
///
/// As [`run`].
pub fn merge(reports: &[Report]) -> Result<Report> {
    let Some(first) = reports.first() else {
        bail!("no reports to merge");
    };
    let mut m = first.clone();
    let mut latency = new_histogram();
    let mut service = first.service_hist.as_ref().map(|_| new_histogram());
    let mut rows: Vec<(TargetRow, Histogram<u64>)> = Vec::new();
    let sum_opt = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
    };
    for (k, r) in reports.iter().enumerate() {
        let what = format!("report {}", k + 1);
        if (r.size, r.pipeline, &r.transport) != (first.size, first.pipeline, &first.transport) {
            bail!(
                "{what} measured {} B x pipeline {} over {}, report 1 {} B x pipeline {} over {}",
                r.size,
                r.pipeline,
                r.transport,
                first.size,
                first.pipeline,
                first.transport
            );
        }
        add(&mut latency, &r.latency_hist, &what)?;
        if let (Some(h), Some(text)) = (&mut service, &r.service_hist) {
            add(h, text, &what)?;
        }
        for t in &r.targets {
            let h = hist(&t.latency_hist, &what)?;
            match rows.iter_mut().find(|(row, _)| row.addr == t.addr) {
                Some((row, sum)) => {
                    row.connected += t.connected;
                    row.messages += t.messages;
                    row.msgs_per_sec = round(row.msgs_per_sec + t.msgs_per_sec, 1);
                    row.errors += t.errors;
                    row.mismatches += t.mismatches;
                    sum.add(&h).map_err(|e| anyhow::anyhow!("{what}: {e:?}"))?;
                }
                None => rows.push((t.clone(), h)),
            }
        }
        if k == 0 {
            continue;
        }
        for (mine, theirs) in [(&mut m.addr, &r.addr), (&mut m.backend, &r.backend)] {
            if !mine.split(',').any(|x| x == theirs) {
                mine.push(',');
                mine.push_str(theirs);
            }
        }
        m.threads += r.threads;
        m.connections += r.connections;
        m.rate = m.rate.zip(r.rate).map(|(a, b)| a + b);
        m.connected += r.connected;
        m.messages += r.messages;
        m.bytes += r.bytes;
        m.duration_s = m.duration_s.max(r.duration_s);
        m.msgs_per_sec = round(m.msgs_per_sec + r.msgs_per_sec, 1);
        m.mbytes_per_sec = round(m.mbytes_per_sec + r.mbytes_per_sec, 3);
        m.errors += r.errors;
        m.connect_errors += r.connect_errors;
        m.mismatches += r.mismatches;
        m.lost = sum_opt(m.lost, r.lost);
        m.late = sum_opt(m.late, r.late);
        m.duplicated = sum_opt(m.duplicated, r.duplicated);
        m.faults.merge(&r.faults);
        m.unserved = sum_opt(m.unserved, r.unserved);
        m.interrupted |= r.interrupted;
        m.rate = m.rate.map(|x| round(x, 6));
        m.first_error = m.first_error.take().or_else(|| r.first_error.clone());
    }
    m.latency_us = Percentiles::of(&latency);
    m.latency_hist = encode_histogram(&latency);
    m.service_time_us = service.as_ref().map(Percentiles::of);
    m.service_hist = service.as_ref().map(encode_histogram);
    m.targets = rows
        .into_iter()
        .map(|(mut row, h)| {
            row.latency_us = Percentiles::of(&h);
            row.latency_hist = encode_histogram(&h);
            row
        })
        .collect();
    // The whole run, not one shard of it.
    m.shard = None;
    if reports.len() > 1 {
        // Per-machine figures do not add up into anything meaningful.
        m.server_cpu_us_per_msg = None;
        m.server_rss_kb = None;
        m.server_peak_rss_kb = None;
        m.bench_cpu_us_per_msg = None;
    }
    Ok(m)
}
