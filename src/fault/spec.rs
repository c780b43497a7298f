//! One fault as the user writes it: the kinds (listed once, in [`KINDS`]),
//! the command-line form (`delay=50ms,jitter=10ms`, `reset,after=64KiB,p=0.1`,
//! `stall,on=127.0.0.1:7001`) and the JSON form with the same field names
//! (`{"kind": "delay", "delay": "100ms", "jitter": "10ms", "p": 0.5}`).
//! Both parse through the same checks, so both refuse the same things with
//! the same words.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Every echoed byte goes back DUR (± jitter) after it arrived.
    Delay,
    /// Echo no faster than BYTES/S.
    Rate,
    /// Stop echoing, keep reading until `--max-pending`.
    Stall,
    /// Stop reading at all.
    SlowRead,
    /// End the echo with FIN.
    Close,
    /// Abort the connection with RST.
    Reset,
    /// Flip one byte of the echo.
    Corrupt,
    /// UDP: drop the datagram.
    Drop,
    /// UDP: echo the datagram twice.
    Duplicate,
    /// UDP: hold the datagram behind the next one.
    Reorder,
}

/// What the kind's own key takes (`delay=DUR`, `rate=BYTES/S`, or nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Takes {
    Nothing,
    Duration,
    Rate,
}

/// One kind: its name, what it takes, and where it applies.
#[derive(Clone, Copy, Debug)]
pub struct KindInfo {
    pub kind: Kind,
    pub name: &'static str,
    pub takes: Takes,
    /// On TCP (and Unix stream) connections.
    pub tcp: bool,
    /// On UDP datagrams.
    pub udp: bool,
}

const fn info(kind: Kind, name: &'static str, takes: Takes, tcp: bool, udp: bool) -> KindInfo {
    KindInfo {
        kind,
        name,
        takes,
        tcp,
        udp,
    }
}

/// Every kind of fault, written once: parsing, the error messages, the
/// metrics labels and the docs' list come from here.
pub const KINDS: [KindInfo; 10] = [
    info(Kind::Delay, "delay", Takes::Duration, true, true),
    info(Kind::Rate, "rate", Takes::Rate, true, false),
    info(Kind::Stall, "stall", Takes::Nothing, true, false),
    info(Kind::SlowRead, "slow-read", Takes::Nothing, true, false),
    info(Kind::Close, "close", Takes::Nothing, true, false),
    info(Kind::Reset, "reset", Takes::Nothing, true, false),
    info(Kind::Corrupt, "corrupt", Takes::Nothing, true, false),
    info(Kind::Drop, "drop", Takes::Nothing, false, true),
    info(Kind::Duplicate, "duplicate", Takes::Nothing, false, true),
    info(Kind::Reorder, "reorder", Takes::Nothing, false, true),
];

impl Kind {
    pub fn info(self) -> &'static KindInfo {
        // Every kind is in KINDS (the unit tests check it).
        KINDS.iter().find(|k| k.kind == self).unwrap_or(&KINDS[0])
    }

    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// Its index in [`KINDS`] (for per-kind counters).
    pub fn index(self) -> usize {
        KINDS.iter().position(|k| k.kind == self).unwrap_or(0)
    }

    fn by_name(name: &str) -> Result<Kind, String> {
        KINDS
            .iter()
            .find(|k| k.name == name)
            .map(|k| k.kind)
            .ok_or_else(|| format!("unknown fault kind '{name}' (one of {})", kind_names()))
    }
}

/// The kinds' names, comma-separated, for messages and help text.
pub fn kind_names() -> String {
    KINDS.iter().map(|k| k.name).collect::<Vec<_>>().join(", ")
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One fault: a kind, its value, when it starts and how often it applies.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultSpec {
    pub kind: Kind,
    /// `delay=DUR`: zero for the other kinds.
    pub delay: Duration,
    /// `jitter=DUR` (delay only): each byte's delay is drawn uniformly from
    /// `delay ± jitter`, never below zero.
    pub jitter: Duration,
    /// `rate=BYTES/S`: 0 for the other kinds.
    pub rate: u64,
    /// `after=BYTES`: it starts once this many bytes were echoed.
    pub after: u64,
    /// `p=PROB`: the share of connections (UDP: datagrams) that get it.
    pub p: f64,
    /// `on=ADDR`: only on the listener given as this `--listen`,
    /// `--listen-proxy` or `--udp` value; every listener when `None`.
    pub on: Option<String>,
}

impl FaultSpec {
    fn new(kind: Kind) -> FaultSpec {
        FaultSpec {
            kind,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            rate: 0,
            after: 0,
            p: 1.0,
            on: None,
        }
    }

    /// Set `key` (the kind's own key, `jitter`, `after`, `p` or `on`).
    fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let kind = self.kind.info();
        match key {
            _ if key == kind.name && kind.takes == Takes::Duration => {
                self.delay = duration(value, key)?;
            }
            _ if key == kind.name && kind.takes == Takes::Rate => {
                let per_second = value.strip_suffix("/s").unwrap_or(value);
                self.rate = bytes(per_second, key)?;
                if self.rate == 0 {
                    return Err(format!("rate must be at least 1 byte/s, not '{value}'"));
                }
            }
            "jitter" if self.kind == Kind::Delay => self.jitter = duration(value, key)?,
            "after" => self.after = bytes(value, key)?,
            "p" => {
                self.p = value
                    .parse::<f64>()
                    .ok()
                    .filter(|p| (0.0..=1.0).contains(p))
                    .ok_or_else(|| format!("invalid probability '{value}' for p (0 to 1)"))?;
            }
            "on" if !value.is_empty() => self.on = Some(value.to_owned()),
            _ => return Err(format!("'{key}' is not a key of {}", kind.name)),
        }
        Ok(())
    }

    /// Whether every value its kind needs was given.
    fn complete(self) -> Result<FaultSpec, String> {
        match self.kind.info().takes {
            Takes::Duration if self.delay.is_zero() => {
                Err(format!("{0} needs a duration ({0}=50ms)", self.kind.name()))
            }
            Takes::Rate if self.rate == 0 => Err(format!(
                "{0} needs bytes per second ({0}=64KiB)",
                self.kind.name()
            )),
            _ => Ok(self),
        }
    }

    /// Whether it applies where connections come from listener `on` (its
    /// value as written; `None` for one no flag names).
    pub fn applies_on(&self, on: Option<&str>) -> bool {
        self.on.is_none() || self.on.as_deref() == on
    }

    /// Built from `(key, value)` pairs, the kind's first; the CLI and JSON
    /// forms both come here.
    fn from_pairs<'a>(
        kind: &str,
        pairs: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> Result<FaultSpec, String> {
        let mut spec = FaultSpec::new(Kind::by_name(kind)?);
        let mut seen: Vec<&str> = Vec::new();
        for (key, value) in pairs {
            if seen.contains(&key) {
                return Err(format!("'{key}' is given twice"));
            }
            seen.push(key);
            spec.set(key, value)?;
        }
        spec.complete()
    }
}

impl FromStr for FaultSpec {
    type Err = String;

    /// `KIND[=VALUE][,KEY=VALUE...]`.
    fn from_str(s: &str) -> Result<FaultSpec, String> {
        let mut items = s.split(',').map(str::trim);
        let first = items.next().unwrap_or_default();
        let kind = first.split_once('=').map_or(first, |(k, _)| k);
        if kind.is_empty() {
            return Err(format!("no fault kind (one of {})", kind_names()));
        }
        let mut pairs = Vec::new();
        if let Some((k, v)) = first.split_once('=') {
            pairs.push((k, v));
        }
        for item in items {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| format!("'{item}' is not KEY=VALUE"))?;
            pairs.push((k.trim(), v.trim()));
        }
        FaultSpec::from_pairs(kind, pairs.into_iter())
    }
}

impl fmt::Display for FaultSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind.info().takes {
            Takes::Nothing => write!(f, "{}", self.kind)?,
            Takes::Duration => write!(f, "{}={}", self.kind, Dur(self.delay))?,
            Takes::Rate => write!(f, "{}={}", self.kind, Bytes(self.rate))?,
        }
        if !self.jitter.is_zero() {
            write!(f, ",jitter={}", Dur(self.jitter))?;
        }
        if self.after != 0 {
            write!(f, ",after={}", Bytes(self.after))?;
        }
        if self.p != 1.0 {
            write!(f, ",p={}", self.p)?;
        }
        if let Some(on) = &self.on {
            write!(f, ",on={on}")?;
        }
        Ok(())
    }
}

/// The JSON form: the CLI's keys as fields; byte counts and `p` as numbers
/// (or, for byte counts, strings with a unit), durations as strings.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    delay: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jitter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rate: Option<Count>,
    #[serde(default)]
    after: Option<Count>,
    #[serde(default)]
    p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    on: Option<String>,
}

/// A byte count in JSON: `65536` or `"64KiB"`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Count {
    Number(u64),
    Text(String),
}

impl Count {
    fn text(&self) -> String {
        match self {
            Count::Number(n) => n.to_string(),
            Count::Text(s) => s.clone(),
        }
    }
}

impl TryFrom<Wire> for FaultSpec {
    type Error = String;

    fn try_from(w: Wire) -> Result<FaultSpec, String> {
        let texts = [
            ("delay", w.delay),
            ("jitter", w.jitter),
            ("rate", w.rate.as_ref().map(Count::text)),
            ("after", w.after.as_ref().map(Count::text)),
            ("p", w.p.map(|p| p.to_string())),
            ("on", w.on),
        ];
        let pairs: Vec<(&str, String)> = texts
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect();
        FaultSpec::from_pairs(&w.kind, pairs.iter().map(|(k, v)| (*k, v.as_str())))
    }
}

impl Serialize for FaultSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let dur = |d: Duration| (!d.is_zero()).then(|| Dur(d).to_string());
        Wire {
            kind: self.kind.name().to_owned(),
            delay: dur(self.delay),
            jitter: dur(self.jitter),
            rate: (self.rate != 0).then_some(Count::Number(self.rate)),
            after: Some(Count::Number(self.after)),
            p: Some(self.p),
            on: self.on.clone(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for FaultSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<FaultSpec, D::Error> {
        let wire = Wire::deserialize(d)?;
        let kind = wire.kind.clone();
        FaultSpec::try_from(wire)
            .map_err(|e| serde::de::Error::custom(format!("fault '{kind}': {e}")))
    }
}

/// A duration: a number (fractions allowed) and a unit, `us`, `ms` or `s`.
pub fn duration(value: &str, key: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration '{value}' for {key} (a number and us, ms or s: 50ms)");
    let digits = value.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let scale = match &value[digits.len()..] {
        "us" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        _ => return Err(bad()),
    };
    let n: f64 = digits.parse().map_err(|_| bad())?;
    if !(0.0..=86_400.0).contains(&(n * scale)) {
        return Err(bad());
    }
    // Whole microseconds, the finest unit written.
    Ok(Duration::from_micros((n * scale * 1e6).round() as u64))
}

/// A byte count, the server's one rule (`--max-pending`'s): digits, then
/// optionally KiB, MiB or GiB. Here 0 is allowed (`after=0`).
fn bytes(value: &str, key: &str) -> Result<u64, String> {
    if value == "0" {
        return Ok(0);
    }
    crate::config::bytes(value).map_err(|e| format!("invalid byte count for {key}: {e}"))
}

/// A duration in the largest unit that writes it exactly.
struct Dur(Duration);

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = self.0.as_micros();
        match us {
            _ if us % 1_000_000 == 0 => write!(f, "{}s", us / 1_000_000),
            _ if us % 1_000 == 0 => write!(f, "{}ms", us / 1_000),
            _ => write!(f, "{us}us"),
        }
    }
}

/// A byte count in the largest binary unit that writes it exactly.
struct Bytes(u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (unit, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] {
            if n != 0 && n % (1 << shift) == 0 {
                return write!(f, "{}{unit}", n >> shift);
            }
        }
        write!(f, "{n}")
    }
}

#[cfg(test)]
#[path = "spec_tests.rs"]
mod tests;
