//! A connection's outgoing queue: the tutorial's `message_queues[s]`.

/// Bytes received and not yet sent back, oldest first.
///
/// A `Vec` with a read offset: appends go to the end, sends take from the
/// front, and the space is reclaimed when the queue empties (the common
/// case) or when the consumed front grows past half of it.
#[derive(Debug, Default)]
pub struct OutQueue {
    buf: Vec<u8>,
    head: usize,
}

/// Capacity kept after a queue drains; larger buffers go back to the
/// allocator at once, so memory falls after a burst, not only at close.
const KEEP_CAPACITY: usize = 4 * 1024;

impl OutQueue {
    pub fn len(&self) -> usize {
        self.buf.len() - self.head
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Append `data`. The buffer grows by doubling, but never past `limit`
    /// bytes of capacity unless the queued bytes themselves need it, so a
    /// connection capped at `--max-pending` holds at most that much memory.
    pub fn push(&mut self, data: &[u8], limit: usize) {
        if self.compacts_for(data.len()) {
            self.buf.drain(..self.head);
            self.head = 0;
        }
        let grown = self.capacity_after(data.len(), limit);
        if grown > self.buf.capacity() {
            self.buf.reserve_exact(grown - self.buf.len());
        }
        self.buf.extend_from_slice(data);
    }

    /// Whether pushing `n` bytes first moves the unsent bytes to the front.
    fn compacts_for(&self, n: usize) -> bool {
        self.head > 0
            && (self.head >= self.buf.len() / 2 || self.buf.len() + n > self.buf.capacity())
    }

    /// The capacity the buffer will have after pushing `n` bytes.
    fn capacity_after(&self, n: usize, limit: usize) -> usize {
        let cap = self.buf.capacity();
        let used = if self.compacts_for(n) {
            self.len()
        } else {
            self.buf.len()
        };
        let needed = used + n;
        if needed > cap {
            (cap * 2).clamp(needed, limit.max(needed))
        } else {
            cap
        }
    }

    /// How much more memory pushing `n` bytes would take, for the budget.
    pub fn growth_for(&self, n: usize, limit: usize) -> usize {
        self.capacity_after(n, limit) - self.buf.capacity()
    }

    /// Bytes of memory held, for the budget.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    pub fn front(&self) -> &[u8] {
        &self.buf[self.head..]
    }

    pub fn consume(&mut self, n: usize) {
        self.head = (self.head + n).min(self.buf.len());
        if self.head == self.buf.len() {
            self.head = 0;
            if self.buf.capacity() > KEEP_CAPACITY {
                self.buf = Vec::new();
            } else {
                self.buf.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::OutQueue;
    use proptest::prelude::*;

    const LIMIT: usize = 1000;

    proptest! {
        /// Whatever is pushed comes out once, in order, however it is sent.
        #[test]
        fn out_queue_preserves_bytes(ops in prop::collection::vec(
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..300).prop_map(Ok),
                (0usize..400).prop_map(Err),
            ],
            0..200,
        )) {
            let mut queue = OutQueue::default();
            let mut pushed = Vec::new();
            let mut sent = Vec::new();
            for op in ops {
                match op {
                    // The server reads no more than the room left under the
                    // limit, so the queue never holds more than LIMIT.
                    Ok(data) if queue.len() + data.len() <= LIMIT => {
                        pushed.extend_from_slice(&data);
                        let before = queue.capacity();
                        let growth = queue.growth_for(data.len(), LIMIT);
                        queue.push(&data, LIMIT);
                        prop_assert!(queue.capacity() <= LIMIT);
                        // The budget is told the growth before the push.
                        prop_assert_eq!(queue.capacity(), before + growth);
                    }
                    Ok(_) => {}
                    Err(n) => {
                        let n = n.min(queue.len());
                        sent.extend_from_slice(&queue.front()[..n]);
                        queue.consume(n);
                    }
                }
                prop_assert_eq!(queue.len(), pushed.len() - sent.len());
            }
            sent.extend_from_slice(queue.front());
            prop_assert_eq!(sent, pushed);
        }
    }
}
