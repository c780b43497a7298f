//! What a connection's echo stream shows besides its bytes: a stall (no
//! echoed byte for `--stall-after` while bytes are owed) and a delay (most
//! of its messages, from one on, slower than `--delay-threshold`).

/// One connection's progress and slowness.
#[derive(Clone, Copy, Debug, Default)]
pub struct Health {
    /// When it last made progress (an echoed byte, or bytes became owed).
    progress_at: u64,
    /// A stall was reported and no byte came since.
    pub stalled: bool,
    /// Messages slower than the threshold, and messages completed since
    /// the first of them (it included).
    slow: u32,
    since_slow: u32,
    /// The least latency of the slow ones, ns, and the first one's offset.
    slow_min: u64,
    slow_at: u64,
}

impl Health {
    /// Bytes were sent while none were owed: the stall clock starts now.
    pub fn owing(&mut self, now: u64) {
        self.progress_at = now;
    }

    /// Echoed bytes arrived.
    pub fn progress(&mut self, now: u64) {
        self.progress_at = now;
        self.stalled = false;
    }

    /// Whether a stall begins now: bytes owed and none echoed for `after`
    /// ns. Reported once per stall.
    pub fn stall_begins(&mut self, now: u64, owed: bool, after: u64) -> bool {
        if owed && !self.stalled && now.saturating_sub(self.progress_at) > after {
            self.stalled = true;
            return true;
        }
        false
    }

    /// A message that starts at stream `offset` completed after `latency`
    /// ns (from its send).
    pub fn message(&mut self, latency: u64, offset: u64, threshold: u64) {
        if self.slow > 0 {
            self.since_slow += 1;
        }
        if latency > threshold {
            if self.slow == 0 {
                self.since_slow = 1;
                self.slow_at = offset;
                self.slow_min = latency;
            }
            self.slow += 1;
            self.slow_min = self.slow_min.min(latency);
        }
    }

    /// Delayed: at least two slow messages, and most of those from the
    /// first slow one on. The first slow message's offset and the least
    /// slow latency, ns.
    pub fn delayed(&self) -> Option<(u64, u64)> {
        (self.slow >= 2 && 2 * self.slow > self.since_slow).then_some((self.slow_at, self.slow_min))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stall_is_reported_once_and_cleared_by_progress() {
        let mut h = Health::default();
        h.owing(100);
        assert!(!h.stall_begins(150, true, 100));
        assert!(!h.stall_begins(500, false, 100), "nothing owed");
        assert!(h.stall_begins(500, true, 100));
        assert!(!h.stall_begins(900, true, 100), "once");
        h.progress(950);
        assert!(h.stall_begins(1100, true, 100));
    }

    #[test]
    fn delayed_means_most_messages_from_the_first_slow_one() {
        let mut h = Health::default();
        for k in 0..10 {
            h.message(1_000, k * 64, 10_000);
        }
        assert_eq!(h.delayed(), None);
        h.message(50_000, 640, 10_000);
        assert_eq!(h.delayed(), None, "one slow message is noise");
        for k in 11..20 {
            h.message(40_000 + k, k * 64, 10_000);
        }
        assert_eq!(h.delayed(), Some((640, 40_011)));
        let mut noisy = Health::default();
        for k in 0..20 {
            noisy.message(if k % 5 == 0 { 50_000 } else { 1_000 }, k * 64, 10_000);
        }
        assert_eq!(noisy.delayed(), None, "a slow message now and then");
    }
}
