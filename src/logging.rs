//! Logs on stderr: `-v`/`-q` pick the level, `--trace` adds the tutorial's
//! narration, `--log-format` picks text or JSON lines.
//!
//! Trace events carry their facts twice: once in the sentence, for people,
//! and once as fields (`peer`, `bytes`), for JSON consumers. In text mode a
//! trace line is the sentence alone, as the tutorial prints it.

use std::fmt;

use tracing::{Event, Subscriber};
use tracing_subscriber::field::Visit;
use tracing_subscriber::fmt::format::{Format, Full, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

use crate::config::{Cli, LogFormat};

/// The target of the `--trace` narration.
const TRACE: &str = "trace";

/// Installs the global subscriber for `cli`'s level, trace and format flags.
pub fn init(cli: &Cli) {
    let level = match i16::from(cli.verbose) - i16::from(cli.quiet) {
        ..=-2 => "error",
        -1 => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    if cli.trace {
        if let Ok(directive) = format!("{TRACE}=info").parse() {
            filter = filter.add_directive(directive);
        }
    }
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // A closed stderr must not turn every log line into a panic.
        .log_internal_errors(false);
    match cli.log_format {
        LogFormat::Text => {
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let full = tracing_subscriber::fmt::format().with_ansi(ansi);
            logs.with_ansi(ansi).event_format(Text { full }).init();
        }
        LogFormat::Json => logs.json().flatten_event(true).with_ansi(false).init(),
    }
}

/// The usual full format, except that trace events print only their sentence.
struct Text {
    full: Format<Full, SystemTime>,
}

impl<S, N> FormatEvent<S, N> for Text
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if event.metadata().target() != TRACE {
            return self.full.format_event(ctx, writer, event);
        }
        SystemTime.format_time(&mut writer)?;
        write!(writer, " ")?;
        for span in ctx
            .event_scope()
            .into_iter()
            .flat_map(|scope| scope.from_root())
        {
            write!(writer, "{}", span.name())?;
            if let Some(fields) = span.extensions().get::<FormattedFields<N>>() {
                if !fields.is_empty() {
                    write!(writer, "{{{fields}}}")?;
                }
            }
            write!(writer, ": ")?;
        }
        let mut sentence = Sentence(String::new());
        event.record(&mut sentence);
        writeln!(writer, "{TRACE}: {}", sentence.0)
    }
}

/// Keeps an event's message and drops its other fields.
struct Sentence(String);

impl Visit for Sentence {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}
