//! `--max-memory`: the smallest budget that can echo, and the default.

use crate::splice::{self, ZeroCopy};

/// What a connection holds besides its peer's bytes (its state, 128 bytes,
/// and the box its queue or pipe lives in), rounded up with room to spare.
const OVERHEAD: usize = 1 << 10;

/// The smallest `--max-memory` under which a connection can ever read:
/// before each read the budget must hold all the read could add, which is
/// a whole read buffer (64 KiB) on the copy path and a whole pipe with
/// `--zero-copy always`, each at most `--max-pending`. Below it every
/// connection waits for memory that never comes.
pub fn smallest_budget(max_pending: u64, zero_copy: ZeroCopy) -> u64 {
    let read = crate::server::READ_BUFFER as u64;
    let largest_read = match zero_copy {
        // The kernel rounds a pipe up to a power of two pages.
        ZeroCopy::Always => (splice::pipe_max_size().next_power_of_two() as u64).max(read),
        ZeroCopy::Off | ZeroCopy::Auto => read,
    };
    max_pending.min(largest_read) + OVERHEAD as u64
}

/// Whether `--zero-copy auto` may use pipes under `budget`: a pipe that the
/// budget could never fill would stop its connection for good, so under a
/// smaller budget every connection keeps copying.
pub fn pipes_fit(budget: usize, max_pending: usize, pipe_size: usize) -> bool {
    let pipe = pipe_size.next_power_of_two();
    budget >= max_pending.min(pipe) + OVERHEAD
}

/// `1.5 MiB`-style, for messages.
pub fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{}GiB", b >> 30),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{}MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{}KiB", b >> 10),
        b => format!("{b}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smallest_budget_holds_one_whole_read() {
        assert_eq!(smallest_budget(1 << 20, ZeroCopy::Off), (64 << 10) + 1024);
        assert_eq!(smallest_budget(1 << 20, ZeroCopy::Auto), (64 << 10) + 1024);
        assert_eq!(smallest_budget(4096, ZeroCopy::Always), 4096 + 1024);
        assert!(smallest_budget(1 << 20, ZeroCopy::Always) >= 64 << 10);
        assert!(pipes_fit(2 << 20, 1 << 20, 1 << 20));
        assert!(!pipes_fit(512 << 10, 1 << 20, 1 << 20));
        assert_eq!(human(65 << 10), "65KiB");
        assert_eq!(human(1 << 20), "1MiB");
        assert_eq!(human(1025), "1025");
    }
}
