//! docs/echo-bench-json.md against the code: every field echo-bench prints
//! is documented, and every documented field is printed by some run.

mod util;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use util::{bench, json, json_lines, short, stderr, tcp_server, udp_server, Behaviour};

/// Section title -> the fields its table lists.
fn documented() -> BTreeMap<String, BTreeSet<String>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/echo-bench-json.md");
    let text = std::fs::read_to_string(path).unwrap();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines() {
        if let Some(title) = line.strip_prefix("## ") {
            section = title.trim().to_lowercase();
        } else if let Some(row) = line.strip_prefix("| `") {
            let field = row.split('`').next().unwrap();
            out.entry(section.clone())
                .or_default()
                .insert(field.to_owned());
        }
    }
    out
}

/// Record `v`'s keys under `section`, and its nested objects' under theirs.
fn observe(seen: &mut BTreeMap<String, BTreeSet<String>>, section: &str, v: &Value) {
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("{section}: not an object: {v}"));
    for (k, val) in obj {
        seen.entry(section.to_owned())
            .or_default()
            .insert(k.clone());
        match (k.as_str(), val) {
            ("latency_us" | "service_time_us", Value::Object(_)) => {
                observe(seen, "percentiles", val)
            }
            ("targets", Value::Array(rows)) => {
                rows.iter().for_each(|r| observe(seen, "target row", r))
            }
            ("rounds", Value::Array(rows)) => rows.iter().for_each(|r| observe(seen, "round", r)),
            ("report", Value::Object(_)) => observe(seen, "report", val),
            ("faults", Value::Object(_)) => observe(seen, "faults", val),
            ("events", Value::Array(rows)) => {
                rows.iter().for_each(|e| observe(seen, "fault event", e))
            }
            ("kinds", Value::Object(kinds)) => {
                kinds.values().for_each(|k| observe(seen, "chaos kind", k))
            }
            _ => {}
        }
    }
}

#[test]
fn every_json_field_is_documented_and_every_documented_field_appears() {
    let mut seen = BTreeMap::new();
    let (tcp, _) = tcp_server(Behaviour::Echo);
    let tcp = tcp.to_string();
    let pid = std::process::id().to_string();
    let brief = ["-c", "2", "-d", "0.3", "--warmup", "0.1"];
    let run = |extra: &[&str], addr: &str| {
        let mut args: Vec<&str> = brief.to_vec();
        args.extend_from_slice(extra);
        args.push(addr);
        bench(&args)
    };

    // Open loop with server figures, streamed: intervals, then the report.
    let out = run(
        &[
            "-r",
            "500",
            "--server-pid",
            &pid,
            "--json-stream",
            "--interval",
            "0.1",
        ],
        &tcp,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for v in json_lines(&out) {
        let section = v["type"].as_str().unwrap().to_owned();
        observe(&mut seen, &section, &v);
    }
    // UDP, and a failing run for first_error.
    let udp = udp_server(false).to_string();
    observe(&mut seen, "report", &json(&run(&["--udp", "--json"], &udp)));
    let (bad, _) = tcp_server(Behaviour::Corrupt(1000));
    observe(
        &mut seen,
        "report",
        &json(&run(&["--json"], &bad.to_string())),
    );
    // A shard with a start line.
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        + 0.5;
    let start = format!("{start:.3}");
    let out = run(&["--shard", "0/1", "--start-at", &start, "--json"], &tcp);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    observe(&mut seen, "report", &json(&out));

    // A search with a met and a missed round.
    let out = short(&[
        "search",
        "--slo",
        "rate<300",
        "--min-rate",
        "100",
        "--max-rate",
        "1000",
        "--rounds",
        "2",
        "-c",
        "2",
        "--json",
        &tcp,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    observe(&mut seen, "search", &json(&out));

    // Chaos, with server figures, against a good and a corrupting server.
    let chaos = [
        "chaos",
        "-c",
        "4",
        "-d",
        "0.5",
        "--max-bytes",
        "100000",
        "--seed",
        "7",
        "--json",
    ];
    let mut args = chaos.to_vec();
    args.extend_from_slice(&["--server-pid", &pid, &tcp]);
    let out = bench(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    observe(&mut seen, "chaos", &json(&out));
    let mut args = chaos.to_vec();
    let bad = bad.to_string();
    args.push(&bad);
    observe(&mut seen, "chaos", &json(&bench(&args)));

    let documented = documented();
    for (section, fields) in &seen {
        let doc = documented
            .get(section)
            .unwrap_or_else(|| panic!("no section \"## {section}\" in docs/echo-bench-json.md"));
        let missing: Vec<_> = fields.difference(doc).collect();
        assert!(
            missing.is_empty(),
            "{section}: printed but not documented: {missing:?}"
        );
    }
    for (section, fields) in &documented {
        let printed = seen.get(section).cloned().unwrap_or_default();
        let never: Vec<_> = fields.difference(&printed).collect();
        assert!(
            never.is_empty(),
            "{section}: documented but never printed: {never:?}"
        );
    }
}
