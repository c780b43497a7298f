//! What is written while a run goes on, once per reporting interval: a
//! progress line on stderr (`--interval`), a JSON object per line on stdout
//! (`--json-stream`), and an HdrHistogram interval log (`--hdr-log`).

use crate::plan::IntervalSample;
use crate::report::round;
use crate::stats::{thousands, Percentiles};
use anyhow::{Context, Result};
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use serde::Serialize;
use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// One interval as a JSON Lines object. Field names are the JSON contract.
#[derive(Debug, Serialize)]
pub struct IntervalLine {
    /// Always "interval".
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// 0 for the window's first interval.
    pub index: u64,
    /// The interval's start, seconds since the window's start.
    pub start_s: f64,
    /// Its length in seconds (the last may be shorter).
    pub duration_s: f64,
    /// Messages completed in it.
    pub messages: u64,
    /// `messages / duration_s`.
    pub msgs_per_sec: f64,
    /// Echoed megabytes (10^6) per second.
    pub mbytes_per_sec: f64,
    /// Latency of its messages, µs (response time with `--rate`).
    pub latency_us: Percentiles,
    /// With `--rate`: service time of its messages, µs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_time_us: Option<Percentiles>,
    /// Errors and mismatches since the window's start.
    pub failures: u64,
}

/// The interval outputs a run asked for.
#[derive(Debug)]
pub struct Outputs {
    interval: Duration,
    lines: bool,
    tty: bool,
    json: bool,
    hdr: Option<HdrLog>,
}

impl Outputs {
    /// Outputs for intervals of `interval`: progress `lines` on stderr,
    /// `json` objects on stdout, an interval log at `hdr_log`.
    ///
    /// # Errors
    ///
    /// When the log file cannot be created or written.
    pub fn new(
        interval: Duration,
        lines: bool,
        json: bool,
        hdr_log: Option<&Path>,
    ) -> Result<Outputs> {
        let hdr = hdr_log.map(HdrLog::create).transpose()?;
        Ok(Outputs {
            interval,
            lines,
            tty: std::io::stderr().is_terminal(),
            json,
            hdr,
        })
    }

    /// Whether any interval output is on.
    pub fn any(&self) -> bool {
        self.lines || self.json || self.hdr.is_some()
    }

    /// The interval length.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Write one interval (all workers merged). Errors are kept for
    /// [`Outputs::finish`]: a full disk must not stop the measurement.
    pub fn write(&mut self, s: &IntervalSample) {
        let start = s.index.saturating_mul(crate::plan::ns(self.interval));
        let secs = (s.end.saturating_sub(start)) as f64 / 1e9;
        let line = IntervalLine {
            kind: "interval",
            index: s.index,
            start_s: round(start as f64 / 1e9, 3),
            duration_s: round(secs, 3),
            messages: s.messages,
            msgs_per_sec: round(s.messages as f64 / secs.max(1e-9), 1),
            mbytes_per_sec: round(s.bytes as f64 / secs.max(1e-9) / 1e6, 3),
            latency_us: Percentiles::of(&s.latency),
            service_time_us: s.service.as_ref().map(Percentiles::of),
            failures: s.failures,
        };
        if self.json {
            if let Ok(text) = serde_json::to_string(&line) {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{text}");
                let _ = out.flush();
            }
        }
        if self.lines {
            let text = format!(
                "{:7.1}s  {:>12} msg/s  p50 {} us  p99 {} us  p99.9 {} us  {} errors",
                (start as f64 + secs * 1e9) / 1e9,
                thousands(line.msgs_per_sec as u64),
                line.latency_us.p50,
                line.latency_us.p99,
                line.latency_us.p999,
                line.failures
            );
            let mut err = std::io::stderr().lock();
            let _ = if self.tty {
                write!(err, "\r{text}   ")
            } else {
                writeln!(err, "{text}")
            };
            let _ = err.flush();
        }
        if let Some(h) = &mut self.hdr {
            let at = Duration::from_nanos(start);
            let len = Duration::from_secs_f64(secs);
            h.write(s, at, len);
        }
    }

    /// End the outputs: close the progress line, flush the log.
    ///
    /// # Errors
    ///
    /// The first error writing the interval log.
    pub fn finish(&mut self) -> Result<()> {
        if self.lines && self.tty {
            let _ = writeln!(std::io::stderr());
        }
        match self.hdr.take() {
            Some(h) => h.finish(),
            None => Ok(()),
        }
    }
}

/// An HdrHistogram interval log (V2 compressed histograms, one line per
/// interval; values, and the informational Interval_Max column, in ns).
struct HdrLog {
    path: PathBuf,
    file: BufWriter<File>,
    serializer: V2DeflateSerializer,
    started: bool,
    error: Option<String>,
}

impl std::fmt::Debug for HdrLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HdrLog")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl HdrLog {
    fn create(path: &Path) -> Result<HdrLog> {
        let file = File::create(path).with_context(|| format!("create {}", path.display()))?;
        Ok(HdrLog {
            path: path.to_owned(),
            file: BufWriter::new(file),
            serializer: V2DeflateSerializer::new(),
            started: false,
            error: None,
        })
    }

    /// The header, once: comments, then StartTime and BaseTime at the
    /// window's start (`since` ago), then the legend line.
    fn header(&mut self, since: Duration) -> std::io::Result<()> {
        self.started = true;
        let start = SystemTime::now()
            .checked_sub(since)
            .unwrap_or_else(SystemTime::now);
        IntervalLogWriterBuilder::new()
            .add_comment("[Logged with echo-bench; values in nanoseconds]")
            .add_comment("[Histogram log format version 1.3]")
            .with_start_time(start)
            .with_base_time(start)
            .begin_log_with(&mut self.file, &mut self.serializer)?;
        writeln!(
            self.file,
            "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\""
        )
    }

    /// Log `s`: untagged latency, and service time tagged "service".
    fn write(&mut self, s: &IntervalSample, at: Duration, len: Duration) {
        if !self.started {
            if let Err(e) = self.header(Duration::from_nanos(s.end)) {
                self.error.get_or_insert(e.to_string());
            }
        }
        // A builder with no header lines: begin_log_with writes nothing.
        let result = IntervalLogWriterBuilder::new()
            .begin_log_with(&mut self.file, &mut self.serializer)
            .map_err(|e| e.to_string())
            .and_then(|mut w| {
                w.write_histogram(&s.latency, at, len, None)
                    .map_err(|e| e.to_string())?;
                if let Some(h) = &s.service {
                    w.write_histogram(h, at, len, Tag::new("service"))
                        .map_err(|e| e.to_string())?;
                }
                Ok(())
            });
        if let Err(e) = result {
            self.error.get_or_insert(e);
        }
    }

    fn finish(mut self) -> Result<()> {
        if !self.started {
            self.header(Duration::ZERO)
                .with_context(|| format!("write {}", self.path.display()))?;
        }
        if let Some(e) = self.error.take() {
            anyhow::bail!("write {}: {e}", self.path.display());
        }
        self.file
            .flush()
            .with_context(|| format!("write {}", self.path.display()))
    }
}
