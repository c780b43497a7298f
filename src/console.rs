//! Lines for whoever reads stdout and stderr. Either may be a closed pipe
//! (`echo-server | head -1`, a terminal that went away): a line nobody can
//! read is dropped, and neither panics nor changes the exit status.

use std::fmt::Arguments;
use std::io::Write;

/// One line on stdout, flushed (scripts wait for the `listening` lines).
pub fn out(line: Arguments) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_fmt(format_args!("{line}\n"));
    let _ = stdout.flush();
}

/// One line on stderr.
pub fn err(line: Arguments) {
    let _ = std::io::stderr().lock().write_fmt(format_args!("{line}\n"));
}
