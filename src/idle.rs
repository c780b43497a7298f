//! Keys in the order they were last used, oldest first: the one structure
//! behind `--idle-timeout` (open connections by last activity), the
//! PROXY-header deadlines, the metrics endpoint's connections and
//! `--udp-rate`'s table of sources (forget the least recently seen).
//!
//! Every user has one timeout or one eviction rule for all its entries, so
//! the least recently used entry is always the next to go: an intrusive
//! doubly-linked list over small dense keys (slab keys, table slots), with
//! O(1) insert, touch and remove. It holds exactly one entry per key in use
//! and nothing for keys removed.

use std::time::Instant;

const NIL: u32 = u32::MAX;

#[derive(Clone, Debug)]
struct Link<T> {
    prev: u32,
    next: u32,
    value: Option<T>,
}

/// Values by key, ordered by last use; keys are small (slab keys or slots),
/// so the link table never outgrows the most keys in use at once.
#[derive(Debug)]
pub struct Recency<T> {
    links: Vec<Link<T>>,
    /// Least recently used.
    head: u32,
    /// Most recently used.
    tail: u32,
    len: usize,
}

impl<T> Default for Recency<T> {
    fn default() -> Recency<T> {
        Recency {
            links: Vec::new(),
            head: NIL,
            tail: NIL,
            len: 0,
        }
    }
}

impl<T> Recency<T> {
    /// Keys tracked.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Nothing is tracked: give the link table back to the allocator.
    pub fn shrink(&mut self) {
        if self.len == 0 {
            self.links = Vec::new();
        }
    }

    /// Track `key` with `value` as the most recently used, replacing what
    /// it held. A key beyond `u32` (no slab or table gets there) is ignored.
    pub fn insert(&mut self, key: usize, value: T) {
        let Ok(k) = u32::try_from(key) else {
            return;
        };
        if k == NIL {
            return;
        }
        if key >= self.links.len() {
            self.links.resize_with(key + 1, || Link {
                prev: NIL,
                next: NIL,
                value: None,
            });
        }
        self.remove(key);
        self.links[key] = Link {
            prev: self.tail,
            next: NIL,
            value: Some(value),
        };
        match self.tail {
            NIL => self.head = k,
            tail => self.links[tail as usize].next = k,
        }
        self.tail = k;
        self.len += 1;
    }

    /// Make `key` the most recently used, keeping its value; false when it
    /// is not tracked.
    pub fn touch(&mut self, key: usize) -> bool {
        match self.remove(key) {
            Some(value) => {
                self.insert(key, value);
                true
            }
            None => false,
        }
    }

    /// Stop tracking `key`; its value, if it was tracked.
    pub fn remove(&mut self, key: usize) -> Option<T> {
        let link = self.links.get_mut(key)?;
        let value = link.value.take()?;
        let (prev, next) = (link.prev, link.next);
        match prev {
            NIL => self.head = next,
            p => self.links[p as usize].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.links[n as usize].prev = prev,
        }
        self.len -= 1;
        Some(value)
    }

    /// The value of `key`, if tracked (its place does not change).
    pub fn get_mut(&mut self, key: usize) -> Option<&mut T> {
        self.links.get_mut(key)?.value.as_mut()
    }

    /// The least recently used key and its value.
    pub fn oldest(&self) -> Option<(usize, &T)> {
        let head = self.links.get(self.head as usize)?;
        Some((self.head as usize, head.value.as_ref()?))
    }
}

/// `--idle-timeout`: open connections by the time they last received data,
/// indexed by slab key.
#[derive(Debug, Default)]
pub struct IdleList(Recency<Instant>);

impl IdleList {
    /// Connections tracked: one per open connection.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Nothing is tracked: give the link table back to the allocator.
    pub fn shrink(&mut self) {
        self.0.shrink();
    }

    /// Track `key`, active `now`.
    pub fn insert(&mut self, key: usize, now: Instant) {
        self.0.insert(key, now);
    }

    /// `key` received data `now`: it moves to the back.
    pub fn touch(&mut self, key: usize, now: Instant) {
        self.0.insert(key, now);
    }

    /// Stop tracking `key` (its connection closed).
    pub fn remove(&mut self, key: usize) {
        self.0.remove(key);
    }

    /// The least recently active connection and when it last received data.
    pub fn oldest(&self) -> Option<(usize, Instant)> {
        self.0.oldest().map(|(key, &at)| (key, at))
    }
}

#[cfg(test)]
mod tests {
    use super::{IdleList, Recency};
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

        /// `touch` keeps the value and moves the key to the back;
        /// `get_mut` changes the value in place.
        #[test]
        fn touch_and_get_mut_match_a_model(ops in prop::collection::vec((0u8..4, 0usize..8), 0..200)) {
            let mut list = Recency::default();
            let mut model: Vec<(usize, u32)> = Vec::new();
            for (i, (op, key)) in ops.into_iter().enumerate() {
                let pos = model.iter().position(|&(k, _)| k == key);
                match op {
                    0 => {
                        list.insert(key, i as u32);
                        if let Some(p) = pos { model.remove(p); }
                        model.push((key, i as u32));
                    }
                    1 => {
                        prop_assert_eq!(list.touch(key), pos.is_some());
                        if let Some(p) = pos { let e = model.remove(p); model.push(e); }
                    }
                    2 => {
                        if let Some(v) = list.get_mut(key) { *v += 1000; }
                        if let Some(p) = pos { model[p].1 += 1000; }
                    }
                    _ => {
                        prop_assert_eq!(list.remove(key), pos.map(|p| model.remove(p).1));
                    }
                }
                prop_assert_eq!(list.len(), model.len());
                prop_assert_eq!(list.oldest().map(|(k, &v)| (k, v)), model.first().copied());
            }
        }
    }
}
