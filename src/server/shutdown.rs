//! Signals and shutdown: the first SIGINT or SIGTERM drains (each
//! connection echoes what it has already received, then closes), the
//! second stops every loop at once; SIGHUP is only logged.

use std::io::Read;
use std::sync::atomic::Ordering::Relaxed;

use tracing::info;

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
