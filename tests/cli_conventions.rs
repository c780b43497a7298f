//! CLI conventions: `--generate-man`, `--generate-completions SHELL` and
//! `--version` with the git revision.

mod util;

use std::process::Command;
use std::time::Duration;

use util::run_cli;

const QUICK: Duration = Duration::from_secs(10);

#[test]
fn man_page_is_roff_and_names_every_option() {
    let (status, out, err) = run_cli(&["--generate-man"], QUICK);
    assert_eq!(status.code(), Some(0), "stderr:\n{err}");
    assert!(out.contains(".TH echo-server 1"), "no .TH header:\n{out}");
    for flag in [
        "listen",
        "workers",
        "log\\-format",
        "generate\\-completions",
    ] {
        assert!(out.contains(flag), "man page lacks {flag}");
    }
}

#[test]
fn completions_for_bash_zsh_and_fish() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef echo-server"),
        ("fish", "complete -c echo-server"),
    ] {
        let (status, out, err) = run_cli(&["--generate-completions", shell], QUICK);
        assert_eq!(status.code(), Some(0), "{shell}: stderr:\n{err}");
        assert!(out.contains(marker), "{shell}: no {marker:?} in:\n{out}");
        assert!(out.contains("max-per-ip"), "{shell}: options missing");
    }
}

#[test]
fn generators_are_usage_errors_with_other_flags_or_unknown_shells() {
    for args in [
        &["--generate-man", "-l", "127.0.0.1:0"][..],
        &["--generate-completions", "tcsh"][..],
        &["--generate-completions", "bash", "--generate-man"][..],
    ] {
        let (status, _, err) = run_cli(args, QUICK);
        assert_eq!(status.code(), Some(2), "{args:?}: stderr:\n{err}");
    }
}

#[test]
fn version_names_the_git_revision_when_built_from_git() {
    let (status, out, err) = run_cli(&["--version"], QUICK);
    assert_eq!(status.code(), Some(0), "stderr:\n{err}");
    let want = format!("echo-server {}", env!("CARGO_PKG_VERSION"));
    assert!(
        out.starts_with(&want),
        "{out:?} does not start with {want:?}"
    );
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    match head {
        Ok(o) if o.status.success() => {
            let rev = String::from_utf8_lossy(&o.stdout).trim().to_string();
            assert!(out.contains(&format!("(git {rev})")), "{out:?} lacks {rev}");
        }
        _ => eprintln!("not a git checkout: only the version number is checked"),
    }
}

#[test]
fn bash_completion_offers_the_values_of_enumerated_flags() {
    let (status, out, err) = run_cli(&["--generate-completions", "bash"], QUICK);
    assert_eq!(status.code(), Some(0), "stderr:\n{err}");
    for (flag, words) in [
        ("--backend", "auto epoll poll select"),
        ("--zero-copy", "auto off always"),
        ("--log-format", "text json"),
    ] {
        let case = out
            .split(&format!("{flag})"))
            .nth(1)
            .and_then(|rest| rest.lines().nth(1))
            .unwrap_or_else(|| panic!("no {flag} case in:\n{out}"));
        let offered = case.split('"').nth(1).unwrap_or("");
        for word in words.split(' ') {
            assert!(
                offered.split(' ').any(|w| w == word),
                "{flag} does not offer {word}: {case}"
            );
        }
    }
    // File names for paths only, not for numbers or addresses.
    for (flag, files) in [("--unix", true), ("--workers", false), ("--listen", false)] {
        let case = out
            .split(&format!("{flag})"))
            .nth(1)
            .and_then(|r| r.lines().nth(1));
        let case = case.unwrap_or_else(|| panic!("no {flag} case in:\n{out}"));
        assert_eq!(case.contains("compgen -f"), files, "{flag}: {case}");
    }
}

/// Every `var("NAME")` / `var_os("NAME")` outside the tests in `dir`.
fn variables_read(dir: &std::path::Path, names: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            variables_read(&path, names);
            continue;
        }
        if path.extension().map_or(true, |e| e != "rs") || path.ends_with("tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        let code = code.split("#[cfg(all(test").next().unwrap_or("");
        for call in ["var(\"", "var_os(\""] {
            for rest in code.split(call).skip(1) {
                names.push(rest.split('"').next().unwrap_or("").to_string());
            }
        }
    }
}

#[test]
fn man_page_environment_names_every_variable_the_server_reads() {
    let (status, out, err) = run_cli(&["--generate-man"], QUICK);
    assert_eq!(status.code(), Some(0), "stderr:\n{err}");
    let section = out
        .split(".SH ENVIRONMENT\n")
        .nth(1)
        .and_then(|rest| rest.split("\n.SH ").next())
        .unwrap_or_else(|| panic!("no ENVIRONMENT section in:\n{out}"));
    // Read for the server by the crates it calls: tracing's EnvFilter,
    // listenfd, sd_notify's watchdog.
    let mut names: Vec<String> = ["RUST_LOG", "LISTEN_FDS", "WATCHDOG_USEC", "WATCHDOG_PID"]
        .map(String::from)
        .to_vec();
    variables_read(
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src")),
        &mut names,
    );
    assert!(names.len() > 5, "the source reads no variable? {names:?}");
    for name in names {
        let roff = format!("\\fB{}\\fR", name.replace('-', "\\-"));
        assert!(
            section.contains(&roff),
            "ENVIRONMENT lacks {name}:\n{section}"
        );
    }
}
