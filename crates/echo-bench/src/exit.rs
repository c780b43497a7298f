//! Exit statuses, the documented contract, and the signals that end a run
//! early.

use anyhow::{Context, Result};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// Exit statuses.
pub mod code {
    /// Every connection served, every byte matched, no condition held.
    pub const OK: u8 = 0;
    /// An error or a mismatch, an unreachable server, too few descriptors.
    pub const FAILED: u8 = 1;
    /// Bad flags (clap's own code).
    pub const USAGE: u8 = 2;
    /// A `--fail-if` condition held; `search`: not even the lowest rate met the SLO.
    pub const CONDITION: u8 = 3;
    /// Interrupted: 128 + the signal's number (SIGINT 130, SIGTERM 143).
    pub const INTERRUPTED_BASE: u8 = 128;
}

/// SIGINT and SIGTERM: the first sets the flag (the run stops and reports),
/// a second exits at once with 128 + its number.
#[derive(Debug)]
pub struct Signals {
    /// Set by the first signal.
    pub flag: Arc<AtomicBool>,
    /// Its number.
    pub which: Arc<AtomicUsize>,
}

impl Signals {
    /// Install the handlers.
    ///
    /// # Errors
    ///
    /// When a handler cannot be installed.
    pub fn install() -> Result<Signals> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        use signal_hook::flag;
        let s = Signals {
            flag: Arc::new(AtomicBool::new(false)),
            which: Arc::new(AtomicUsize::new(0)),
        };
        for sig in [SIGINT, SIGTERM] {
            // Registered first, so it sees the flag before this signal sets
            // it: only a second signal exits here.
            let code = i32::from(code::INTERRUPTED_BASE) + sig;
            flag::register_conditional_shutdown(sig, code, Arc::clone(&s.flag))
                .context("install signal handler")?;
            flag::register(sig, Arc::clone(&s.flag)).context("install signal handler")?;
            flag::register_usize(sig, Arc::clone(&s.which), sig as usize)
                .context("install signal handler")?;
        }
        Ok(s)
    }

    /// The exit status an interruption calls for, if one came.
    pub fn interrupted(&self) -> Option<u8> {
        self.flag.load(Ordering::Relaxed).then(|| {
            let sig = self.which.load(Ordering::Relaxed) as u8;
            code::INTERRUPTED_BASE.saturating_add(sig)
        })
    }
}

/// The exit status of a finished run: a fault beats an interruption, which
/// beats a `--fail-if` condition.
pub fn status(failed: bool, signals: &Signals, conditions_held: bool) -> u8 {
    verdict(failed, signals.interrupted(), conditions_held)
}

/// [`status`] with the interruption's status, if any, given.
pub fn verdict(failed: bool, interrupted: Option<u8>, conditions_held: bool) -> u8 {
    if failed {
        code::FAILED
    } else if let Some(code) = interrupted {
        code
    } else if conditions_held {
        code::CONDITION
    } else {
        code::OK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_clap_s_code() {
        let e = clap::Error::new(clap::error::ErrorKind::ValueValidation);
        assert_eq!(e.exit_code(), i32::from(code::USAGE));
    }

    #[test]
    fn a_fault_beats_an_interruption_which_beats_a_condition() {
        let s = Signals {
            flag: Arc::new(AtomicBool::new(false)),
            which: Arc::new(AtomicUsize::new(0)),
        };
        assert_eq!(status(false, &s, false), code::OK);
        assert_eq!(status(false, &s, true), code::CONDITION);
        s.flag.store(true, Ordering::Relaxed);
        s.which.store(15, Ordering::Relaxed);
        assert_eq!(status(false, &s, true), 143);
        assert_eq!(status(true, &s, true), code::FAILED);
    }
}
