//! `--generate-man` and `--generate-completions`: from the same clap
//! definitions as the parser, plus the environment the server reads, which
//! clap does not know about.

use crate::config::Cli;
use clap::CommandFactory;
use std::io::{self, Write};
use std::process::ExitCode;

/// Every environment variable the server reads, with what it does: the man
/// page's ENVIRONMENT section. A test checks that each variable the code
/// reads is listed here.
pub const ENVIRONMENT: [(&str, &str); 7] = [
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
    let mut out = io::stdout().lock();
    let written = match cli.generate_completions {
        Some(shell) => {
            clap_complete::generate(shell, &mut Cli::command(), "echo-server", &mut out);
            Ok(())
        }
        None => man_page(&mut out),
    };
    match written.and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo-server: cannot write to stdout: {e}");
            ExitCode::FAILURE
        }
    }
}

/// clap_mangen's sections in its order, with ENVIRONMENT before VERSION
/// (where man-pages(7) puts it, after the options and notes).
fn man_page(out: &mut dyn Write) -> io::Result<()> {
    let command = Cli::command();
    let man = clap_mangen::Man::new(command.clone());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    if command.get_after_help().is_some() || command.get_after_long_help().is_some() {
        man.render_extra_section(out)?;
    }
    out.write_all(environment_section().as_bytes())?;
    man.render_version_section(out)
}

/// The ENVIRONMENT section in roff.
fn environment_section() -> String {
    let mut roff = String::from(".SH ENVIRONMENT\n");
    for (name, text) in ENVIRONMENT {
        roff.push_str(&format!(
            ".TP\n\\fB{}\\fR\n{}\n",
            escape(name),
            escape(text)
        ));
    }
    roff
}

/// Text as roff takes it literally: backslashes and hyphens escaped, and no
/// line starting with a control character.
fn escape(text: &str) -> String {
    let text = text.replace('\\', "\\e").replace('-', "\\-");
    match text.starts_with(['.', '\'']) {
        true => format!("\\&{text}"),
        false => text,
    }
}
