//! `--generate-man` and `--generate-completions`: from the same clap
//! definitions as the parser, plus the environment the server reads, which
//! clap does not know about.

use crate::config::Cli;
use clap::CommandFactory;
use std::process::ExitCode;

/// Every environment variable the server reads, with what it does: the man
/// page's ENVIRONMENT section. A test checks that each variable the code
/// reads is listed here.
pub const ENVIRONMENT: [clidoc::Variable; 7] = [
    (
        "RUST_LOG",
        "Log filter (tracing's EnvFilter syntax, e.g. echo_server=debug); \
         overrides -v and -q.",
    ),
    (
        "LISTEN_FDS",
        "Sockets passed by systemd socket activation (sd_listen_fds(3)): \
         that many descriptors from 3 on, served beside the flags' sockets. \
         Taken only when LISTEN_PID names this process; unset at startup so \
         nothing the server starts inherits them.",
    ),
    (
        "LISTEN_PID",
        "The process the passed sockets are meant for: LISTEN_FDS is \
         ignored unless it is this server's pid.",
    ),
    (
        "LISTEN_FDNAMES",
        "Colon-separated names of the passed sockets (FileDescriptorName= \
         in the .socket unit): a TCP listener named proxy expects a PROXY \
         protocol header, as --listen-proxy.",
    ),
    (
        "NOTIFY_SOCKET",
        "The service manager's notification socket (sd_notify(3), a path or \
         @abstract name): the server sends READY=1 once it is listening, \
         STOPPING=1 when it drains and STATUS= lines. Unset: nothing is sent.",
    ),
    (
        "WATCHDOG_USEC",
        "The service manager's watchdog period (WatchdogSec= in the unit): \
         WATCHDOG=1 is sent every half period, from the timer loop.",
    ),
    (
        "WATCHDOG_PID",
        "The process WATCHDOG_USEC is meant for: the watchdog is pinged \
         only when it is unset or names this process.",
    ),
];

/// Print the man page or the completion script on stdout.
pub fn generate(cli: &Cli) -> ExitCode {
    clidoc::generate(Cli::command(), cli.generate_completions, &ENVIRONMENT)
}
