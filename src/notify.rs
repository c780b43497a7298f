//! Telling the service manager how we are (sd_notify(3)): `READY=1` once
//! every socket is served, `STATUS=` with the stats line, `STOPPING=1` when
//! the drain starts, and `WATCHDOG=1` at half of `WATCHDOG_USEC`. Each is one
//! datagram on `NOTIFY_SOCKET`, sent only when that is set: a socket path,
//! or `@name` for a socket in the abstract namespace (as systemd passes it).
//!
//! Sending never waits: the socket is non-blocking, so when the manager's
//! queue is full (or anything else fails) the message is dropped, since a
//! missed message must not stop a worker or the signal path. The first
//! failure is logged as a warning, later ones only at debug level until a
//! message goes through again.

use std::ffi::OsStr;
use std::io::{self, ErrorKind};
#[cfg(target_os = "linux")]
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use tracing::{debug, info, warn};

/// Whether the last message was dropped (so the next failure stays quiet).
static FAILING: AtomicBool = AtomicBool::new(false);

/// The address `NOTIFY_SOCKET` names: `@name` is abstract, anything else a
/// path.
fn address(value: &OsStr) -> io::Result<SocketAddr> {
    match value.as_bytes().strip_prefix(b"@") {
        #[cfg(target_os = "linux")]
        Some(name) => SocketAddr::from_abstract_name(name),
        #[cfg(not(target_os = "linux"))]
        Some(_) => Err(io::Error::new(
            ErrorKind::Unsupported,
            "an abstract NOTIFY_SOCKET (@name) exists only on Linux",
        )),
        None => SocketAddr::from_pathname(value),
    }
}

/// One datagram to `value`'s socket, without waiting.
fn send_to(value: &OsStr, message: &str) -> io::Result<()> {
    let socket = UnixDatagram::unbound()?;
    socket.set_nonblocking(true)?;
    let sent = socket.send_to_addr(message.as_bytes(), &address(value)?)?;
    if sent != message.len() {
        return Err(io::Error::new(ErrorKind::WriteZero, "datagram cut short"));
    }
    Ok(())
}

fn send(state: &str) {
    let Some(value) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    match send_to(&value, &format!("{state}\n")) {
        Ok(()) => {
            if FAILING.swap(false, Relaxed) {
                info!("notifying the service manager works again");
            }
        }
        Err(e) => {
            let what = if e.kind() == ErrorKind::WouldBlock {
                "the service manager's queue is full"
            } else {
                "cannot notify the service manager"
            };
            if FAILING.swap(true, Relaxed) {
                debug!(error = %e, socket = ?value, "{what}: dropped {state:?}");
            } else {
                warn!(error = %e, socket = ?value,
                    "{what}: dropped {state:?} (later failures are logged at debug level)");
            }
        }
    }
}

/// Every socket is open and registered with its loop.
pub fn ready() {
    send("READY=1");
}

/// The periodic stats line, for `systemctl status`.
pub fn status(line: &str) {
    send(&format!("STATUS={line}"));
}

/// The drain has started.
pub fn stopping() {
    send("STOPPING=1");
}

/// The loop that pings is alive.
pub fn watchdog() {
    send("WATCHDOG=1");
}

/// How often to ping the watchdog: half of `WATCHDOG_USEC` when it is set
/// for this process (`WATCHDOG_PID`), as sd_watchdog_enabled(3) advises.
pub fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0;
    (sd_notify::watchdog_enabled(false, &mut usec) && usec > 0)
        .then(|| Duration::from_micros(usec) / 2)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn at_names_an_abstract_address_and_anything_else_a_path() {
        let abstract_ = address(OsStr::new("@echo/notify")).unwrap();
        assert_eq!(abstract_.as_abstract_name(), Some(&b"echo/notify"[..]));
        let path = address(OsStr::new("/run/notify")).unwrap();
        assert_eq!(
            path.as_pathname(),
            Some(std::path::Path::new("/run/notify"))
        );
    }

    #[test]
    fn a_full_queue_drops_the_message_at_once() {
        let name = format!("echo-server-test-{}", std::process::id());
        let sink =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(&name).unwrap()).unwrap();
        let value = format!("@{name}");
        let value = OsStr::new(&value);
        let mut sent = 0;
        let full = loop {
            match send_to(value, "STATUS=filling") {
                Ok(()) => sent += 1,
                Err(e) => break e,
            }
            assert!(sent < 1_000_000, "the queue never filled");
        };
        assert_eq!(full.kind(), ErrorKind::WouldBlock, "after {sent}: {full}");
        let mut buf = [0u8; 64];
        let n = sink.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STATUS=filling");
    }
}
