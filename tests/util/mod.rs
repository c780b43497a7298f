//! Shared helpers for the echo-server integration tests.
//!
//! [`Server`] runs the real binary on port 0, parses its `listening ...` lines, keeps its
//! stdout and stderr in memory for later assertions, and kills it on drop. The client
//! helpers connect with timeouts, run echo exchanges and check the bytes; the `/proc`
//! readers give the server's fds, RSS and CPU time. Every wait here is bounded. Starting a
//! process, its `listening` lines, the waits and `/proc` come from the `testkit` crate,
//! which echo-bench's tests share.

#![allow(dead_code)]

mod client;
mod server;

#[allow(unused_imports)] // not every test file uses the clients
pub use client::*;
pub use server::*;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Read and write timeout on every client socket the helpers create.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Prints why a test is skipped and returns from it.
#[macro_export]
macro_rules! skip {
    ($($arg:tt)*) => {{
        eprintln!("SKIP {}: {}", module_path!(), format!($($arg)*));
        return;
    }};
}

#[allow(unused_imports)] // not every test file uses every reader
pub use testkit::proc::{cpu_time, fd_count, is_loop_thread, rss_kib, thread_cpu_ns};
#[allow(unused_imports)]
pub use testkit::{wait_for, wait_until};

// ---------------------------------------------------------------------------------------------
// Limits and capabilities

/// Raises this test process's RLIMIT_NOFILE soft limit to the hard limit; returns the new soft
/// limit. Servers spawned afterwards inherit it.
pub fn raise_nofile() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current != lim.maximum {
        lim.current = lim.maximum;
        let _ = setrlimit(Resource::Nofile, lim);
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// Whether `prlimit` (util-linux) can run a program under a lower RLIMIT_NOFILE here.
pub fn prlimit_available() -> bool {
    Command::new("prlimit")
        .args(["--nofile=64:64", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Whether IPv6 loopback works here.
pub fn ipv6_available() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok()
}

/// A fresh directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("echo-server-test-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
