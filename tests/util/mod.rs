//! Shared helpers for the echo-server integration tests.
//!
//! [`Server`] runs the real binary on port 0, parses its `listening ...` lines, keeps its
//! stdout and stderr in memory for later assertions, and kills it on drop. The client
//! helpers connect with timeouts, run echo exchanges and check the bytes; the `/proc`
//! readers give the server's fds, RSS and CPU time. Every wait here is bounded.

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
use std::thread;
use std::time::{Duration, Instant};

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

/// Polls `f` every 10 ms until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Polls `cond` every 10 ms until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    wait_for(timeout, || cond().then_some(())).is_some()
}

// ---------------------------------------------------------------------------------------------
// /proc readers

/// Open file descriptors of process `pid` (0 if it is gone).
pub fn fd_count(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// VmRSS of process `pid` in KiB (0 if it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// utime + stime of process `pid` (all threads), from /proc/PID/stat.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name is in parentheses and may hold spaces; fields resume after the last ')'.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `after` starts at field 3.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    // /proc reports clock ticks in USER_HZ, which is 100 on every Linux port we run on.
    Duration::from_millis(ticks * 10)
}

/// Whether thread `tid` of `pid` runs an event loop: the main thread (worker 0) or one named
/// `worker-N`, not the allocator's background thread nor the metrics endpoint.
pub fn is_loop_thread(pid: u32, tid: u32) -> bool {
    let comm = fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm")).unwrap_or_default();
    tid == pid || comm.starts_with("worker-")
}

/// On-CPU nanoseconds of each event-loop thread of `pid` (from
/// /proc/PID/task/TID/schedstat), if the kernel exposes them.
pub fn thread_cpu_ns(pid: u32) -> Option<Vec<(u32, u64)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let entry = entry.ok()?;
        let tid: u32 = entry.file_name().to_str()?.parse().ok()?;
        if !is_loop_thread(pid, tid) {
            continue;
        }
        let s = fs::read_to_string(entry.path().join("schedstat")).ok()?;
        out.push((tid, s.split_whitespace().next()?.parse().ok()?));
    }
    Some(out)
}

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
