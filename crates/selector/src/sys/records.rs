//! [`Records`]: a wait's results kept as the kernel wrote them, for a
//! backend whose records can be read as they are (epoll), so a wait copies
//! nothing. The facade reads them as (tag, readiness) pairs, as it reads
//! any backend's reports, and never sees the kernel's layout.

use super::{Ready, Tag};

/// The buffer a backend's [`select_records`](super::Backend::select_records)
/// fills; empty on an OS whose backends have none.
#[derive(Default)]
pub(crate) struct Records {
    #[cfg(has_epoll)]
    pub(super) buf: Vec<rustix::event::epoll::Event>,
}

// SAFETY: `epoll::Event` is neither `Send` nor `Sync` only because its data
// field may hold a pointer. The epoll backend stores a `Tag` there (a plain
// integer, `EventData::new_u64`), never a pointer, so the records are plain
// data, read through shared references only.
#[cfg(has_epoll)]
unsafe impl Send for Records {}
// SAFETY: as for `Send`.
#[cfg(has_epoll)]
unsafe impl Sync for Records {}

impl Records {
    /// How many records the last wait left.
    pub(crate) fn len(&self) -> usize {
        self.iter().len()
    }

    /// Forget the records (capacity stays).
    pub(crate) fn clear(&mut self) {
        #[cfg(has_epoll)]
        self.buf.clear();
    }

    /// Whether every record names a registration packed whole (see
    /// [`Tag::is_registration`]), so none needs the facade's table.
    pub(crate) fn all_registrations(&self) -> bool {
        #[cfg(has_epoll)]
        return self
            .buf
            .iter()
            .all(|r| Tag::from_u64(r.data.u64()).is_registration());
        #[cfg(not(has_epoll))]
        return true;
    }

    /// The records in the kernel's order, as (tag, readiness).
    pub(crate) fn iter(&self) -> RecordsIter<'_> {
        RecordsIter {
            #[cfg(has_epoll)]
            inner: self.buf.iter(),
            #[cfg(not(has_epoll))]
            inner: std::marker::PhantomData,
        }
    }
}

/// The records of one [`Records`], decoded one by one.
#[derive(Clone)]
pub(crate) struct RecordsIter<'a> {
    #[cfg(has_epoll)]
    inner: std::slice::Iter<'a, rustix::event::epoll::Event>,
    #[cfg(not(has_epoll))]
    inner: std::marker::PhantomData<&'a ()>,
}

impl Iterator for RecordsIter<'_> {
    type Item = (Tag, Ready);

    #[inline]
    fn next(&mut self) -> Option<(Tag, Ready)> {
        #[cfg(has_epoll)]
        return self.inner.next().map(|record| {
            let flags = record.flags;
            (Tag::from_u64(record.data.u64()), super::epoll::ready(flags))
        });
        #[cfg(not(has_epoll))]
        return None;
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.len();
        (n, Some(n))
    }
}

impl ExactSizeIterator for RecordsIter<'_> {
    fn len(&self) -> usize {
        #[cfg(has_epoll)]
        return self.inner.len();
        #[cfg(not(has_epoll))]
        return 0;
    }
}
