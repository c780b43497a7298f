//! Shards and a start line: N echo-bench processes, each told its index,
//! run together the run one process would have made, with no coordinator.
//! Shard `I` of `N` runs its exact share of the connections (connection
//! ids stay those of the whole run) and of the rate; all wait for one
//! `--start-at` instant. This module sits on the floor: it imports nothing
//! of echo-bench's.

use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How far ahead `--start-at` may be.
pub const MAX_AHEAD: Duration = Duration::from_secs(3600);

/// The environment variable Kubernetes sets in an Indexed Job's pods.
pub const INDEX_ENV: &str = "JOB_COMPLETION_INDEX";

/// The environment variable for the shard count, in place of `--shards`.
pub const COUNT_ENV: &str = "ECHO_BENCH_SHARDS";

/// Shard `index` of `count` (0 <= index < count).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// Which shard, from 0.
    pub index: u64,
    /// How many shards the run has.
    pub count: u64,
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// A shard, if `index` is below `count`.
    pub fn new(index: u64, count: u64) -> Result<Shard, String> {
        if count == 0 {
            return Err("the shard count must be at least 1".into());
        }
        if index >= count {
            return Err(format!(
                "shard index {index} is not below the count {count} (indices run from 0)"
            ));
        }
        Ok(Shard { index, count })
    }

    /// The first connection id and the number of connections of this
    /// shard, out of `total`: `total / count` each, the first
    /// `total % count` shards one more.
    pub fn connections(self, total: u64) -> (u64, u64) {
        let (base, extra) = (total / self.count, total % self.count);
        let first = self.index * base + self.index.min(extra);
        (first, base + u64::from(self.index < extra))
    }

    /// This shard's part of `rate` over `total` connections: in proportion
    /// to its connections, cut so that the parts of all shards add up to
    /// `rate` (a whole rate gives whole parts).
    pub fn rate(self, rate: f64, total: u64) -> f64 {
        let (first, count) = self.connections(total);
        let upto = |k: u64| -> f64 {
            if rate.fract() == 0.0 && rate < 2f64.powi(63) {
                // Whole: exact integer arithmetic, the remainder spread.
                (u128::from(rate as u64) * u128::from(k) / u128::from(total.max(1))) as f64
            } else {
                rate * k as f64 / total.max(1) as f64
            }
        };
        upto(first + count) - upto(first)
    }
}

/// `--shard I/N`.
pub fn parse(s: &str) -> Result<Shard, String> {
    let (i, n) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?} is not I/N (e.g. 0/3: the first of three shards)"))?;
    let num = |x: &str| {
        x.trim()
            .parse::<u64>()
            .map_err(|_| format!("{s:?}: {x:?} is not a whole number"))
    };
    Shard::new(num(i)?, num(n)?).map_err(|e| format!("{s:?}: {e}"))
}

/// A time as RFC 3339 (any offset) or Unix seconds.
fn parse_time(s: &str) -> Result<SystemTime, String> {
    use time::format_description::well_known::Rfc3339;
    let t = s.trim();
    if let Ok(secs) = t.parse::<f64>() {
        if !(0.0..1e11).contains(&secs) {
            return Err(format!("{s:?} is not a time in Unix seconds"));
        }
        return Ok(UNIX_EPOCH + Duration::from_secs_f64(secs));
    }
    let dt = time::OffsetDateTime::parse(t, &Rfc3339).map_err(|_| {
        format!("{s:?} is neither RFC 3339 (e.g. 2026-12-05T17:00:00Z) nor Unix seconds")
    })?;
    let ns =
        u64::try_from(dt.unix_timestamp_nanos()).map_err(|_| format!("{s:?} is before 1970"))?;
    Ok(UNIX_EPOCH + Duration::from_nanos(ns))
}

/// `--start-at`: RFC 3339 or Unix seconds, ahead of now by at most
/// [`MAX_AHEAD`].
pub fn start_at(s: &str) -> Result<SystemTime, String> {
    let at = parse_time(s)?;
    match at.duration_since(SystemTime::now()) {
        Err(e) => Err(format!(
            "{s:?} is {:.1} s in the past: give an instant ahead of now (at most {} s ahead)",
            e.duration().as_secs_f64(),
            MAX_AHEAD.as_secs()
        )),
        Ok(ahead) if ahead > MAX_AHEAD => Err(format!(
            "{s:?} is {:.0} s ahead: at most {} s (1 h) ahead is taken",
            ahead.as_secs_f64(),
            MAX_AHEAD.as_secs()
        )),
        Ok(_) => Ok(at),
    }
}

/// `t` as Unix seconds.
pub fn unix_secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_to_the_totals_exactly() {
        for (total, n, rate) in [(7, 3, 301.0), (300, 3, 30000.0), (5, 5, 3.0), (10, 4, 99.5)] {
            let shards: Vec<Shard> = (0..n).map(|i| Shard::new(i, n).unwrap()).collect();
            let conns: Vec<(u64, u64)> = shards.iter().map(|s| s.connections(total)).collect();
            assert_eq!(conns.iter().map(|c| c.1).sum::<u64>(), total);
            // Contiguous ids, from 0 to total.
            let mut next = 0;
            for &(first, count) in &conns {
                assert_eq!(first, next);
                next += count;
            }
            let rates: Vec<f64> = shards.iter().map(|s| s.rate(rate, total)).collect();
            let sum: f64 = rates.iter().sum();
            assert!((sum - rate).abs() < 1e-9, "{rates:?}");
            if rate.fract() == 0.0 {
                assert_eq!(sum, rate, "{rates:?}");
                assert!(rates.iter().all(|r| r.fract() == 0.0), "{rates:?}");
            }
        }
        let s = |i| Shard::new(i, 3).unwrap();
        assert_eq!(
            [s(0), s(1), s(2)].map(|s| s.connections(7)),
            [(0, 3), (3, 2), (5, 2)]
        );
        assert_eq!(
            [s(0), s(1), s(2)].map(|s| s.rate(301.0, 7)),
            [129.0, 86.0, 86.0]
        );
    }

    #[test]
    fn specs_and_times_are_checked() {
        assert_eq!(parse("1/3"), Ok(Shard { index: 1, count: 3 }));
        for bad in ["3/3", "1", "a/3", "0/0", "-1/3"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let now = unix_secs(SystemTime::now());
        assert!(start_at(&format!("{}", now + 60.0)).is_ok());
        assert!(start_at(&format!("{}", now - 60.0))
            .unwrap_err()
            .contains("in the past"));
        assert!(start_at(&format!("{}", now + 7200.0))
            .unwrap_err()
            .contains("ahead"));
        assert!(start_at("2000-01-01T00:00:00Z")
            .unwrap_err()
            .contains("in the past"));
        assert!(start_at("2000-01-01T00:00:00+02:00")
            .unwrap_err()
            .contains("in the past"));
        assert!(start_at("soon").unwrap_err().contains("neither RFC 3339"));
        let utc = parse_time("2000-01-01T00:00:00Z").unwrap();
        assert_eq!(unix_secs(utc), 946_684_800.0);
        assert_eq!(parse_time("2000-01-01T02:00:00+02:00"), Ok(utc));
        assert_eq!(
            parse_time("2000-01-01T00:00:00.5Z").map(unix_secs),
            Ok(946_684_800.5)
        );
        assert_eq!(parse_time("946684800"), Ok(utc));
    }
}
