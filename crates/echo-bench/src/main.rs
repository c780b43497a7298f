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
mod fault;
mod manual;
mod mode;
mod net;
mod output;
mod pace;
mod pattern;
mod plan;
mod report;
mod run;
mod server;
mod shard;
mod stats;
mod udp;
mod worker;

use clap::Parser;
use cli::{Cli, Command};
use exit::{code, Signals};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.generate_man || cli.generate_completions.is_some() {
        return manual::generate(&cli);
    }
    // Runs that measure stop on the first signal and report; chaos and
    // merge keep the default (a signal ends them).
    let signals = || Signals::install();
    let result = match &cli.command {
        Some(Command::Chaos(args)) => mode::chaos::run(args),
        Some(Command::Merge(args)) => mode::merge::run(args),
        Some(Command::Sweep(args)) => signals().and_then(|s| mode::sweep::run(args, &s)),
        Some(Command::Search(args)) => signals().and_then(|s| mode::search::run(args, &s)),
        None => signals().and_then(|s| mode::single::run(&cli.single, &s)),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("echo-bench: {e:#}");
            ExitCode::from(code::FAILED)
        }
    }
}
