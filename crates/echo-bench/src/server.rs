//! The server process's CPU time and memory, from /proc (`--server-pid`).

use anyhow::{anyhow, Context, Result};
use std::fs;

/// CPU time (user + system) of `pid` in microseconds, from /proc/PID/stat.
///
/// # Errors
///
/// When the file cannot be read (the process is gone) or parsed.
pub fn cpu_us(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let text = fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    let ticks = parse_cpu_ticks(&text).ok_or_else(|| anyhow!("parse {path}: unexpected format"))?;
    let hz = rustix::param::clock_ticks_per_second().max(1);
    Ok(ticks.saturating_mul(1_000_000) / hz)
}

/// utime + stime (fields 14 and 15) in clock ticks. The command name in
/// field 2 may contain spaces and parentheses, so fields are counted from
/// its last `)`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace().skip(11); // field 3 is first here
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Resident memory of `pid` in kB: (current VmRSS, peak VmHWM).
///
/// # Errors
///
/// When /proc/PID/status cannot be read or lacks the fields.
pub fn rss_kb(pid: u32) -> Result<(u64, u64)> {
    let path = format!("/proc/{pid}/status");
    let text = fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    let rss = status_kb(&text, "VmRSS:").ok_or_else(|| anyhow!("{path}: no VmRSS"))?;
    let hwm = status_kb(&text, "VmHWM:").ok_or_else(|| anyhow!("{path}: no VmHWM"))?;
    Ok((rss, hwm))
}

/// How many descriptors `pid` has open, from /proc/PID/fd.
///
/// # Errors
///
/// When the directory cannot be read (the process is gone, or not ours).
pub fn fd_count(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/fd");
    let dir = fs::read_dir(&path).with_context(|| format!("read {path}"))?;
    Ok(dir.count() as u64)
}

fn status_kb(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..]
        .split_ascii_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_an_awkward_name() {
        let stat = "1234 (echo) (x y) S 1 1234 1234 0 -1 4194560 100 0 0 0 \
                    250 75 0 0 20 0 1 0 5000 1000000 300 18446744073709551615";
        assert_eq!(parse_cpu_ticks(stat), Some(325));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn status_fields() {
        let status = "Name:\techo\nVmHWM:\t    5120 kB\nVmRSS:\t    4096 kB\n";
        assert_eq!(status_kb(status, "VmRSS:"), Some(4096));
        assert_eq!(status_kb(status, "VmHWM:"), Some(5120));
        assert_eq!(status_kb(status, "VmSwap:"), None);
    }

    #[test]
    fn own_process_is_readable() {
        let pid = std::process::id();
        assert!(cpu_us(pid).is_ok());
        let (rss, hwm) = rss_kb(pid).unwrap();
        assert!(rss > 0 && hwm >= rss);
        // Other tests open and close descriptors on other threads meanwhile,
        // so one measurement may be off: count until one open shows as
        // exactly one more descriptor (a miscount never does).
        let mut last = (0, 0);
        for _ in 0..100 {
            let before = fd_count(pid).unwrap();
            let extra = std::fs::File::open("/proc/self/stat").unwrap();
            let after = fd_count(pid).unwrap();
            drop(extra);
            if after == before + 1 {
                return;
            }
            last = (before, after);
        }
        panic!(
            "no open counted as one more descriptor in 100 tries; last (before, after) {last:?}"
        );
    }
}
