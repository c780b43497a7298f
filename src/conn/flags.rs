//! A connection's three flags in one byte, so that it stays within 64
//! bytes.

/// A connection's flags, one bit each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags(u8);

/// Counted in the statistics as paused by backpressure.
pub const PAUSED: u8 = 1;
/// Not reading because the memory budget is spent (counted in the
/// statistics as `budget_paused`).
pub const STARVED: u8 = 2;
/// Unregistered by [`super::Step::Park`].
pub const PARKED: u8 = 4;

impl Flags {
    pub fn has(self, flag: u8) -> bool {
        self.0 & flag != 0
    }

    pub fn set(&mut self, flag: u8, on: bool) {
        match on {
            true => self.0 |= flag,
            false => self.0 &= !flag,
        }
    }
}
