//! `echo-bench search`: the highest fixed rate that meets an SLO, found by
//! bisection over bounded rounds.
//!
//! Without `--max-rate`, a short closed-loop round first measures the
//! ceiling (the rate the server gives as fast as echoes return), and the
//! search runs up to it. Round 1 runs `--min-rate`; if it misses the SLO it
//! is run once more (one noisy round must not end a search), and a second
//! miss means there is nothing to find (exit 3). Round 2 runs the top; if
//! it meets the SLO, that is the answer. Every later round runs the middle
//! of the bracket `[highest met, lowest missed]` and narrows it, until
//! `--rounds` rounds (the retry not counted), `--max-time` seconds, or a
//! bracket narrower than `--precision`.

use crate::check::Condition;
use crate::cli::value::{fraction, positive_secs, rate};
use crate::cli::{self, FormatArgs, LoadArgs, PointArgs};
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

/// The longest the closed-loop ceiling round measures, seconds.
const CEILING_SECS: f64 = 2.0;

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// A condition every round must meet, e.g. 'p99<1ms' (repeatable);
    /// errors and mismatches always fail a round
    #[arg(long, value_name = "EXPR", required = true)]
    pub slo: Vec<Condition>,
    /// Lowest rate to try, messages/s
    #[arg(long, value_name = "MSGS/S", default_value_t = 1000.0, value_parser = rate)]
    pub min_rate: f64,
    /// Highest rate to try, messages/s (default: what a short closed-loop
    /// round reaches, measured first)
    #[arg(long, value_name = "MSGS/S", value_parser = rate)]
    pub max_rate: Option<f64>,
    /// At most this many rounds (a retry at --min-rate not counted)
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(2..=64))]
    pub rounds: u32,
    /// Start no round after this many seconds
    #[arg(long, value_name = "SECS", default_value_t = 600.0, value_parser = positive_secs)]
    pub max_time: f64,
    /// Stop when the bracket is narrower than this fraction of its top
    #[arg(long, value_name = "FRACTION", default_value_t = 0.02, value_parser = fraction)]
    pub precision: f64,
    #[command(flatten)]
    pub point: PointArgs,
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub format: FormatArgs,
    /// Server address(es), as for a single run
    #[arg(value_name = "ADDR", required = true, value_parser = netaddr::parse_target)]
    pub addrs: Vec<Target>,
}

/// One round as a table row and a JSON object.
#[derive(Debug, Serialize)]
struct Round {
    rate: f64,
    met: bool,
    /// The second run at `--min-rate`, after the first missed.
    retry: bool,
    /// Why it missed, in words.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    missed: Vec<String>,
    report: Report,
}

/// The search's result on stdout with `--json`.
#[derive(Debug, Serialize)]
struct Outcome {
    #[serde(rename = "type")]
    kind: &'static str,
    slo: Vec<String>,
    /// The top of the bracket: `--max-rate`, or the ceiling measured.
    max_rate: f64,
    /// The closed-loop round that measured the ceiling (without `--max-rate`).
    ceiling: Option<Report>,
    best_rate: Option<f64>,
    rounds: Vec<Round>,
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
        let mut what = format!("errors {}, mismatches {}", r.errors, r.mismatches);
        if let Some(d) = r.duplicated.filter(|&d| d > 0) {
            what.push_str(&format!(", duplicated {d}"));
        }
        missed.push(what);
    }
    missed
}

/// The rounds run so far and what they found.
struct Search<'a> {
    args: &'a SearchArgs,
    signals: &'a Signals,
    rounds: Vec<Round>,
}

impl Search<'_> {
    /// Run one round at `rate` and record it; whether it met the SLO.
    fn round(&mut self, rate: f64, retry: bool) -> Result<bool> {
        let a = self.args;
        let cfg = a.load.config(&a.addrs, a.point, Some(rate), 0.0);
        let report = measure(&cfg, None, &self.signals.flag, cli::live_progress())?;
        let missed = judge(&a.slo, &report);
        let met = missed.is_empty() && !report.interrupted;
        if cli::live_progress() && !a.format.json {
            let verdict = if met { "met" } else { "missed" };
            eprintln!("round {}: {rate} msg/s {verdict}", self.rounds.len() + 1);
        }
        self.rounds.push(Round {
            rate,
            met,
            retry,
            missed,
            report,
        });
        Ok(met)
    }

    /// Rounds that count against `--rounds`.
    fn counted(&self) -> u32 {
        self.rounds.iter().filter(|r| !r.retry).count() as u32
    }
}

/// The closed-loop rate the server reaches in a short round: the top of
/// the bracket when `--max-rate` is not given.
fn ceiling(args: &SearchArgs, signals: &Signals) -> Result<Report> {
    let mut load = args.load.clone();
    load.duration = load.duration.min(CEILING_SECS);
    let cfg = load.config(&args.addrs, args.point, None, 0.0);
    let report = measure(&cfg, None, &signals.flag, cli::live_progress())?;
    if report.failed() {
        bail!(
            "the closed-loop round that measures the ceiling failed: {}",
            report
                .first_error
                .as_deref()
                .unwrap_or("errors or mismatches")
        );
    }
    Ok(report)
}

/// Run the search and print it.
///
/// # Errors
///
/// When a round cannot run at all (no connection, bad descriptor limit),
/// or the ceiling round fails.
pub fn run(args: &SearchArgs, signals: &Signals) -> Result<u8> {
    args.load.check(&[args.point.size], &args.addrs);
    if let Some(max) = args.max_rate.filter(|&m| m < args.min_rate) {
        cli::usage(format!(
            "--max-rate {max} is below --min-rate {}",
            args.min_rate
        ));
    }
    net::ensure_fd_limit(args.point.connections, args.load.threads)?;
    let started = Instant::now();
    let budget = Duration::from_secs_f64(args.max_time);
    let ceiling = match args.max_rate {
        Some(_) => None,
        None => Some(ceiling(args, signals)?),
    };
    let top = match (&ceiling, args.max_rate) {
        (_, Some(max)) => max,
        (Some(c), None) => c.msgs_per_sec.round().max(args.min_rate),
        (None, None) => args.min_rate,
    };
    let mut s = Search {
        args,
        signals,
        rounds: Vec::new(),
    };
    let best = bisect(&mut s, top, started, budget)?;
    let out = Outcome {
        kind: "search",
        slo: args.slo.iter().map(ToString::to_string).collect(),
        max_rate: top,
        ceiling,
        best_rate: best,
        rounds: s.rounds,
    };
    args.format.print(&out, || table(&out))?;
    Ok(match (best, signals.interrupted()) {
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

/// The rounds: the bottom (retried once on a miss), the top, then the
/// middle of the bracket. The highest rate met, if any.
fn bisect(s: &mut Search<'_>, top: f64, started: Instant, budget: Duration) -> Result<Option<f64>> {
    let a = s.args;
    let stop = |s: &Search<'_>| {
        s.signals.interrupted().is_some() || started.elapsed() >= budget || s.counted() >= a.rounds
    };
    if s.signals.interrupted().is_some() {
        return Ok(None);
    }
    let mut met = s.round(a.min_rate, false)?;
    if !met && s.signals.interrupted().is_none() {
        met = s.round(a.min_rate, true)?;
    }
    if !met {
        return Ok(None);
    }
    let mut lo = a.min_rate;
    if top <= lo || stop(s) {
        return Ok(Some(lo));
    }
    if s.round(top, false)? {
        return Ok(Some(top));
    }
    let mut hi = top;
    while !stop(s) && (hi - lo) / hi > a.precision {
        let mid = ((lo + hi) / 2.0).round();
        if mid <= lo || mid >= hi {
            break;
        }
        if s.round(mid, false)? {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(Some(lo))
}

fn table(o: &Outcome) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "SLO: {}", o.slo.join(", "));
    if let Some(c) = &o.ceiling {
        let _ = writeln!(
            t,
            "ceiling: {} msg/s in closed loop over {} s; searching up to {} msg/s",
            c.msgs_per_sec, c.duration_s, o.max_rate
        );
    }
    let _ = writeln!(
        t,
        "{:>5} {:>12} {:>12} {:>9} {:>9} {:>9} {:>6} {:>5}  result",
        "round", "rate", "msg/s", "p50us", "p99us", "p999us", "errors", "mism"
    );
    for (k, r) in o.rounds.iter().enumerate() {
        let l = &r.report.latency_us;
        let mut verdict = if r.met {
            "met".to_owned()
        } else {
            format!("missed ({})", r.missed.join("; "))
        };
        if r.retry {
            verdict.push_str(" [retry]");
        }
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
