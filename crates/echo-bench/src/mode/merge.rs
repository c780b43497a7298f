//! `echo-bench merge`: reports of runs on several load machines as one.
//!
//! Counts add up; latency histograms (carried in every `--json` report)
//! are merged and the percentiles read from the sum, so the result is
//! exact, not an average of percentiles. The runs are taken to have run at
//! the same time against the same servers: rates add, and the window is
//! the longest one.

use crate::cli::FormatArgs;
use crate::exit::code;
use crate::report::{round, Report, TargetRow};
use crate::stats::{decode_histogram, encode_histogram, new_histogram, Percentiles};
use anyhow::{bail, Context, Result};
use clap::Args;
use hdrhistogram::Histogram;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct MergeArgs {
    #[command(flatten)]
    pub format: FormatArgs,
    /// Reports written by `echo-bench --json` (or the last line of
    /// --json-stream), one per file
    #[arg(value_name = "REPORT.json", required = true)]
    pub files: Vec<PathBuf>,
}

/// Read, merge, print; exit 1 when the merged run failed.
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
    let merged = merge(&reports)?;
    args.format.print(&merged, || merged.table())?;
    Ok(if merged.failed() {
        code::FAILED
    } else {
        code::OK
    })
}

/// The report in `path`: one JSON object, or JSON Lines whose last
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
        m.unserved = sum_opt(m.unserved, r.unserved);
        m.interrupted |= r.interrupted;
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
    if reports.len() > 1 {
        // Per-machine figures do not add up into anything meaningful.
        m.server_cpu_us_per_msg = None;
        m.server_rss_kb = None;
        m.server_peak_rss_kb = None;
        m.bench_cpu_us_per_msg = None;
    }
    Ok(m)
}
