//! Readiness bits: what a backend reports for a descriptor, before the
//! facade filters them by the registration's interest.

use crate::Interest;

/// Readiness bits shared by the backends and the events they produce.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Ready(u8);

impl Ready {
    pub(crate) const READABLE: Ready = Ready(0b0001);
    pub(crate) const WRITABLE: Ready = Ready(0b0010);
    pub(crate) const ERROR: Ready = Ready(0b0100);
    pub(crate) const HANGUP: Ready = Ready(0b1000);
    pub(crate) const PRIORITY: Ready = Ready(0b1_0000);
    pub(crate) const READ_CLOSED: Ready = Ready(0b10_0000);
    pub(crate) const WRITE_CLOSED: Ready = Ready(0b100_0000);

    pub(crate) const fn contains(self, other: Ready) -> bool {
        self.0 & other.0 == other.0
    }

    pub(crate) fn insert(&mut self, other: Ready) {
        self.0 |= other.0;
    }

    /// The one place readiness gets its meaning (the facade's `Event`
    /// documents it): an error makes a descriptor readable and writable, a
    /// hangup readable (the read or write then reports it, as select(2)
    /// does); readable, writable and priority only as asked. A hangup closes
    /// both directions; an error, writing.
    #[inline]
    pub(crate) fn filter(self, interest: Interest) -> Ready {
        self.filter_bits(interest.to_bits())
    }

    /// [`filter`](Ready::filter) with the interest as its bits (read 1,
    /// write 2, priority 4), as a packed registration carries them. Bit
    /// arithmetic, with no branch on the interest: it runs once per event.
    #[inline]
    pub(crate) fn filter_bits(self, interest: u8) -> Ready {
        let mut ready = self.0;
        if ready & Ready::ERROR.0 != 0 {
            ready |= Ready::READABLE.0 | Ready::WRITABLE.0 | Ready::WRITE_CLOSED.0;
        }
        if ready & Ready::HANGUP.0 != 0 {
            ready |= Ready::READABLE.0 | Ready::READ_CLOSED.0 | Ready::WRITE_CLOSED.0;
        }
        // Interest's bits moved to readiness's (readable 1, writable 2,
        // priority 16).
        let asked = (interest & 0b011) | ((interest & 0b100) << 2);
        let always =
            Ready::ERROR.0 | Ready::HANGUP.0 | Ready::READ_CLOSED.0 | Ready::WRITE_CLOSED.0;
        Ready(ready & (asked | always))
    }
}

#[cfg(test)]
mod tests {
    use super::Ready;
    use crate::Interest;

    /// The rule of [`Ready::filter`] written out flag by flag.
    fn filter_by_rule(ready: Ready, interest: Interest) -> Ready {
        let mut ready = ready;
        if ready.contains(Ready::ERROR) {
            ready.insert(Ready::READABLE);
            ready.insert(Ready::WRITABLE);
            ready.insert(Ready::WRITE_CLOSED);
        }
        if ready.contains(Ready::HANGUP) {
            ready.insert(Ready::READABLE);
            ready.insert(Ready::READ_CLOSED);
            ready.insert(Ready::WRITE_CLOSED);
        }
        let mut out = Ready::default();
        for (asked, bit) in [
            (interest.is_readable(), Ready::READABLE),
            (interest.is_writable(), Ready::WRITABLE),
            (interest.is_priority(), Ready::PRIORITY),
            (true, Ready::ERROR),
            (true, Ready::HANGUP),
            (true, Ready::READ_CLOSED),
            (true, Ready::WRITE_CLOSED),
        ] {
            if asked && ready.contains(bit) {
                out.insert(bit);
            }
        }
        out
    }

    #[test]
    fn filter_follows_the_rule_for_every_readiness_and_interest() {
        for bits in 0..=0x7f_u8 {
            for interest in (1..=7).filter_map(Interest::from_bits) {
                let ready = Ready(bits);
                assert_eq!(
                    ready.filter(interest),
                    filter_by_rule(ready, interest),
                    "readiness {bits:#09b}, {interest:?}"
                );
            }
        }
    }
}
