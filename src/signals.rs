//! Signals reach the first loop through socket pairs that its selector
//! watches like any client: no work is done in a handler.
//!
//! SIGINT and SIGTERM share one pair (the first drains, the second stops at
//! once). SIGHUP has its own: it is logged and otherwise ignored, because
//! there is no configuration to reload, and its default action (exit at
//! once, with no drain and no summary) is what a closed terminal or a
//! careless `kill -HUP` must not cause.

use anyhow::{Context, Result};
use std::os::unix::net::UnixStream;

/// The read ends the first loop registers.
#[derive(Debug)]
pub struct SignalPipes {
    /// A byte per SIGINT or SIGTERM.
    pub stop: UnixStream,
    /// A byte per SIGHUP.
    pub hangup: UnixStream,
}

impl SignalPipes {
    /// Install the handlers.
    pub fn install() -> Result<SignalPipes> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let (stop, write) = pair().context("cannot create the signal pipe")?;
        signal_hook::low_level::pipe::register(SIGINT, write.try_clone()?)
            .context("cannot handle SIGINT")?;
        signal_hook::low_level::pipe::register(SIGTERM, write).context("cannot handle SIGTERM")?;
        let (hangup, write) = pair().context("cannot create the SIGHUP pipe")?;
        signal_hook::low_level::pipe::register(SIGHUP, write).context("cannot handle SIGHUP")?;
        Ok(SignalPipes { stop, hangup })
    }
}

fn pair() -> std::io::Result<(UnixStream, UnixStream)> {
    let (read, write) = UnixStream::pair()?;
    read.set_nonblocking(true)?;
    write.set_nonblocking(true)?;
    Ok((read, write))
}
