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
