//! Records the git revision the server is built from, for `--version`.
//! Building from a tarball (no git, or no repository) leaves it out.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(manifest_dir())
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
}

fn manifest_dir() -> String {
    std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".to_string())
}

fn version() -> String {
    std::env::var("CARGO_PKG_VERSION").unwrap_or_default()
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let revision = git(&["rev-parse", "--short=12", "HEAD"]);
    if let Some(rev) = &revision {
        // Rebuild when HEAD moves: HEAD itself, the branch it names, and
        // packed refs (paths as git reports them, worktrees included).
        let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watched.push(branch);
        }
        for name in watched {
            if let Some(path) = git(&["rev-parse", "--git-path", &name]) {
                let path = Path::new(&manifest_dir()).join(path);
                if path.exists() {
                    println!("cargo:rerun-if-changed={}", path.display());
                }
            }
        }
        println!(
            "cargo:rustc-env=ECHO_SERVER_VERSION={} (git {rev})",
            version()
        );
    } else {
        println!("cargo:rustc-env=ECHO_SERVER_VERSION={}", version());
    }
}
