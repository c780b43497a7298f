//! Telling the service manager how we are (sd_notify(3)): `READY=1` once
//! every socket is served, `STATUS=` with the stats line, `STOPPING=1` when
//! the drain starts, and `WATCHDOG=1` at half of `WATCHDOG_USEC`. Each is one
//! datagram on `NOTIFY_SOCKET`, sent only when that is set; a failure is
//! logged and otherwise ignored, as a missed message must not stop serving.

use std::time::Duration;

use sd_notify::NotifyState;
use tracing::debug;

fn send(state: NotifyState) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(false, &[state]) {
        debug!(error = %e, "cannot notify the service manager");
    }
}

/// Every socket is open and registered with its loop.
pub fn ready() {
    send(NotifyState::Ready);
}

/// The periodic stats line, for `systemctl status`.
pub fn status(line: &str) {
    send(NotifyState::Status(line));
}

/// The drain has started.
pub fn stopping() {
    send(NotifyState::Stopping);
}

/// The loop that pings is alive.
pub fn watchdog() {
    send(NotifyState::Watchdog);
}

/// How often to ping the watchdog: half of `WATCHDOG_USEC` when it is set
/// for this process (`WATCHDOG_PID`), as sd_watchdog_enabled(3) advises.
pub fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0;
    (sd_notify::watchdog_enabled(false, &mut usec) && usec > 0)
        .then(|| Duration::from_micros(usec) / 2)
}
