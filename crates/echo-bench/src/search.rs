//! `echo-bench search`: the highest fixed rate that meets an SLO, found by
//! bisection over bounded rounds.
//!
//! Round 1 runs `--min-rate`; if it misses the SLO there is nothing to
//! find (exit 3). Round 2 runs `--max-rate`; if it meets the SLO, that is
//! the answer. Every later round runs the middle of the bracket
//! `[highest met, lowest missed]` and narrows it, until `--rounds` rounds,
//! `--max-time` seconds, or a bracket narrower than `--precision`.

use crate::check::Condition;
use crate::cli::{self, positive_secs, Common, PointArgs};
use crate::exit::{code, Signals};
use crate::net;
use crate::report::Report;
use crate::run::measure;
use anyhow::{bail, Result};
use clap::Args;
use netaddr::Target;
use serde::Serialize;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// A condition every round must meet, e.g. 'p99<1ms' (repeatable);
    /// errors and mismatches always fail a round
    #[arg(long, value_name = "EXPR", required = true)]
    pub slo: Vec<Condition>,
    /// Lowest rate to try, messages/s
    #[arg(long, value_name = "MSGS/S", default_value_t = 1000.0, value_parser = positive_secs)]
    pub min_rate: f64,
    /// Highest rate to try, messages/s
    #[arg(long, value_name = "MSGS/S", value_parser = positive_secs)]
    pub max_rate: f64,
    /// At most this many rounds
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(2..=64))]
    pub rounds: u32,
    /// Start no round after this many seconds
    #[arg(long, value_name = "SECS", default_value_t = 600.0, value_parser = positive_secs)]
    pub max_time: f64,
    /// Stop when the bracket is narrower than this fraction of its top
    #[arg(long, value_name = "FRACTION", default_value_t = 0.02, value_parser = positive_secs)]
    pub precision: f64,
    #[command(flatten)]
    pub point: PointArgs,
    #[command(flatten)]
    pub common: Common,
    /// Server address(es), as for a single run
    #[arg(value_name = "ADDR", required = true, value_parser = netaddr::parse_target)]
    pub addrs: Vec<Target>,
}

/// One round as a table row and a JSON object.
#[derive(Debug, Serialize)]
struct Round {
    rate: f64,
    met: bool,
    /// Why it missed, in words.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    missed: Vec<String>,
    report: Report,
}

/// The search's result on stdout with `--json`.
#[derive(Debug, Serialize)]
struct Outcome<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    slo: Vec<String>,
    best_rate: Option<f64>,
    rounds: &'a [Round],
}

fn judge(slo: &[Condition], r: &Report) -> Vec<String> {
    let mut missed: Vec<String> = slo
        .iter()
        .filter_map(|c| {
            let (holds, seen) = c.eval(r);
            (!holds).then(|| format!("{c}: {seen}"))
        })
        .collect();
    if r.failed() {
        missed.push(format!("errors {}, mismatches {}", r.errors, r.mismatches));
    }
    missed
}

/// Run the search and print it.
///
/// # Errors
///
/// When a round cannot run at all (no connection, bad descriptor limit).
pub fn run(args: &SearchArgs, signals: &Signals) -> Result<u8> {
    if args.common.rate.is_some() {
        bail!("search sets the rate itself: leave out --rate");
    }
    if !args.common.fail_if.is_empty() {
        bail!("search judges rounds by --slo: leave out --fail-if");
    }
    if args.max_rate < args.min_rate {
        bail!(
            "--max-rate {} is below --min-rate {}",
            args.max_rate,
            args.min_rate
        );
    }
    net::ensure_fd_limit(args.point.connections, args.common.threads)?;
    let started = Instant::now();
    let budget = Duration::from_secs_f64(args.max_time);
    let (mut lo, mut hi) = (None::<f64>, None::<f64>);
    let mut rounds: Vec<Round> = Vec::new();
    for k in 0..args.rounds {
        if signals.interrupted().is_some() || (k > 0 && started.elapsed() >= budget) {
            break;
        }
        let rate = match (k, lo, hi) {
            (0, _, _) => args.min_rate,
            (1, _, _) => args.max_rate,
            (_, Some(l), Some(h)) if (h - l) / h > args.precision => ((l + h) / 2.0).round(),
            _ => break,
        };
        let mut common = args.common.clone();
        common.rate = Some(rate);
        let p = &args.point;
        let cfg = cli::config(&common, &args.addrs, p.connections, p.size, p.pipeline);
        let report = measure(&cfg, None, &signals.flag, cli::live_progress())?;
        let missed = judge(&args.slo, &report);
        let met = missed.is_empty() && !report.interrupted;
        if cli::live_progress() && !args.common.json {
            let verdict = if met { "met" } else { "missed" };
            eprintln!("round {}: {rate} msg/s {verdict}", k + 1);
        }
        if met {
            lo = Some(rate);
        } else {
            hi = Some(rate);
        }
        rounds.push(Round {
            rate,
            met,
            missed,
            report,
        });
        if k == 0 && !met {
            break;
        }
        if k == 1 && met {
            break;
        }
    }
    let out = Outcome {
        kind: "search",
        slo: args.slo.iter().map(ToString::to_string).collect(),
        best_rate: lo,
        rounds: &rounds,
    };
    if args.common.json {
        println!("{}", serde_json::to_string(&out)?);
    } else {
        print!("{}", table(&out));
    }
    Ok(match (lo, signals.interrupted()) {
        (_, Some(code)) => code,
        (Some(_), None) => code::OK,
        (None, None) => {
            eprintln!(
                "echo-bench: not even --min-rate {} met the SLO",
                args.min_rate
            );
            code::CONDITION
        }
    })
}

fn table(o: &Outcome<'_>) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "SLO: {}", o.slo.join(", "));
    let _ = writeln!(
        t,
        "{:>5} {:>12} {:>12} {:>9} {:>9} {:>9} {:>6} {:>5}  result",
        "round", "rate", "msg/s", "p50us", "p99us", "p999us", "errors", "mism"
    );
    for (k, r) in o.rounds.iter().enumerate() {
        let l = &r.report.latency_us;
        let verdict = if r.met {
            "met".to_owned()
        } else {
            format!("missed ({})", r.missed.join("; "))
        };
        let _ = writeln!(
            t,
            "{:>5} {:>12} {:>12} {:>9} {:>9} {:>9} {:>6} {:>5}  {verdict}",
            k + 1,
            r.rate,
            r.report.msgs_per_sec,
            l.p50,
            l.p99,
            l.p999,
            r.report.errors,
            r.report.mismatches
        );
    }
    match o.best_rate {
        Some(rate) => {
            let _ = writeln!(t, "highest rate that met the SLO: {rate} msg/s");
        }
        None => {
            let _ = writeln!(t, "no rate tried met the SLO");
        }
    }
    t
}
