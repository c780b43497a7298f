//! `--idle-timeout`: open connections in the order they last received
//! data, oldest first.
//!
//! Every connection has the same timeout, so the least recently active one
//! is always the next to expire: an intrusive doubly-linked list over the
//! connections' slab keys, with O(1) insert, touch and remove, holds exactly
//! one entry per open connection and nothing for closed ones.

use std::time::Instant;

const NIL: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct Link {
    prev: u32,
    next: u32,
    /// When the connection last received data.
    at: Instant,
    linked: bool,
}

/// Connections by last activity; indexed by slab key.
#[derive(Debug)]
pub struct IdleList {
    links: Vec<Link>,
    head: u32,
    tail: u32,
    len: usize,
}

impl Default for IdleList {
    fn default() -> IdleList {
        IdleList {
            links: Vec::new(),
            head: NIL,
            tail: NIL,
            len: 0,
        }
    }
}

impl IdleList {
    /// Connections tracked: one per open connection.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Nothing is tracked: give the link table back to the allocator.
    pub fn shrink(&mut self) {
        if self.len == 0 {
            self.links = Vec::new();
        }
    }

    /// Track `key`, active `now`. Keys are slab keys, so they stay small
    /// and the link table never outgrows the most connections open at once.
    pub fn insert(&mut self, key: usize, now: Instant) {
        let Ok(k) = u32::try_from(key) else {
            return; // beyond any descriptor limit; such a key cannot occur
        };
        if key >= self.links.len() {
            let unlinked = Link {
                prev: NIL,
                next: NIL,
                at: now,
                linked: false,
            };
            self.links.resize(key + 1, unlinked);
        }
        if self.links[key].linked {
            self.unlink(k);
        }
        self.links[key] = Link {
            prev: self.tail,
            next: NIL,
            at: now,
            linked: true,
        };
        match self.tail {
            NIL => self.head = k,
            tail => self.links[tail as usize].next = k,
        }
        self.tail = k;
        self.len += 1;
    }

    /// `key` received data `now`: it moves to the back.
    pub fn touch(&mut self, key: usize, now: Instant) {
        self.insert(key, now);
    }

    /// Stop tracking `key` (its connection closed).
    pub fn remove(&mut self, key: usize) {
        if let Ok(k) = u32::try_from(key) {
            if self.links.get(key).is_some_and(|l| l.linked) {
                self.unlink(k);
            }
        }
    }

    /// The least recently active connection and when it last received data.
    pub fn oldest(&self) -> Option<(usize, Instant)> {
        (self.head != NIL).then(|| (self.head as usize, self.links[self.head as usize].at))
    }

    fn unlink(&mut self, k: u32) {
        let Link { prev, next, .. } = self.links[k as usize];
        match prev {
            NIL => self.head = next,
            p => self.links[p as usize].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.links[n as usize].prev = prev,
        }
        self.links[k as usize].linked = false;
        self.len -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::IdleList;
    use proptest::prelude::*;
    use std::time::{Duration, Instant};

    proptest! {
        /// The list always agrees with a model: the open keys ordered by
        /// last activity, one entry each.
        #[test]
        fn matches_a_model(ops in prop::collection::vec((0u8..3, 0usize..16), 0..200)) {
            let t0 = Instant::now();
            let mut list = IdleList::default();
            let mut model: Vec<(usize, Instant)> = Vec::new();
            for (i, (op, key)) in ops.into_iter().enumerate() {
                let now = t0 + Duration::from_millis(i as u64);
                model.retain(|&(k, _)| k != key);
                match op {
                    0 | 1 => {
                        list.insert(key, now);
                        model.push((key, now));
                    }
                    _ => list.remove(key),
                }
                prop_assert_eq!(list.len(), model.len());
                prop_assert_eq!(list.oldest(), model.first().copied());
            }
            while let Some((key, _)) = list.oldest() {
                prop_assert_eq!(Some(key), model.first().map(|&(k, _)| k));
                list.remove(key);
                model.remove(0);
            }
            prop_assert!(model.is_empty());
        }
    }
}
