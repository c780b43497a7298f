//! What a worker counts during the measured window, and how workers' counts
//! add up.

use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2DeflateSerializer};
use hdrhistogram::Histogram;

/// Latencies are recorded in nanoseconds, three significant digits, up to
/// an hour (longer ones are recorded as an hour).
const SIGFIG: u8 = 3;
const MAX_NS: u64 = 3_600_000_000_000;

/// Why connections failed; their sum is the report's `errors`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Errors {
    /// Connections that could not be established.
    pub connect: u64,
    /// Peer closed the connection (read returned end of file) while echoes
    /// were still owed.
    pub closed: u64,
    /// Other I/O errors on an established connection (reset, broken pipe).
    pub io: u64,
    /// Connections still owed echoed bytes when the run ended (short read).
    pub short: u64,
    /// Connections that got no echo at all during the measured window.
    pub unserved: u64,
}

impl Errors {
    /// All failures together.
    pub fn total(&self) -> u64 {
        self.connect + self.closed + self.io + self.short + self.unserved
    }

    fn add(&mut self, o: &Errors) {
        self.connect += o.connect;
        self.closed += o.closed;
        self.io += o.io;
        self.short += o.short;
        self.unserved += o.unserved;
    }
}

/// An empty latency histogram: nanoseconds, 1 ns to an hour.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_NS, SIGFIG)
        .expect("1 ns to an hour at 3 significant digits is a valid histogram")
}

/// Counts from one worker (or, merged, from all).
#[derive(Clone, Debug)]
pub struct Stats {
    /// Latency of each message completed in the window, in nanoseconds:
    /// response time (from when it was due) with `--rate`.
    pub latency: Histogram<u64>,
    /// Service time (from when its first byte was sent), in nanoseconds;
    /// recorded with `--rate` only.
    pub service: Histogram<u64>,
    /// Messages whose echo completed in the window.
    pub messages: u64,
    /// Their bytes (echoed bytes, one direction).
    pub bytes: u64,
    /// Connections established.
    pub connected: u64,
    /// Failures by kind.
    pub errors: Errors,
    /// Messages whose echo differed from what was sent.
    pub mismatches: u64,
    /// UDP datagrams never echoed within the timeout.
    pub lost: u64,
    /// UDP echoes that arrived after their datagram was counted lost.
    pub late: u64,
    /// UDP sockets that got no echo in the window (all datagrams lost).
    pub silent: u64,
    /// UDP echoes of a datagram already echoed (a fault, like a mismatch).
    pub duplicated: u64,
    /// The first failure seen, to print.
    pub first_error: Option<String>,
}

impl Stats {
    /// Empty counts.
    pub fn new() -> Stats {
        Stats {
            latency: new_histogram(),
            service: new_histogram(),
            messages: 0,
            bytes: 0,
            connected: 0,
            errors: Errors::default(),
            mismatches: 0,
            lost: 0,
            late: 0,
            silent: 0,
            duplicated: 0,
            first_error: None,
        }
    }

    /// Forget what the warm-up counted; connection and connect-error counts,
    /// and failures so far, stay.
    pub fn start_window(&mut self) {
        self.latency.reset();
        self.service.reset();
        self.messages = 0;
        self.bytes = 0;
        self.lost = 0;
        self.late = 0;
    }

    /// Count one completed message.
    pub fn record(&mut self, latency_ns: u64, bytes: usize) {
        self.latency.saturating_record(latency_ns.max(1));
        self.messages += 1;
        self.bytes += bytes as u64;
    }

    /// Count one message whose latency is recorded elsewhere (in a
    /// reporting interval's histogram, added in with [`Stats::fold`]).
    pub fn count(&mut self, bytes: usize) {
        self.messages += 1;
        self.bytes += bytes as u64;
    }

    /// Add an interval's histograms, recorded in place of this one's.
    pub fn fold(&mut self, latency: &Histogram<u64>, service: Option<&Histogram<u64>>) {
        // Same bounds on both sides, so adding cannot run out of range.
        let _ = self.latency.add(latency);
        if let Some(h) = service {
            let _ = self.service.add(h);
        }
    }

    /// Count one message's service time.
    pub fn record_service(&mut self, ns: u64) {
        self.service.saturating_record(ns.max(1));
    }

    /// Keep `msg` if it is the first failure.
    pub fn note(&mut self, msg: impl FnOnce() -> String) {
        if self.first_error.is_none() {
            self.first_error = Some(msg());
        }
    }

    /// Add another worker's counts.
    pub fn merge(&mut self, o: &Stats) {
        // Same bounds on both sides, so adding cannot run out of range.
        let _ = self.latency.add(&o.latency);
        let _ = self.service.add(&o.service);
        self.messages += o.messages;
        self.bytes += o.bytes;
        self.connected += o.connected;
        self.errors.add(&o.errors);
        self.mismatches += o.mismatches;
        self.lost += o.lost;
        self.late += o.late;
        self.silent += o.silent;
        self.duplicated += o.duplicated;
        if self.first_error.is_none() {
            self.first_error.clone_from(&o.first_error);
        }
    }
}

impl Default for Stats {
    fn default() -> Self {
        Stats::new()
    }
}

/// Latency percentiles in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

impl Percentiles {
    /// From a nanosecond histogram; all zero when it is empty.
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        let us = |ns: u64| (ns as f64 / 100.0).round() / 10.0;
        Percentiles {
            p50: us(h.value_at_quantile(0.50)),
            p90: us(h.value_at_quantile(0.90)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
        }
    }
}

/// `h` in HdrHistogram's V2 compressed encoding, base64: the form interval
/// logs use, which every HdrHistogram implementation reads.
pub fn encode_histogram(h: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    // Writing to a Vec cannot fail, and a histogram this crate built always
    // serializes.
    if V2DeflateSerializer::new().serialize(h, &mut bytes).is_err() {
        bytes.clear();
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The histogram [`encode_histogram`] wrote.
///
/// # Errors
///
/// When `text` is not base64, or not a V2 histogram.
pub fn decode_histogram(text: &str) -> Result<Histogram<u64>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| format!("not base64: {e}"))?;
    let h: Histogram<u64> = Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("not an HdrHistogram V2 histogram: {e:?}"))?;
    Ok(h)
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_survive_encoding() {
        let mut s = Stats::new();
        for ns in [1_000, 2_000, 5_000_000] {
            s.record(ns, 1);
        }
        let back = decode_histogram(&encode_histogram(&s.latency)).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(Percentiles::of(&back), Percentiles::of(&s.latency));
        assert!(decode_histogram("not base64!").is_err());
        assert!(decode_histogram("aGVsbG8=").is_err());
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn merge_adds_counts_and_histograms() {
        let mut a = Stats::new();
        let mut b = Stats::new();
        a.record(1_000, 64);
        b.record(3_000_000, 64);
        b.errors.closed = 2;
        b.note(|| "conn 1: closed".into());
        a.merge(&b);
        assert_eq!(a.messages, 2);
        assert_eq!(a.bytes, 128);
        assert_eq!(a.errors.total(), 2);
        assert_eq!(a.first_error.as_deref(), Some("conn 1: closed"));
        let p = Percentiles::of(&a.latency);
        assert_eq!(p.p50, 1.0);
        assert!((p.max - 3000.0).abs() < 3.0, "{}", p.max);
    }

    #[test]
    fn window_start_forgets_warm_up() {
        let mut s = Stats::new();
        s.record(500, 8);
        s.errors.connect = 1;
        s.start_window();
        assert_eq!(s.messages, 0);
        assert!(s.latency.is_empty());
        assert_eq!(s.errors.connect, 1);
        assert_eq!(Percentiles::of(&s.latency), Percentiles::default());
    }
}
