//! `--generate-man` and `--generate-completions`: from the same clap
//! definitions as the parser, plus the environment echo-bench reads.

use crate::cli::Cli;
use crate::shard;
use clap::CommandFactory;
use std::io::{self, Write};
use std::process::ExitCode;

/// Every environment variable echo-bench reads, with what it does: the man
/// page's ENVIRONMENT section.
pub const ENVIRONMENT: [(&str, &str); 2] = [
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
    let mut out = io::stdout().lock();
    let written = match cli.generate_completions {
        Some(shell) => {
            clap_complete::generate(shell, &mut Cli::command(), "echo-bench", &mut out);
            Ok(())
        }
        None => man_page(&mut out),
    };
    match written.and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo-bench: cannot write to stdout: {e}");
            ExitCode::FAILURE
        }
    }
}

/// clap_mangen's sections in its order, with ENVIRONMENT before VERSION.
fn man_page(out: &mut dyn Write) -> io::Result<()> {
    let command = Cli::command();
    let man = clap_mangen::Man::new(command.clone());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    man.render_subcommands_section(out)?;
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
