//! `--max-memory`: the smallest budget that can echo, and the default.
//!
//! The default is half the cgroup memory limit when one is set (cgroup v2
//! `memory.max`, v1 `memory.limit_in_bytes`, the smallest along the
//! process's own cgroup and its parents), so inside a container or a pod
//! the budget follows the limit the kernel enforces, leaving the other half
//! for the socket buffers' accounting, the allocator's slack and the rest
//! of the process; never more than a quarter of physical memory. Without a
//! limit, a quarter of physical memory; 1 GiB where neither can be read.

use std::path::{Path, PathBuf};

use crate::splice::{self, ZeroCopy};

/// The default budget, and why it is that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    pub bytes: usize,
    pub why: String,
}

/// `--max-memory` when none is given, read from this system.
pub fn default_budget() -> Chosen {
    let ram = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| mem_total(&info));
    let limit = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|own| cgroup_limit(&own, Path::new("/sys/fs/cgroup")));
    choose(ram, limit)
}

/// The rule, on what was read: half the cgroup limit (capped at a quarter
/// of `ram`), else a quarter of `ram`, else 1 GiB.
pub fn choose(ram: Option<u64>, limit: Option<(u64, PathBuf)>) -> Chosen {
    let quarter = ram.map(|r| r / 4).filter(|&q| q > 0);
    let (bytes, why) = match (limit, quarter) {
        (Some((limit, file)), q) if q.map_or(true, |q| limit / 2 <= q) => (
            limit / 2,
            format!(
                "half the cgroup memory limit of {} ({})",
                human(limit),
                file.display()
            ),
        ),
        (Some((limit, _)), Some(q)) => (
            q,
            format!(
                "a quarter of physical memory, below half the cgroup limit of {}",
                human(limit)
            ),
        ),
        (None, Some(q)) => (
            q,
            "a quarter of physical memory (no cgroup memory limit)".to_string(),
        ),
        (_, None) => (
            1 << 30,
            "1GiB: neither a cgroup limit nor MemTotal".to_string(),
        ),
    };
    Chosen {
        bytes: usize::try_from(bytes.max(1)).unwrap_or(usize::MAX),
        why,
    }
}

/// MemTotal from /proc/meminfo, in bytes.
pub fn mem_total(meminfo: &str) -> Option<u64> {
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kib.saturating_mul(1024)).filter(|&b| b > 0)
}

/// A limit file's contents: bytes, or `None` for no limit ("max" in v2; v1
/// writes "no limit" as a number near 2^63, rounded to pages).
pub fn parse_limit(text: &str) -> Option<u64> {
    match text.trim() {
        "max" => None,
        n => n.parse::<u64>().ok().filter(|&b| b > 0 && b < 1 << 62),
    }
}

/// Where the process's memory controller is, from /proc/self/cgroup: the
/// v1 `memory` hierarchy's line if there is one, else the v2 line (`0::`).
/// Each gives the limit file's name and the cgroup's path.
pub fn own_cgroup(proc_self_cgroup: &str) -> Option<(&'static str, &str)> {
    let mut v2 = None;
    for line in proc_self_cgroup.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if controllers.split(',').any(|c| c == "memory") {
            return Some(("memory/memory.limit_in_bytes", path));
        }
        if id == "0" && controllers.is_empty() {
            v2 = Some(("memory.max", path));
        }
    }
    v2
}

/// The smallest limit along the process's cgroup and its parents, under
/// the cgroup mount `root`, with the file that set it. A path that is not
/// under the mount (a container sees its own cgroup as the root) reads
/// the root's file.
pub fn cgroup_limit(proc_self_cgroup: &str, root: &Path) -> Option<(u64, PathBuf)> {
    let (file, path) = own_cgroup(proc_self_cgroup)?;
    let (dir, name) = match file.split_once('/') {
        Some((dir, name)) => (root.join(dir), name),
        None => (root.to_path_buf(), file),
    };
    let mut best: Option<(u64, PathBuf)> = None;
    let mut at = Some(Path::new(path.trim_start_matches('/')));
    while let Some(rel) = at {
        let candidate = dir.join(rel).join(name);
        let limit = std::fs::read_to_string(&candidate)
            .ok()
            .and_then(|t| parse_limit(&t));
        if let Some(limit) = limit.filter(|&l| best.as_ref().map_or(true, |(b, _)| l < *b)) {
            best = Some((limit, candidate));
        }
        at = rel.parent();
    }
    best
}

/// What a connection holds besides its peer's bytes (its state, 128 bytes,
/// and the box its queue or pipe lives in), rounded up with room to spare.
const OVERHEAD: usize = 1 << 10;

/// The smallest `--max-memory` under which a connection can make one whole
/// read: the budget must hold all a read could add, which is a whole read
/// buffer (64 KiB) on the copy path and a whole pipe with `--zero-copy
/// always`, each at most `--max-pending`. Below it no read ever fits, and
/// every connection would crawl at the budget's floor (a few KiB a read,
/// kept for connections that hold nothing): refused as a budget that
/// cannot serve.
pub fn smallest_budget(max_pending: u64, zero_copy: ZeroCopy) -> u64 {
    let read = crate::server::READ_BUFFER as u64;
    let largest_read = match zero_copy {
        // The kernel rounds a pipe up to a power of two pages.
        ZeroCopy::Always => (splice::pipe_max_size().next_power_of_two() as u64).max(read),
        ZeroCopy::Off | ZeroCopy::Auto => read,
    };
    max_pending.min(largest_read) + OVERHEAD as u64
}

/// Whether `--zero-copy auto` may use pipes under `budget`: a pipe that the
/// budget could never fill would stop its connection for good, so under a
/// smaller budget every connection keeps copying.
pub fn pipes_fit(budget: usize, max_pending: usize, pipe_size: usize) -> bool {
    let pipe = pipe_size.next_power_of_two();
    budget >= max_pending.min(pipe) + OVERHEAD
}

/// `64KiB`, `1.5GiB`: in the largest unit it reaches, for messages.
pub fn human(bytes: u64) -> String {
    let (unit, name) = match bytes {
        b if b >= 1 << 30 => (1u64 << 30, "GiB"),
        b if b >= 1 << 20 => (1 << 20, "MiB"),
        b if b >= 1 << 10 => (1 << 10, "KiB"),
        b => return format!("{b} bytes"),
    };
    if bytes % unit == 0 {
        format!("{}{name}", bytes / unit)
    } else {
        format!("{:.1}{name}", bytes as f64 / unit as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V2: &str = "0::/kubepods.slice/pod1/cri-abc.scope\n";
    const V1: &str = "12:pids:/docker/abc\n\
                      4:cpu,cpuacct:/docker/abc\n\
                      3:memory:/docker/abc\n\
                      1:name=systemd:/docker/abc\n\
                      0::/docker/abc\n";

    #[test]
    fn limit_files_parse_bytes_and_mean_none_by_max_or_huge() {
        assert_eq!(parse_limit("536870912\n"), Some(512 << 20));
        assert_eq!(parse_limit("max\n"), None);
        assert_eq!(parse_limit("9223372036854771712\n"), None);
        assert_eq!(parse_limit(""), None);
        assert_eq!(parse_limit("0"), None);
        assert_eq!(parse_limit("garbage"), None);
    }

    #[test]
    fn own_cgroup_prefers_the_v1_memory_line() {
        assert_eq!(
            own_cgroup(V2),
            Some(("memory.max", "/kubepods.slice/pod1/cri-abc.scope"))
        );
        assert_eq!(
            own_cgroup(V1),
            Some(("memory/memory.limit_in_bytes", "/docker/abc"))
        );
        assert_eq!(own_cgroup("0::/\n"), Some(("memory.max", "/")));
        assert_eq!(own_cgroup("2:cpu:/x\n"), None);
        assert_eq!(own_cgroup(""), None);
    }

    #[test]
    fn meminfo_total() {
        let info = "MemTotal:       16318480 kB\nMemFree:         1000 kB\n";
        assert_eq!(mem_total(info), Some(16_318_480 * 1024));
        assert_eq!(mem_total("MemFree: 1 kB\n"), None);
    }

    #[test]
    fn half_the_cgroup_limit_else_a_quarter_of_memory() {
        let gib = 1u64 << 30;
        let file = || PathBuf::from("/sys/fs/cgroup/memory.max");
        let pod = choose(Some(64 * gib), Some((gib, file())));
        assert_eq!(pod.bytes, (gib / 2) as usize);
        assert!(
            pod.why.contains("half the cgroup memory limit of 1GiB"),
            "{}",
            pod.why
        );
        let loose = choose(Some(8 * gib), Some((64 * gib, file())));
        assert_eq!(loose.bytes, (2 * gib) as usize);
        assert!(loose.why.contains("quarter"), "{}", loose.why);
        assert_eq!(choose(Some(8 * gib), None).bytes, (2 * gib) as usize);
        assert_eq!(choose(None, Some((gib, file()))).bytes, (gib / 2) as usize);
        assert_eq!(choose(None, None).bytes, gib as usize);
    }

    #[test]
    fn the_limit_is_the_smallest_along_the_path() {
        let root = std::env::temp_dir().join(format!("cgroup-fixture-{}", std::process::id()));
        let own = root.join("kubepods.slice/pod1");
        std::fs::create_dir_all(&own).unwrap();
        std::fs::write(root.join("kubepods.slice/memory.max"), "1073741824\n").unwrap();
        std::fs::write(own.join("memory.max"), "max\n").unwrap();
        let found = cgroup_limit("0::/kubepods.slice/pod1\n", &root);
        assert_eq!(
            found,
            Some((1 << 30, root.join("kubepods.slice/memory.max")))
        );
        std::fs::write(own.join("memory.max"), "268435456\n").unwrap();
        let found = cgroup_limit("0::/kubepods.slice/pod1\n", &root);
        assert_eq!(found.map(|(b, _)| b), Some(256 << 20));
        // A container sees its cgroup as the root of the mount.
        std::fs::write(root.join("memory.max"), "134217728\n").unwrap();
        let found = cgroup_limit("0::/elsewhere\n", &root);
        assert_eq!(found.map(|(b, _)| b), Some(128 << 20));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn the_smallest_budget_holds_one_whole_read() {
        assert_eq!(smallest_budget(1 << 20, ZeroCopy::Off), (64 << 10) + 1024);
        assert_eq!(smallest_budget(1 << 20, ZeroCopy::Auto), (64 << 10) + 1024);
        assert_eq!(smallest_budget(4096, ZeroCopy::Always), 4096 + 1024);
        assert!(smallest_budget(1 << 20, ZeroCopy::Always) >= 64 << 10);
        assert!(pipes_fit(2 << 20, 1 << 20, 1 << 20));
        assert!(!pipes_fit(512 << 10, 1 << 20, 1 << 20));
        assert_eq!(human(65 << 10), "65KiB");
        assert_eq!(human(1 << 20), "1MiB");
        assert_eq!(human(1025), "1.0KiB");
        assert_eq!(human(6_319_048_704), "5.9GiB");
        assert_eq!(human(100), "100 bytes");
    }
}
