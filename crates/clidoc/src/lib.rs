//! The man page and shell completions of the workspace's binaries, from
//! the same clap definitions as their parsers (`--generate-man`,
//! `--generate-completions SHELL`), plus what clap does not know: the
//! environment variables a program reads, as the man page's ENVIRONMENT
//! section.

use clap::{Command, ValueHint};
use std::io::{self, Write};
use std::process::ExitCode;

pub use clap_complete::Shell;

/// An environment variable the program reads, and what it does.
pub type Variable = (&'static str, &'static str);

/// Print `command`'s completion script for `shell`, or without one its man
/// page with `environment`, on stdout: the exit status to end with.
pub fn generate(command: Command, shell: Option<Shell>, environment: &[Variable]) -> ExitCode {
    let name = command.get_name().to_string();
    let mut out = io::stdout().lock();
    let written = match shell {
        Some(shell) => completions(command, shell, &mut out),
        None => man_page(command, environment, &mut out),
    };
    match written.and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: cannot write to stdout: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The completion script for `shell`.
///
/// # Errors
///
/// When `out` cannot be written.
pub fn completions(command: Command, shell: Shell, out: &mut dyn Write) -> io::Result<()> {
    let mut command = hint_values(command);
    let name = command.get_name().to_string();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, name, &mut script);
    out.write_all(&script)
}

/// A value clap knows nothing about completes to what was typed, not to
/// file names (clap_complete's default): every flag's value but paths
/// (typed as such, which clap hints itself) and enumerations (whose names
/// it lists).
fn hint_values(command: Command) -> Command {
    command
        .mut_args(|arg| {
            let unknown = arg.get_action().takes_values()
                && arg.get_value_hint() == ValueHint::Unknown
                && arg.get_possible_values().is_empty();
            match unknown {
                true => arg.value_hint(ValueHint::Other),
                false => arg,
            }
        })
        .mut_subcommands(hint_values)
}

/// The man page: clap_mangen's sections in its order, with ENVIRONMENT
/// before VERSION (where man-pages(7) puts it).
///
/// # Errors
///
/// When `out` cannot be written.
pub fn man_page(command: Command, environment: &[Variable], out: &mut dyn Write) -> io::Result<()> {
    let man = clap_mangen::Man::new(command.clone());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    if command.has_subcommands() {
        man.render_subcommands_section(out)?;
    }
    if command.get_after_help().is_some() || command.get_after_long_help().is_some() {
        man.render_extra_section(out)?;
    }
    if !environment.is_empty() {
        out.write_all(environment_section(environment).as_bytes())?;
    }
    man.render_version_section(out)
}

/// The ENVIRONMENT section in roff.
fn environment_section(environment: &[Variable]) -> String {
    let mut roff = String::from(".SH ENVIRONMENT\n");
    for (name, text) in environment {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn command() -> Command {
        Command::new("demo")
            .version("1.0")
            .arg(clap::Arg::new("count").long("count").value_name("N"))
            .arg(
                clap::Arg::new("dir")
                    .long("dir")
                    .value_parser(clap::value_parser!(std::path::PathBuf)),
            )
            .arg(
                clap::Arg::new("mode")
                    .long("mode")
                    .value_parser(["fast", "slow"]),
            )
    }

    #[test]
    fn environment_comes_before_version_and_is_escaped() {
        let mut out = Vec::new();
        let env = [("DEMO_LEVEL", "-v or .quiet \\ more")];
        man_page(command(), &env, &mut out).unwrap();
        let man = String::from_utf8(out).unwrap();
        let environment = man.find(".SH ENVIRONMENT").unwrap();
        assert!(environment < man.find(".SH VERSION").unwrap(), "{man}");
        assert!(
            man.contains("\\fBDEMO_LEVEL\\fR\n\\-v or .quiet \\e more\n"),
            "{man}"
        );
        assert_eq!(escape(".x"), "\\&.x");
    }

    #[test]
    fn only_paths_complete_to_file_names() {
        let mut out = Vec::new();
        completions(command(), Shell::Bash, &mut out).unwrap();
        let script = String::from_utf8(out).unwrap();
        let case = |flag: &str| {
            let rest = script.split(&format!("--{flag})")).nth(1).unwrap();
            rest.lines().nth(1).unwrap().to_string()
        };
        assert!(!case("count").contains("compgen -f"), "{script}");
        assert!(case("dir").contains("compgen -f"), "{script}");
        assert!(case("mode").contains("\"fast slow\""), "{script}");
    }
}
