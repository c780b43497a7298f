//! Conditions on a report: `--fail-if p99>2ms` (the run fails when one
//! holds) and `search --slo 'p99<1ms'` (a round passes when all hold).
//!
//! A condition is `METRIC OP VALUE`: OP is one of `<`, `<=`, `>`, `>=`,
//! `==`; latency metrics take a unit (`ns`, `us`, `ms`, `s`; a bare number
//! is µs, the report's unit), counts take a plain number (`k` and `M`
//! suffixes allowed for `rate`).

use crate::report::Report;
use std::fmt;
use std::str::FromStr;

/// What a condition looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Metric {
    /// A latency percentile, as named in `latency_us`.
    Latency(&'static str),
    /// A service-time percentile (`service_p99`), with `--rate`.
    Service(&'static str),
    Errors,
    Mismatches,
    Connected,
    Messages,
    Rate,
    Lost,
}

/// Metric names, written once: (name in expressions, metric).
const METRICS: [(&str, Metric); 16] = [
    ("p50", Metric::Latency("p50")),
    ("p90", Metric::Latency("p90")),
    ("p99", Metric::Latency("p99")),
    ("p999", Metric::Latency("p999")),
    ("max", Metric::Latency("max")),
    ("service_p50", Metric::Service("p50")),
    ("service_p90", Metric::Service("p90")),
    ("service_p99", Metric::Service("p99")),
    ("service_p999", Metric::Service("p999")),
    ("service_max", Metric::Service("max")),
    ("errors", Metric::Errors),
    ("mismatches", Metric::Mismatches),
    ("connected", Metric::Connected),
    ("messages", Metric::Messages),
    ("rate", Metric::Rate),
    ("lost", Metric::Lost),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
}

impl Op {
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Eq => a == b,
        }
    }
}

/// One parsed condition, e.g. `p99>2ms`.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    text: String,
    metric: Metric,
    op: Op,
    /// Latencies in µs; counts as they are.
    value: f64,
}

impl FromStr for Condition {
    type Err = String;

    fn from_str(text: &str) -> Result<Condition, String> {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let at = compact
            .find(['<', '>', '='])
            .ok_or_else(|| format!("{text:?}: no comparison (<, <=, >, >=, ==)"))?;
        let (name, rest) = compact.split_at(at);
        let (op, value) = [
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("==", Op::Eq),
            ("<", Op::Lt),
            (">", Op::Gt),
        ]
        .into_iter()
        .find_map(|(sym, op)| rest.strip_prefix(sym).map(|v| (op, v)))
        .ok_or_else(|| format!("{text:?}: unknown comparison"))?;
        let metric = METRICS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, m)| *m)
            .ok_or_else(|| {
                let names: Vec<&str> = METRICS.iter().map(|(n, _)| *n).collect();
                format!(
                    "{text:?}: unknown metric {name:?} (one of {})",
                    names.join(", ")
                )
            })?;
        let value = match metric {
            Metric::Latency(_) | Metric::Service(_) => micros(value),
            Metric::Rate => scaled(value),
            _ => value.parse::<f64>().ok().filter(|v| v.is_finite()),
        }
        .ok_or_else(|| format!("{text:?}: bad value {value:?}"))?;
        Ok(Condition {
            text: compact,
            metric,
            op,
            value,
        })
    }
}

/// `2ms` as 2000.0 (µs); a bare number is µs.
fn micros(v: &str) -> Option<f64> {
    let units = [
        ("ns", 1e-3),
        ("us", 1.0),
        ("µs", 1.0),
        ("ms", 1e3),
        ("s", 1e6),
    ];
    let (num, scale) = units
        .iter()
        .find_map(|(u, k)| v.strip_suffix(u).map(|n| (n, *k)))
        .unwrap_or((v, 1.0));
    num.parse::<f64>()
        .ok()
        .filter(|x| x.is_finite() && *x >= 0.0)
        .map(|x| x * scale)
}

/// `50k` as 50000.0.
fn scaled(v: &str) -> Option<f64> {
    let (num, scale) = match v.strip_suffix(['k', 'K']) {
        Some(n) => (n, 1e3),
        None => match v.strip_suffix('M') {
            Some(n) => (n, 1e6),
            None => (v, 1.0),
        },
    };
    num.parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
        .map(|x| x * scale)
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Condition {
    /// The measured value in `r` (latencies in µs), if the report has it.
    fn measured(&self, r: &Report) -> Option<f64> {
        let pick = |p: &crate::stats::Percentiles, name: &str| match name {
            "p50" => p.p50,
            "p90" => p.p90,
            "p99" => p.p99,
            "p999" => p.p999,
            _ => p.max,
        };
        Some(match self.metric {
            Metric::Latency(n) => pick(&r.latency_us, n),
            Metric::Service(n) => pick(r.service_time_us.as_ref()?, n),
            Metric::Errors => r.errors as f64,
            Metric::Mismatches => r.mismatches as f64,
            Metric::Connected => r.connected as f64,
            Metric::Messages => r.messages as f64,
            Metric::Rate => r.msgs_per_sec,
            Metric::Lost => r.lost? as f64,
        })
    }

    /// Whether the condition holds for `r`, and the measured value in
    /// words. A metric the report lacks (service time without `--rate`,
    /// `lost` over TCP) holds never.
    pub fn eval(&self, r: &Report) -> (bool, String) {
        match self.measured(r) {
            Some(v) => {
                let unit = match self.metric {
                    Metric::Latency(_) | Metric::Service(_) => " us",
                    Metric::Rate => " msg/s",
                    _ => "",
                };
                let name = self.text.split(['<', '>', '=']).next().unwrap_or("");
                (self.op.holds(v, self.value), format!("{name} is {v}{unit}"))
            }
            None => (false, "not measured in this run".into()),
        }
    }
}

/// The `--fail-if` conditions that hold for `r`, each with its measured
/// value, as lines to print.
pub fn violations(conditions: &[Condition], r: &Report) -> Vec<String> {
    conditions
        .iter()
        .filter_map(|c| {
            let (holds, seen) = c.eval(r);
            holds.then(|| format!("fail-if {c}: {seen}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Condition {
        s.parse().unwrap()
    }

    #[test]
    fn expressions_parse_with_units() {
        let c = parse("p99>2ms");
        assert_eq!(
            (c.metric, c.op, c.value),
            (Metric::Latency("p99"), Op::Gt, 2000.0)
        );
        assert_eq!(parse("p999 >= 10ms").value, 10_000.0);
        assert_eq!(parse("p50<500ns").value, 0.5);
        assert_eq!(parse("max<1s").value, 1e6);
        assert_eq!(parse("p90<250").value, 250.0);
        assert_eq!(parse("rate<50k").value, 50_000.0);
        assert_eq!(parse("connected<1000").op, Op::Lt);
        assert_eq!(parse("errors>0").metric, Metric::Errors);
        assert_eq!(parse("service_p99<=3us").metric, Metric::Service("p99"));
    }

    #[test]
    fn typos_are_named() {
        let e = "p98>2ms".parse::<Condition>().unwrap_err();
        assert!(e.contains("unknown metric \"p98\""), "{e}");
        let e = "p99>2mz".parse::<Condition>().unwrap_err();
        assert!(e.contains("bad value \"2mz\""), "{e}");
        let e = "p99 2ms".parse::<Condition>().unwrap_err();
        assert!(e.contains("no comparison"), "{e}");
        assert!("errors=>1".parse::<Condition>().is_err());
        assert!("errors>".parse::<Condition>().is_err());
    }

    #[test]
    fn comparisons_hold_as_written() {
        assert!(Op::Lt.holds(1.0, 2.0) && !Op::Lt.holds(2.0, 2.0));
        assert!(Op::Le.holds(2.0, 2.0) && Op::Ge.holds(2.0, 2.0));
        assert!(Op::Gt.holds(3.0, 2.0) && Op::Eq.holds(2.0, 2.0));
    }
}
