//! [`Tag`]: the word a backend keeps per registration and reports back.

use crate::{Interest, Token};
use std::os::fd::RawFd;

/// How a backend names a ready descriptor to the facade: by its number, or,
/// where the kernel keeps a word per registration (epoll's event data), by
/// the registration itself — token and interest packed — which spares the
/// facade a lookup in its table for every event (a cache miss when many
/// descriptors are registered).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tag(u64);

impl Tag {
    const PACKED: u64 = 1 << 63;
    const TOKEN_LIMIT: usize = 1 << 60;
    /// The selector's own wake descriptor (for registries): packed with no
    /// interest bits, which no registration has.
    pub(crate) const INTERNAL: Tag = Tag(Tag::PACKED);

    /// A descriptor number; the facade looks the registration up.
    pub(crate) fn fd(fd: RawFd) -> Tag {
        Tag(u64::from(fd as u32))
    }

    /// The registration itself, when the token fits in 60 bits (any token
    /// a slab or a `Vec` index produces); otherwise the descriptor number.
    pub(crate) fn pack(fd: RawFd, token: Token, interest: Interest) -> Tag {
        if token.0 >= Tag::TOKEN_LIMIT {
            return Tag::fd(fd);
        }
        Tag(Tag::PACKED | (token.0 as u64) << 3 | u64::from(interest.to_bits()))
    }

    /// The registration, or the descriptor number to look it up by.
    pub(crate) fn unpack(self) -> Result<(Token, Interest), RawFd> {
        if self.0 & Tag::PACKED == 0 {
            return Err(self.0 as u32 as RawFd);
        }
        // Packed from an interest, so never empty.
        let interest = Interest::from_bits((self.0 & 0b111) as u8).unwrap_or(Interest::READABLE);
        Ok((Token(((self.0 & !Tag::PACKED) >> 3) as usize), interest))
    }

    /// Whether this is a registration packed whole (token and interest),
    /// which needs no lookup: not a descriptor number, and not
    /// [`INTERNAL`](Tag::INTERNAL).
    #[inline]
    #[cfg_attr(not(has_epoll), allow(dead_code))] // only epoll keeps records
    pub(crate) fn is_registration(self) -> bool {
        self.0 & Tag::PACKED != 0 && self.0 & 0b111 != 0
    }

    /// The token and interest bits of a tag for which
    /// [`is_registration`](Tag::is_registration) holds.
    #[inline]
    pub(crate) fn registration(self) -> (Token, u8) {
        (
            Token(((self.0 & !Tag::PACKED) >> 3) as usize),
            (self.0 & 0b111) as u8,
        )
    }

    /// The word epoll keeps in its event data.
    #[cfg(has_epoll)]
    pub(crate) fn to_u64(self) -> u64 {
        self.0
    }

    #[cfg(has_epoll)]
    pub(crate) fn from_u64(word: u64) -> Tag {
        Tag(word)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip() {
        let all = Interest::BOTH | Interest::PRIORITY;
        for interest in [Interest::READABLE, Interest::WRITABLE, Interest::BOTH, all] {
            for token in [0, 1, 7, (1 << 24) + 5, (1 << 60) - 1] {
                let tag = Tag::pack(9, Token(token), interest);
                assert_eq!(tag.unpack(), Ok((Token(token), interest)));
            }
        }
        assert_eq!(
            Tag::pack(9, Token(1 << 60), Interest::BOTH).unpack(),
            Err(9)
        );
        assert_eq!(
            Tag::pack(4, Token(usize::MAX), Interest::READABLE).unpack(),
            Err(4)
        );
        assert_eq!(Tag::fd(1500).unpack(), Err(1500));
    }
}
