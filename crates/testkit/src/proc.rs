//! A process's descriptors, memory and CPU time, from `/proc`. A process that is gone reads
//! as zero (or `None` where the type says so), so a reader never panics.

use std::fs;
use std::time::Duration;

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

/// How many event-loop threads (see [`is_loop_thread`]) `pid` runs (0 if it is gone).
pub fn loop_threads(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .filter(|&tid| is_loop_thread(pid, tid))
                .count()
        })
        .unwrap_or(0)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_reads_as_alive() {
        let me = std::process::id();
        assert!(fd_count(me) >= 3, "stdio at least");
        assert!(rss_kib(me) > 0);
        assert!(loop_threads(me) >= 1, "the main thread counts");
        // Burn a little CPU so the tick count moves past zero.
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while cpu_time(me).is_zero() && start.elapsed() < Duration::from_secs(5) {
            x = x.wrapping_add(std::hint::black_box(x) | 1);
        }
        assert!(!cpu_time(me).is_zero());
    }

    #[test]
    fn a_process_that_is_gone_reads_as_zero() {
        // Above the kernel's pid_max limit (4,194,304), so never a live process.
        let gone = 999_999_999;
        assert_eq!(fd_count(gone), 0);
        assert_eq!(rss_kib(gone), 0);
        assert_eq!(cpu_time(gone), Duration::ZERO);
        assert_eq!(loop_threads(gone), 0);
        assert_eq!(thread_cpu_ns(gone), None);
    }
}
