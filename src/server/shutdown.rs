//! Signals and shutdown: the first SIGINT or SIGTERM drains (each
//! connection echoes what it has already received, then closes), the
//! second stops every loop at once; SIGHUP is only logged.

use std::collections::HashMap;
use std::io::Read;
use std::sync::atomic::Ordering::Relaxed;

use tracing::{info, warn};

use super::{Turn, Worker};
use crate::listen::{Listener, Origin};
use crate::signals::SignalPipes;

/// Worker 0 only: the signal self-pipes, and how many signals came.
#[derive(Debug)]
pub(super) struct Signals {
    pub(super) pipes: SignalPipes,
    pub(super) seen: usize,
}

impl Worker {
    /// The self-pipe says a signal came: the first starts the drain, the
    /// second stops every loop at once.
    pub(super) fn on_signal(&mut self) {
        let mut buf = [0u8; 16];
        let Some(signals) = self.signals.as_mut() else {
            return;
        };
        let Ok(n) = signals.pipes.stop.read(&mut buf) else {
            return;
        };
        signals.seen += n;
        if signals.seen >= 2 {
            self.shared.abort.store(true, Relaxed);
            self.shared.wake_all();
            return;
        }
        if n > 0 {
            info!("signal received: finishing open connections, then exiting");
            crate::notify::stopping();
            self.shared.shutdown.store(true, Relaxed);
            self.shared.wake_all();
            self.begin_shutdown();
        }
    }

    /// SIGHUP: there is no configuration to reload, so it is only logged.
    pub(super) fn on_hangup(&mut self) {
        let mut buf = [0u8; 16];
        if let Some(Ok(n @ 1..)) = self.signals.as_mut().map(|s| s.pipes.hangup.read(&mut buf)) {
            info!(
                signals = n,
                "SIGHUP received: ignored (echo-server has no configuration to reload)"
            );
        }
    }

    /// Stop accepting; let each connection echo what it has already
    /// received (read or still in the kernel's buffer), then close. A
    /// connection still in a pre-echo phase has received nothing to echo.
    pub(super) fn begin_shutdown(&mut self) {
        self.timers.deadline = Some(self.now + self.cfg.shutdown_timeout);
        self.close_listeners();
        for socket in self.udp.close(&self.shared.budget, &mut self.res.counters) {
            let _ = self.selector.unregister(&socket);
        }
        self.close_openings();
        let keys: Vec<usize> = self.tables.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            let io = &mut self.res.lend(&self.cfg, &self.shared, self.now);
            let outcome = self.tables.conns[key].handle(Turn::Drain, io);
            self.apply(key, outcome);
        }
    }

    /// The shutdown deadline: close the connections that have not finished.
    /// A close may reset a connection (its client still sends), and a reset
    /// discards what the socket holds, so the bytes a socket still holds
    /// unacknowledged are counted as cut, not echoed: the summary then
    /// counts what the clients can still read (their kernels acknowledged
    /// it), a lower bound on what they get.
    pub(super) fn cut_at_deadline(&mut self) {
        let conns = &self.tables.conns;
        let queued = conns.iter().filter(|(_, c)| c.pending() > 0).count();
        warn!(
            open = conns.len(),
            queued, "shutdown timeout: closing connections that have not finished"
        );
        let unacked = unacknowledged();
        let keys: Vec<usize> = conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            let stream = self.tables.conns[key].stream();
            #[allow(clippy::unnecessary_cast)] // `ino_t` is 32 bits on some targets
            let inode = rustix::fs::fstat(stream).map(|st| st.st_ino as u64);
            if let Some(bytes) = inode.ok().and_then(|i| unacked.get(&i)) {
                self.res.counters.bytes_cut += bytes;
            }
            self.close(key);
        }
    }

    /// Close the listeners (new clients are refused, not left waiting) and
    /// remove the Unix socket paths we created (never inherited ones: the
    /// service manager owns those, and may hand them to our successor).
    pub(super) fn close_listeners(&mut self) {
        let intake = &mut self.intake;
        for l in intake.listeners.drain(..) {
            if intake.listening {
                let _ = self.selector.unregister(&l);
            }
            if let Listener::Unix(_, path, Origin::Bound) = &l {
                let _ = std::fs::remove_file(path);
            }
        }
        intake.listening = false;
        intake.resume_at = None;
    }
}

/// Bytes sent and not yet acknowledged, by socket inode, for this network
/// namespace's TCP sockets (`tx_queue` in /proc/net/tcp and tcp6: the
/// kernel's `write_seq - snd_una`, less the FIN where one is sent and not
/// acknowledged). Empty where /proc cannot be read: nothing is then cut.
fn unacknowledged() -> HashMap<u64, u64> {
    let mut out = HashMap::new();
    for table in ["/proc/self/net/tcp", "/proc/self/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        out.extend(text.lines().skip(1).filter_map(tx_queue));
    }
    out
}

/// One line of /proc/net/tcp: `sl local remote st tx_queue:rx_queue tr:when
/// retrnsmt uid timeout inode ...`, as (inode, unacknowledged data bytes).
fn tx_queue(line: &str) -> Option<(u64, u64)> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let state = u8::from_str_radix(fields.get(3)?, 16).ok()?;
    let (tx, _) = fields.get(4)?.split_once(':')?;
    let tx = u64::from_str_radix(tx, 16).ok()?;
    let inode = fields.get(9)?.parse().ok()?;
    // FIN_WAIT1, CLOSING, LAST_ACK: our FIN is out and unacknowledged, and
    // takes one sequence number.
    let fin_unacked = matches!(state, 0x04 | 0x0B | 0x09);
    Some((inode, tx.saturating_sub(u64::from(fin_unacked && tx > 0))))
}

#[cfg(test)]
mod tests {
    use super::tx_queue;

    #[test]
    fn reads_tx_queue_and_inode() {
        let established = "   3: 0100007F:1F40 0100007F:A2B4 01 0003E800:00000000 01:00000015 \
                           00000000     0        0 123456 1 0000000000000000 20 4 30 10 -1";
        assert_eq!(tx_queue(established), Some((123_456, 256_000)));
        let fin_wait1 = "   4: 0100007F:1F40 0100007F:A2B6 04 00000011:00000000 01:00000015 \
                         00000000     0        0 123457 1 0000000000000000 20 4 30 10 -1";
        assert_eq!(tx_queue(fin_wait1), Some((123_457, 16)));
        assert_eq!(
            tx_queue("  sl  local_address rem_address   st tx_queue"),
            None
        );
    }
}
