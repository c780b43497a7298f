//! What a registration waits for: readability, writability, urgent data, or
//! a union of them.

use std::fmt;
use std::num::NonZeroU8;
use std::ops::BitOr;

/// Readiness a registration asks for.
///
/// A small `Copy` value over three bits. There is no empty interest: the
/// values are [`Interest::READABLE`], [`Interest::WRITABLE`],
/// [`Interest::PRIORITY`] and their unions, so "registered for nothing"
/// cannot be expressed (Python's selectors reject it at run time; here the
/// type rules it out).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Interest(NonZeroU8);

const READ: u8 = 0b01;
const WRITE: u8 = 0b10;
const PRI: u8 = 0b100;

/// Never zero, so `Option<Registration>` needs no extra tag and the
/// selector's descriptor table stays dense (16 bytes a slot, not 24).
const fn bits(bits: u8) -> NonZeroU8 {
    match NonZeroU8::new(bits) {
        Some(bits) => bits,
        None => panic!("an interest has at least one bit"),
    }
}

impl Interest {
    /// Wake when a read would not block (the tutorial's `inputs`).
    pub const READABLE: Interest = Interest(bits(READ));
    /// Wake when a write would not block (the tutorial's `outputs`).
    pub const WRITABLE: Interest = Interest(bits(WRITE));
    /// Both readable and writable.
    pub const BOTH: Interest = Interest(bits(READ | WRITE));
    /// Wake when urgent data is pending: TCP out-of-band data (`MSG_OOB`),
    /// the third list of the tutorial's `select(inputs, outputs, inputs)`
    /// (select(2)'s `exceptfds`, poll's `POLLPRI`, epoll's `EPOLLPRI`).
    /// Not available on kqueue (registering it there is `Unsupported`).
    pub const PRIORITY: Interest = Interest(bits(PRI));

    /// Whether readability is asked for.
    pub const fn is_readable(self) -> bool {
        self.0.get() & READ != 0
    }

    /// Whether writability is asked for.
    pub const fn is_writable(self) -> bool {
        self.0.get() & WRITE != 0
    }

    /// Whether urgent (priority) data is asked for.
    pub const fn is_priority(self) -> bool {
        self.0.get() & PRI != 0
    }

    /// The three bits, for the backends' packed tags.
    pub(crate) const fn to_bits(self) -> u8 {
        self.0.get()
    }

    /// The interest with these bits, if any is set.
    pub(crate) const fn from_bits(bits: u8) -> Option<Interest> {
        match NonZeroU8::new(bits & (READ | WRITE | PRI)) {
            None => None,
            Some(bits) => Some(Interest(bits)),
        }
    }

    /// The union of two interests.
    #[must_use]
    pub const fn add(self, other: Interest) -> Interest {
        Interest(bits(self.0.get() | other.0.get()))
    }

    /// `self` without `other`, or `None` when nothing would be left.
    #[must_use]
    pub const fn remove(self, other: Interest) -> Option<Interest> {
        match NonZeroU8::new(self.0.get() & !other.0.get()) {
            None => None,
            Some(bits) => Some(Interest(bits)),
        }
    }
}

impl BitOr for Interest {
    type Output = Interest;

    fn bitor(self, other: Interest) -> Interest {
        self.add(other)
    }
}

impl fmt::Debug for Interest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (self.is_readable(), "READABLE"),
            (self.is_writable(), "WRITABLE"),
            (self.is_priority(), "PRIORITY"),
        ];
        let mut first = true;
        for (_, name) in names.iter().filter(|(set, _)| *set) {
            if !first {
                f.write_str(" | ")?;
            }
            f.write_str(name)?;
            first = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Interest;

    #[test]
    fn union_and_removal() {
        let both = Interest::READABLE | Interest::WRITABLE;
        assert_eq!(both, Interest::BOTH);
        assert!(both.is_readable() && both.is_writable());
        assert_eq!(both.remove(Interest::WRITABLE), Some(Interest::READABLE));
        assert_eq!(Interest::READABLE.remove(Interest::READABLE), None);
        assert_eq!(
            Interest::READABLE.remove(Interest::WRITABLE),
            Some(Interest::READABLE)
        );
    }

    #[test]
    fn debug_names_the_bits() {
        assert_eq!(format!("{:?}", Interest::BOTH), "READABLE | WRITABLE");
        assert_eq!(format!("{:?}", Interest::WRITABLE), "WRITABLE");
        assert_eq!(
            format!("{:?}", Interest::READABLE | Interest::PRIORITY),
            "READABLE | PRIORITY"
        );
    }

    #[test]
    fn priority_is_its_own_bit() {
        let all = Interest::BOTH | Interest::PRIORITY;
        assert!(all.is_priority() && all.is_readable() && all.is_writable());
        assert!(!Interest::BOTH.is_priority());
        assert_eq!(all.remove(Interest::BOTH), Some(Interest::PRIORITY));
        for i in [Interest::READABLE, Interest::PRIORITY, all] {
            assert_eq!(Interest::from_bits(i.to_bits()), Some(i));
        }
        assert_eq!(Interest::from_bits(0), None);
    }
}
