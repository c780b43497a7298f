//! Whether a set of reports is one run: what they measured agrees, and the
//! shards of a sharded run (`--shard I/N`) are each there exactly once,
//! with one start and one target.

use crate::report::Report;
use crate::shard::Shard;

/// `Ok` when `reports` (file name, report) can be merged into one run;
/// otherwise the reason, naming the files.
pub fn one_run(reports: &[(String, &Report)]) -> Result<(), String> {
    let Some((first_name, first)) = reports.first() else {
        return Err("no reports to merge".into());
    };
    for (name, r) in reports {
        let shape = |r: &Report| {
            format!(
                "{} B x pipeline {} over {}",
                r.size, r.pipeline, r.transport
            )
        };
        if shape(r) != shape(first) {
            return Err(format!(
                "{name} measured {}, {first_name} {}: not one run",
                shape(r),
                shape(first)
            ));
        }
        if r.start_at != first.start_at {
            let at = |t: Option<f64>| t.map_or("no --start-at".into(), |t| format!("start {t}"));
            return Err(format!(
                "mixed runs: {name} has {}, {first_name} {}",
                at(r.start_at),
                at(first.start_at)
            ));
        }
    }
    let sharded: Vec<(&str, Shard)> = reports
        .iter()
        .filter_map(|(name, r)| r.shard.map(|s| (name.as_str(), s)))
        .collect();
    if sharded.is_empty() {
        return Ok(());
    }
    if let Some((name, _)) = reports.iter().find(|(_, r)| r.shard.is_none()) {
        let (other, s) = sharded[0];
        return Err(format!(
            "mixed runs: {name} is not a shard, {other} is shard {s}"
        ));
    }
    for (name, r) in reports {
        if r.addr != first.addr {
            return Err(format!(
                "mixed runs: {name} targets {}, {first_name} {}",
                r.addr, first.addr
            ));
        }
    }
    shards_complete(&sharded)
}

/// Each of shards 0..N there once, all of one N.
fn shards_complete(sharded: &[(&str, Shard)]) -> Result<(), String> {
    let (first_name, first) = sharded[0];
    let n = first.count;
    let mut seen: Vec<Option<&str>> =
        vec![None; usize::try_from(n).unwrap_or(usize::MAX).min(1 << 20)];
    for &(name, s) in sharded {
        if s.count != n {
            return Err(format!(
                "mixed runs: {name} is shard {s}, {first_name} shard {first}"
            ));
        }
        let Some(slot) = seen.get_mut(s.index as usize) else {
            return Err(format!("{name}: shard {s} is out of range"));
        };
        if let Some(before) = slot.replace(name) {
            return Err(format!("duplicate shard {s}: {before} and {name}"));
        }
    }
    let missing: Vec<String> = seen
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_none())
        .map(|(i, _)| format!("{i}/{n}"))
        .collect();
    match missing.len() {
        0 => Ok(()),
        1 => Err(format!("missing shard {}", missing[0])),
        _ => Err(format!("missing shards {}", missing.join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(shard: Option<(u64, u64)>, start: Option<f64>, addr: &str) -> Report {
        let text = format!(
            r#"{{"type":"report","addr":"{addr}","transport":"tcp","backend":"epoll","threads":1,
            "connections":1,"size":64,"pipeline":1,"rate":null,"connected":1,"messages":1,"bytes":64,
            "duration_s":1.0,"msgs_per_sec":1.0,"mbytes_per_sec":0.0,
            "latency_us":{{"p50":1.0,"p90":1.0,"p99":1.0,"p999":1.0,"max":1.0}},"latency_hist":"",
            "errors":0,"connect_errors":0,"mismatches":0,"interrupted":false,"targets":[]}}"#
        );
        let mut r: Report = serde_json::from_str(&text).unwrap();
        r.shard = shard.map(|(index, count)| Shard { index, count });
        r.start_at = start;
        r
    }

    fn check(set: &[(&str, Report)]) -> Result<(), String> {
        let named: Vec<(String, &Report)> = set.iter().map(|(n, r)| (n.to_string(), r)).collect();
        one_run(&named)
    }

    #[test]
    fn a_whole_set_passes_and_each_flaw_is_named() {
        let s = |i| report(Some((i, 3)), Some(100.0), "a:1");
        assert_eq!(check(&[("x", s(0)), ("y", s(2)), ("z", s(1))]), Ok(()));
        let e = check(&[("x", s(0)), ("y", s(1)), ("z", s(1))]).unwrap_err();
        assert_eq!(e, "duplicate shard 1/3: y and z");
        let e = check(&[("x", s(0)), ("y", s(1))]).unwrap_err();
        assert_eq!(e, "missing shard 2/3");
        let e = check(&[("x", s(1))]).unwrap_err();
        assert_eq!(e, "missing shards 0/3, 2/3");
        let late = report(Some((2, 3)), Some(101.0), "a:1");
        let e = check(&[("x", s(0)), ("y", s(1)), ("z", late)]).unwrap_err();
        assert!(
            e.contains("mixed runs: z has start 101") && e.contains("x start 100"),
            "{e}"
        );
        let other = report(Some((2, 3)), Some(100.0), "b:1");
        let e = check(&[("x", s(0)), ("y", s(1)), ("z", other)]).unwrap_err();
        assert_eq!(e, "mixed runs: z targets b:1, x a:1");
        let four = report(Some((2, 4)), Some(100.0), "a:1");
        let e = check(&[("x", s(0)), ("y", s(1)), ("z", four)]).unwrap_err();
        assert_eq!(e, "mixed runs: z is shard 2/4, x shard 0/3");
        let plain = report(None, Some(100.0), "a:1");
        let e = check(&[("x", s(0)), ("y", plain)]).unwrap_err();
        assert_eq!(e, "mixed runs: y is not a shard, x is shard 0/3");
        // Unsharded reports merge as before, also of different targets.
        let (a, b) = (report(None, None, "a:1"), report(None, None, "b:1"));
        assert_eq!(check(&[("x", a), ("y", b)]), Ok(()));
    }
}
