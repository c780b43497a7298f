//! What became of a UDP socket's recent datagrams once they left flight:
//! echoed, or counted lost. An echo for a datagram no longer in flight is
//! then a duplicate (it was echoed already) or late (it was counted lost).
//! Bounded: the last [`History::span`] sequence numbers, two bits each.

/// What is known of a sequence number that is not in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Its echo came back (or a wrong one did).
    Echoed,
    /// It was counted lost.
    Lost,
    /// Too old to say, or never sent.
    Unknown,
}

/// Two ring bitmaps over the last `span` sequence numbers.
#[derive(Debug)]
pub struct History {
    echoed: Box<[u64]>,
    lost: Box<[u64]>,
}

impl History {
    /// A history long enough for `pipeline` datagrams in flight, at least
    /// 1,024 sequence numbers.
    pub fn new(pipeline: usize) -> History {
        let span = (pipeline as u64)
            .saturating_mul(8)
            .next_power_of_two()
            .max(1024);
        let words = (span / 64) as usize;
        History {
            echoed: vec![0; words].into_boxed_slice(),
            lost: vec![0; words].into_boxed_slice(),
        }
    }

    /// How many sequence numbers back it remembers.
    pub fn span(&self) -> u64 {
        self.echoed.len() as u64 * 64
    }

    fn at(&self, seq: u64) -> (usize, u64) {
        let bit = seq % self.span();
        ((bit / 64) as usize, 1 << (bit % 64))
    }

    /// Record `seq`'s fate (`Unknown`: it was just sent, forget what its
    /// slot in the ring held).
    pub fn mark(&mut self, seq: u64, fate: Fate) {
        let (w, b) = self.at(seq);
        self.echoed[w] &= !b;
        self.lost[w] &= !b;
        match fate {
            Fate::Echoed => self.echoed[w] |= b,
            Fate::Lost => self.lost[w] |= b,
            Fate::Unknown => {}
        }
    }

    /// The fate of `seq`, not in flight, when `next` is the next sequence
    /// number to send; `reach` bounds how far back a sequence number can
    /// be told apart (a partial one wraps).
    pub fn fate(&self, seq: u64, next: u64, reach: u64) -> Fate {
        if seq >= next || next - seq > self.span().min(reach) {
            return Fate::Unknown;
        }
        let (w, b) = self.at(seq);
        if self.echoed[w] & b != 0 {
            Fate::Echoed
        } else if self.lost[w] & b != 0 {
            Fate::Lost
        } else {
            Fate::Unknown
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fates_are_kept_for_the_span_and_reset_on_reuse() {
        let mut h = History::new(1);
        assert_eq!(h.span(), 1024);
        h.mark(5, Fate::Echoed);
        h.mark(6, Fate::Lost);
        assert_eq!(h.fate(5, 10, u64::MAX), Fate::Echoed);
        assert_eq!(h.fate(6, 10, u64::MAX), Fate::Lost);
        assert_eq!(h.fate(7, 10, u64::MAX), Fate::Unknown);
        assert_eq!(h.fate(10, 10, u64::MAX), Fate::Unknown, "never sent");
        assert_eq!(h.fate(5, 5 + 1025, u64::MAX), Fate::Unknown, "too old");
        assert_eq!(h.fate(5, 10, 4), Fate::Unknown, "beyond reach");
        // Sending 5 + 1024 reuses 5's bits.
        h.mark(5 + 1024, Fate::Unknown);
        assert_eq!(h.fate(5 + 1024, 5 + 1025, u64::MAX), Fate::Unknown);
        assert_eq!(History::new(1000).span(), 8192);
    }
}
