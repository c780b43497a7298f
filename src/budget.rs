//! `--max-memory`: one byte count for everything the server holds for its
//! clients, across all workers.
//!
//! Whatever holds client data (a connection: its state, its out-queue, the
//! bytes in its kernel pipe on the zero-copy path) reports every change
//! with [`Budget::charge`] and [`Budget::release`], and whether it holds
//! bytes for its peer with [`Budget::holding`]. Before taking more, a
//! holder asks [`Budget::may_grow`]. Data already in hand is never refused
//! (it is charged even past the limit); a holder that may not grow stops
//! reading instead, and TCP flow control slows its client down. Each read
//! is checked against the total just before it is made, for as much as it
//! could add (a queue's buffer may double), so workers can overshoot the
//! limit only by reading at the same moment: by at most one such growth
//! each.
//!
//! The rule for who stops: below three quarters of the limit anyone may
//! grow; up to seven eighths only holders under an even share of that
//! (seven eighths of the limit / the connections holding bytes for their
//! peer; idle ones do not count), so the connections holding the most stop
//! first; past it nobody grows. The last eighth is kept for the
//! [floor](Budget::floor): a connection that holds nothing for its peer may
//! always read that much, so interactive clients keep going however many
//! connections hold what they may. The floor is an even split of that
//! eighth over `--max-connections`, less the bookkeeping of holding it (at
//! least [`MIN_FLOOR`], at most [`MAX_FLOOR`] bytes), so the total holds
//! within the limit whenever the floor is not raised to its minimum.
//!
//! Freed memory the allocator keeps resident for reuse counts too: pages a
//! closed connection's buffers gave back stay in the process until the
//! allocator returns them (jemalloc: about ten seconds), so under churn the
//! held bytes alone would let RSS pass the limit. Once past three quarters,
//! the budget reads the allocator's slack (resident minus allocated bytes,
//! above what it was at startup) at most every [`SLACK_EVERY_MS`] and
//! counts it with the held bytes; new buffers that reuse those pages move
//! them from the slack to the held count.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

/// The smallest floor: a read of this much echoes a typical request in one
/// turn even with very many connections allowed (the limit may then be
/// passed by up to this much per connection holding nothing).
pub const MIN_FLOOR: usize = 256;
/// The largest floor: more would not make an interactive client faster.
pub const MAX_FLOOR: usize = 4 * 1024;
/// What holding a floor's bytes costs besides the bytes (the box the
/// out-queue lives in), at most.
const FLOOR_BOOKKEEPING: usize = 128;
/// How often, at most, the allocator's slack is read (only while the
/// budget is past three quarters).
pub const SLACK_EVERY_MS: u64 = 10;

/// The server-wide count, shared by every worker.
#[derive(Debug)]
pub struct Budget {
    limit: usize,
    floor: usize,
    used: AtomicUsize,
    /// Connections holding bytes for their peer.
    holders: AtomicUsize,
    /// Freed memory the allocator keeps resident, above `least_slack`.
    slack: AtomicUsize,
    /// The least slack seen (at startup, the allocator's own overhead);
    /// `usize::MAX` where the allocator cannot say.
    least_slack: AtomicUsize,
    /// When the slack was last read, in ms since `born`.
    slack_at: AtomicU64,
    born: Instant,
}

impl Budget {
    /// A budget of `limit` bytes for at most `max_connections` at once.
    pub fn new(limit: usize, max_connections: usize) -> Budget {
        Budget {
            limit,
            floor: (limit / 8 / max_connections.max(1))
                .saturating_sub(FLOOR_BOOKKEEPING)
                .clamp(MIN_FLOOR, MAX_FLOOR),
            used: AtomicUsize::new(0),
            holders: AtomicUsize::new(0),
            slack: AtomicUsize::new(0),
            least_slack: AtomicUsize::new(allocator_slack().unwrap_or(usize::MAX)),
            slack_at: AtomicU64::new(0),
            born: Instant::now(),
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes a connection that holds nothing for its peer may always read.
    pub fn floor(&self) -> usize {
        self.floor
    }

    /// Bytes counted now.
    pub fn used(&self) -> usize {
        self.used.load(Relaxed)
    }

    /// Whether a holder that has `held()` bytes may take `more` (asked
    /// only past three quarters).
    #[inline]
    pub fn may_grow(&self, held: impl FnOnce() -> usize, more: usize) -> bool {
        let reserve = self.limit / 8;
        if self.counted().saturating_add(more) <= self.limit - 2 * reserve {
            return true;
        }
        self.read_slack();
        let after = self.counted().saturating_add(more);
        if after <= self.limit - 2 * reserve {
            return true;
        }
        if after > self.limit - reserve {
            return false;
        }
        let share = (self.limit - reserve) / self.holders.load(Relaxed).max(1);
        held().saturating_add(more) <= share
    }

    /// Held bytes and the allocator's slack: what the limit is held to.
    fn counted(&self) -> usize {
        self.used().saturating_add(self.slack.load(Relaxed))
    }

    /// Read the allocator's slack, if it was last read over
    /// [`SLACK_EVERY_MS`] ago (one worker reads it; the others go on with
    /// the last figure).
    fn read_slack(&self) {
        if self.least_slack.load(Relaxed) == usize::MAX {
            return;
        }
        let now = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.slack_at.load(Relaxed);
        if now < last.saturating_add(SLACK_EVERY_MS)
            || self
                .slack_at
                .compare_exchange(last, now, Relaxed, Relaxed)
                .is_err()
        {
            return;
        }
        if let Some(slack) = allocator_slack() {
            let least = self.least_slack.fetch_min(slack, Relaxed).min(slack);
            self.slack.store(slack - least, Relaxed);
        }
    }

    /// Count `n` bytes already taken: data in hand is never refused.
    pub fn charge(&self, n: usize) {
        self.used.fetch_add(n, Relaxed);
    }

    /// A connection began (`true`) or stopped holding bytes for its peer:
    /// those that do share the room between three quarters and seven
    /// eighths.
    pub fn holding(&self, holds: bool) {
        match holds {
            true => self.holders.fetch_add(1, Relaxed),
            false => self.holders.fetch_sub(1, Relaxed),
        };
    }

    /// Give back `n` bytes counted earlier.
    pub fn release(&self, n: usize) {
        self.used.fetch_sub(n, Relaxed);
    }
}

/// Bytes the allocator keeps resident beyond what is allocated: freed pages
/// not yet returned, and its own overhead.
#[cfg(target_os = "linux")]
fn allocator_slack() -> Option<usize> {
    use tikv_jemalloc_ctl::{epoch, stats};
    epoch::advance().ok()?;
    let resident = stats::resident::read().ok()?;
    let allocated = stats::allocated::read().ok()?;
    Some(resident.saturating_sub(allocated))
}

#[cfg(not(target_os = "linux"))]
fn allocator_slack() -> Option<usize> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A budget that does not read the allocator (the test harness's own
    /// allocations would move its slack).
    fn counting_only(limit: usize, max_connections: usize) -> Budget {
        let budget = Budget::new(limit, max_connections);
        budget.least_slack.store(usize::MAX, Relaxed);
        budget
    }

    #[test]
    fn the_allocators_freed_pages_count_against_the_limit() {
        let budget = counting_only(800, 1);
        budget.charge(500);
        assert!(budget.may_grow(|| 500, 100));
        budget.slack.store(150, Relaxed); // freed, not yet given back
        assert!(!budget.may_grow(|| 0, 100), "500 + 150 + 100 is past 7/8");
        budget.slack.store(0, Relaxed);
        assert!(budget.may_grow(|| 500, 100), "given back: room again");
    }

    #[test]
    fn the_allocator_says_what_it_keeps() {
        if cfg!(target_os = "linux") {
            assert!(allocator_slack().is_some(), "jemalloc's stats are readable");
        }
    }

    #[test]
    fn the_heaviest_stop_first_and_nobody_passes_the_limit() {
        let budget = counting_only(800, 1);
        budget.holding(true); // heavy
        budget.holding(true); // light
        assert!(budget.may_grow(|| 0, 600));
        budget.charge(600);
        // Between three quarters (600) and seven eighths (700): the even
        // share is 350.
        assert!(
            !budget.may_grow(|| 600, 50),
            "the heavy one holds more than its share"
        );
        assert!(budget.may_grow(|| 0, 50), "the light one may still grow");
        assert!(
            !budget.may_grow(|| 0, 101),
            "nobody grows into the last eighth"
        );
        budget.release(500);
        assert!(budget.may_grow(|| 100, 50), "it drained: it may read again");
        budget.release(100);
        budget.holding(false);
        budget.holding(false);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn idle_connections_do_not_shrink_the_share() {
        let budget = counting_only(8000, 1000);
        budget.holding(true);
        budget.charge(6500);
        // Only the one holder counts, however many connections are open.
        assert!(budget.may_grow(|| 6500, 100));
    }

    #[test]
    fn the_floor_is_the_last_eighth_split_over_the_connections() {
        assert_eq!(Budget::new(64 << 20, 2048).floor(), 4096 - 128);
        assert_eq!(Budget::new(4 << 20, 1000).floor(), 524 - 128);
        assert_eq!(Budget::new(64 << 20, 1 << 20).floor(), MIN_FLOOR);
        assert_eq!(Budget::new(1 << 30, 10).floor(), MAX_FLOOR);
    }
}
