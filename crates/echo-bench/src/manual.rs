//! `--generate-man` and `--generate-completions`: from the same clap
//! definitions as the parser, plus the environment echo-bench reads.

use crate::cli::Cli;
use crate::shard;
use clap::CommandFactory;
use std::process::ExitCode;

/// Every environment variable echo-bench reads, with what it does: the man
/// page's ENVIRONMENT section.
pub const ENVIRONMENT: [clidoc::Variable; 2] = [
    (
        shard::COUNT_ENV,
        "The shard count N, in place of --shards N (a Kubernetes Indexed Job \
         sets it in the pod template); the index then comes from \
         JOB_COMPLETION_INDEX.",
    ),
    (
        shard::INDEX_ENV,
        "This process's shard index I (0 <= I < N), read with --shards N or \
         ECHO_BENCH_SHARDS; Kubernetes sets it in an Indexed Job's pods. \
         Missing or not below N: exit 2. --shard I/N does not read it.",
    ),
];

/// Print the man page or the completion script on stdout.
pub fn generate(cli: &Cli) -> ExitCode {
    clidoc::generate(Cli::command(), cli.generate_completions, &ENVIRONMENT)
}
