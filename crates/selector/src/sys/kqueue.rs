//! kqueue(2), for macOS and the BSDs: level-triggered by default,
//! `EV_ONESHOT` and `EV_CLEAR` (edge) when asked. Like epoll, each wait costs
//! time in proportion to the ready descriptors.
//!
//! Checked only by compiling (clippy) for FreeBSD and macOS; the behavioural
//! suite runs on Linux, so this backend is not yet tested (see the README).
//!
//! Quirks handled here: reading and writing are two filters, so one
//! descriptor can come back as two kernel events; they are merged into one.
//! `EV_EOF` on the read filter is end of file (readable, read closed); on the
//! write filter it is a hangup; `EV_ERROR` is an error. Each direction is its
//! own filter, so a oneshot registration for both fires once per direction.
//! There is no portable urgent-data filter, so priority interest is refused
//! by the facade. Regular files
//! are kept on a side list and reported always ready, as select and poll do
//! (kqueue would report them readable only before end of file).

use super::Ready;
use super::{AlwaysReady, Backend, Reg, Tag};
use crate::Mode;
use rustix::event::kqueue::{self, Event, EventFilter, EventFlags};
use rustix::io::Errno;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::ptr;
use std::time::Duration;

pub(crate) struct Kqueue {
    kq: OwnedFd,
    /// Registration by descriptor number, to know which filters to change.
    interest: Vec<Option<Reg>>,
    always_ready: AlwaysReady,
    buffer: Vec<Event>,
    merged: Vec<(RawFd, Ready)>,
}

// SAFETY: `Event` is not `Send` only because its udata field can hold a
// pointer. This backend always stores a null pointer there, so the buffer is
// plain data that may move between threads.
unsafe impl Send for Kqueue {}

impl std::fmt::Debug for Kqueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kqueue")
            .field("kq", &self.kq)
            .field("always_ready", &self.always_ready)
            .finish_non_exhaustive()
    }
}

fn change(fd: RawFd, write: bool, flags: EventFlags) -> Event {
    let filter = if write {
        EventFilter::Write(fd)
    } else {
        EventFilter::Read(fd)
    };
    Event::new(filter, flags, ptr::null_mut())
}

fn is_regular_file(fd: BorrowedFd<'_>) -> bool {
    rustix::fs::fstat(fd).is_ok_and(|st| {
        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile
    })
}

impl Kqueue {
    /// Apply filter changes; with `EV_RECEIPT` every change reports its own
    /// result instead of failing the whole call (the receipt's flags are
    /// just `EV_ERROR`, so the change is not named). A deletion may find the
    /// filter gone already: `ENOENT` (a fired oneshot; adding never says
    /// it), and with `closing`, `EBADF` (the descriptor was closed first).
    fn apply(&mut self, changes: &[Event], closing: bool) -> io::Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut receipts: Vec<Event> = Vec::with_capacity(changes.len());
        // SAFETY: the descriptors named in `changes` are registered, hence
        // open (unregister before close); the kernel drops a filter on its
        // own when its descriptor is closed.
        unsafe {
            kqueue::kevent_timespec(
                &self.kq,
                changes,
                rustix::buffer::spare_capacity(&mut receipts),
                Some(&rustix::event::Timespec::default()),
            )?;
        }
        for receipt in &receipts {
            let code = receipt.data();
            if receipt.flags().contains(EventFlags::ERROR) && code != 0 {
                let errno = Errno::from_raw_os_error(code as i32);
                let gone = errno == Errno::NOENT || (closing && errno == Errno::BADF);
                if !gone {
                    return Err(errno.into());
                }
            }
        }
        Ok(())
    }

    /// Adds every filter `new` wants (adding again updates the flags and
    /// re-arms a fired oneshot) and deletes those only `old` wanted.
    fn set(&mut self, fd: RawFd, old: Option<Reg>, new: Option<Reg>) -> io::Result<()> {
        let mut add = EventFlags::ADD | EventFlags::RECEIPT;
        match new.map(|r| r.mode) {
            Some(Mode::Oneshot) => add |= EventFlags::ONESHOT,
            Some(Mode::Edge) => add |= EventFlags::CLEAR,
            _ => {}
        }
        let delete = EventFlags::DELETE | EventFlags::RECEIPT;
        let mut changes = Vec::with_capacity(2);
        for write in [false, true] {
            let want = |r: Option<Reg>| {
                r.is_some_and(|r| {
                    if write {
                        r.interest.is_writable()
                    } else {
                        r.interest.is_readable()
                    }
                })
            };
            match (want(old), want(new)) {
                (_, true) => changes.push(change(fd, write, add)),
                (true, false) => changes.push(change(fd, write, delete)),
                _ => {}
            }
        }
        self.apply(&changes, new.is_none())
    }
}

impl Backend for Kqueue {
    fn create() -> io::Result<Self> {
        let kq = kqueue::kqueue()?;
        // Not inherited by exec'd programs (kqueue has no creation flag
        // for it on every system).
        rustix::io::fcntl_setfd(&kq, rustix::io::FdFlags::CLOEXEC)?;
        Ok(Kqueue {
            kq,
            interest: Vec::new(),
            always_ready: AlwaysReady::default(),
            buffer: Vec::new(),
            merged: Vec::new(),
        })
    }

    fn register(&mut self, fd: BorrowedFd<'_>, reg: Reg) -> io::Result<()> {
        let raw = fd.as_raw_fd();
        if is_regular_file(fd) {
            self.always_ready.register(raw, reg);
            return Ok(());
        }
        self.set(raw, None, Some(reg))?;
        let slot = raw as usize;
        if self.interest.len() <= slot {
            self.interest.resize(slot + 1, None);
        }
        self.interest[slot] = Some(reg);
        Ok(())
    }

    fn modify(&mut self, fd: BorrowedFd<'_>, reg: Reg) -> io::Result<()> {
        let raw = fd.as_raw_fd();
        if self.always_ready.modify(raw, reg) {
            return Ok(());
        }
        let old = self.interest.get(raw as usize).copied().flatten();
        self.set(raw, old, Some(reg))?;
        self.interest[raw as usize] = Some(reg);
        Ok(())
    }

    fn unregister(&mut self, fd: RawFd) -> io::Result<()> {
        if self.always_ready.unregister(fd) {
            return Ok(());
        }
        let old = self.interest.get_mut(fd as usize).and_then(Option::take);
        self.set(fd, old, None)
    }

    fn select(
        &mut self,
        timeout: Option<Duration>,
        max: usize,
        emit: &mut impl FnMut(Tag, Ready),
    ) -> io::Result<()> {
        let timeout = if self.always_ready.is_empty() || !self.always_ready.any_armed() {
            timeout
        } else {
            Some(Duration::ZERO)
        };
        self.buffer.clear();
        self.buffer.reserve(max.max(1));
        let timespec = super::timespec(timeout);
        // SAFETY: no changes are passed; the wait only fills `buffer`.
        unsafe {
            kqueue::kevent_timespec(
                self.kq.as_fd(),
                &[],
                rustix::buffer::spare_capacity(&mut self.buffer),
                timespec.as_ref(),
            )?;
        }
        self.merged.clear();
        for event in &self.buffer {
            let flags = event.flags();
            let mut ready = Ready::default();
            let fd = match event.filter() {
                EventFilter::Read(fd) => {
                    ready.insert(Ready::READABLE);
                    if flags.contains(EventFlags::EOF) {
                        ready.insert(Ready::READ_CLOSED);
                    }
                    fd
                }
                EventFilter::Write(fd) => {
                    if flags.contains(EventFlags::EOF) {
                        ready.insert(Ready::HANGUP);
                    }
                    ready.insert(Ready::WRITABLE);
                    fd
                }
                _ => continue,
            };
            if flags.contains(EventFlags::ERROR) {
                ready.insert(Ready::ERROR);
            }
            self.merged.push((fd, ready));
        }
        // A descriptor ready both ways comes back as two kernel events.
        self.merged.sort_unstable_by_key(|&(fd, _)| fd);
        self.merged.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                kept.1.insert(later.1);
            }
            same
        });
        for &(fd, ready) in &self.merged {
            let reg = self.interest.get(fd as usize).copied().flatten();
            emit(reg.map_or(Tag::fd(fd), |r| r.tag), ready);
        }
        self.always_ready.emit(emit);
        Ok(())
    }
}
