//! select(2), over bit vectors sized to the highest registered descriptor,
//! so descriptors above 1023 work (the kernel takes any `nfds`; only libc's
//! fixed `fd_set` stops at `FD_SETSIZE`). Each wait copies and scans the sets,
//! so its cost grows with the highest descriptor number.
//!
//! select(2) cannot say *why* a descriptor is ready: an error or hangup just
//! makes it readable or writable. To report the same error and hangup bits as
//! poll and epoll, the ready descriptors (only those) are classified with one
//! zero-timeout poll(2). A descriptor closed behind the selector's back makes
//! the whole call fail with EBADF; the registered descriptors are then checked
//! one by one and the closed ones reported as errors, as poll's POLLNVAL.
//!
//! Priority interest uses the third set, `exceptfds` (TCP urgent data). Read
//! closed comes from the same classifying poll, so it is known only for the
//! descriptors select(2) found ready. Oneshot is emulated: a reported oneshot
//! descriptor leaves the sets until modified. Edge-triggered is not offered.

use super::Ready;
use super::{Backend, Reg, Tag};
use crate::{Interest, Mode};
use rustix::event::{fd_set_insert, fd_set_num_elements, fd_set_remove};
use rustix::event::{FdSetElement, FdSetIter, PollFd, PollFlags};
use rustix::io::Errno;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

/// A registration as this backend keeps it.
#[derive(Clone, Copy, Debug)]
struct Entry {
    interest: Interest,
    oneshot: bool,
    /// False once a oneshot registration was reported (out of the sets).
    armed: bool,
    /// Reported with its events.
    tag: Tag,
}

#[derive(Default)]
pub(crate) struct Select {
    read: Vec<FdSetElement>,
    write: Vec<FdSetElement>,
    except: Vec<FdSetElement>,
    /// Registration by descriptor number, to find the new highest on
    /// unregister and to re-arm.
    interest: Vec<Option<Entry>>,
    /// One past the highest registered descriptor.
    nfds: RawFd,
    /// How many armed registrations ask for priority; none: no `exceptfds`.
    priority: usize,
    /// How many registrations are oneshot; none: no disarming to do.
    oneshots: usize,
    /// Scratch space reused by every wait.
    read_out: Vec<FdSetElement>,
    write_out: Vec<FdSetElement>,
    except_out: Vec<FdSetElement>,
    ready: Vec<(RawFd, Ready)>,
    classify: Vec<PollFd<'static>>,
    /// Registered descriptors found closed during this wait.
    closed: Vec<RawFd>,
}

impl std::fmt::Debug for Select {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Select")
            .field("nfds", &self.nfds)
            .finish_non_exhaustive()
    }
}

impl Select {
    /// Puts `fd` in the sets its registration asks for, or (`None`) in none.
    fn set(&mut self, fd: RawFd, interest: Option<Interest>) {
        let elements = fd_set_num_elements(0, fd + 1);
        if self.read.len() < elements {
            self.read.resize(elements, FdSetElement::default());
            self.write.resize(elements, FdSetElement::default());
            self.except.resize(elements, FdSetElement::default());
        }
        let sets = [
            (&mut self.read, interest.is_some_and(Interest::is_readable)),
            (&mut self.write, interest.is_some_and(Interest::is_writable)),
            (
                &mut self.except,
                interest.is_some_and(Interest::is_priority),
            ),
        ];
        for (set, wanted) in sets {
            if wanted {
                fd_set_insert(set, fd);
            } else {
                fd_set_remove(set, fd);
            }
        }
    }

    /// Records `entry` for `fd` (`None`: forgets it), keeping the sets and
    /// the counts in step.
    fn put(&mut self, fd: RawFd, entry: Option<Entry>) {
        let counts = |e: Option<Entry>| match e {
            Some(e) => (
                usize::from(e.armed && e.interest.is_priority()),
                usize::from(e.oneshot),
            ),
            None => (0, 0),
        };
        let (old_priority, old_oneshot) = counts(self.interest[fd as usize]);
        let (new_priority, new_oneshot) = counts(entry);
        self.priority = self.priority + new_priority - old_priority;
        self.oneshots = self.oneshots + new_oneshot - old_oneshot;
        self.interest[fd as usize] = entry;
        self.set(fd, entry.filter(|e| e.armed).map(|e| e.interest));
    }

    fn registered(&self) -> impl Iterator<Item = RawFd> + '_ {
        (0..self.nfds).filter(|&fd| self.interest[fd as usize].is_some_and(|e| e.armed))
    }

    /// Collects the ready descriptors from the output sets, in ascending
    /// order, merging a descriptor found in more than one set.
    fn collect_ready(&mut self, with_except: bool) {
        self.ready.clear();
        let mut read = FdSetIter::new(&self.read_out).peekable();
        let mut write = FdSetIter::new(&self.write_out).peekable();
        let no_set: &[FdSetElement] = &[];
        let except_out = if with_except {
            &self.except_out[..]
        } else {
            no_set
        };
        let mut except = FdSetIter::new(except_out).peekable();
        loop {
            let next = [read.peek(), write.peek(), except.peek()];
            let Some(&fd) = next.into_iter().flatten().min() else {
                break;
            };
            let mut ready = Ready::default();
            for (iter, bit) in [
                (&mut read, Ready::READABLE),
                (&mut write, Ready::WRITABLE),
                (&mut except, Ready::PRIORITY),
            ] {
                if iter.next_if_eq(&fd).is_some() {
                    ready.insert(bit);
                }
            }
            self.ready.push((fd, ready));
        }
    }

    /// Adds the error, hangup and read-closed bits select(2) cannot express.
    fn classify(&mut self) -> io::Result<()> {
        self.classify.clear();
        for &(fd, _) in &self.ready {
            let readable = self.interest[fd as usize].is_some_and(|e| e.interest.is_readable());
            // SAFETY: `fd` is registered, hence open (unregister before
            // close); the borrow lives only until the end of this call's use
            // of `classify`, which is cleared before the next wait.
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            // Only RDHUP is asked for (with read interest, as poll does);
            // poll(2) reports ERR, HUP and NVAL regardless.
            let flags = if readable {
                super::RDHUP
            } else {
                PollFlags::empty()
            };
            self.classify.push(PollFd::from_borrowed_fd(fd, flags));
        }
        rustix::event::poll(
            &mut self.classify,
            Some(&rustix::event::Timespec::default()),
        )?;
        for (entry, (_, ready)) in self.classify.iter().zip(&mut self.ready) {
            ready.insert(super::ready_from_poll(entry.revents()));
        }
        Ok(())
    }
}

impl Backend for Select {
    fn create() -> io::Result<Self> {
        Ok(Select::default())
    }

    fn register(&mut self, fd: BorrowedFd<'_>, reg: Reg) -> io::Result<()> {
        let fd = fd.as_raw_fd();
        if self.interest.len() <= fd as usize {
            self.interest.resize(fd as usize + 1, None);
        }
        self.put(fd, Some(entry(reg)));
        self.nfds = self.nfds.max(fd + 1);
        Ok(())
    }

    fn modify(&mut self, fd: BorrowedFd<'_>, reg: Reg) -> io::Result<()> {
        let fd = fd.as_raw_fd();
        if self.interest.get(fd as usize).copied().flatten().is_none() {
            return Err(io::ErrorKind::NotFound.into());
        }
        self.put(fd, Some(entry(reg)));
        Ok(())
    }

    fn unregister(&mut self, fd: RawFd) -> io::Result<()> {
        if self.interest.get(fd as usize).copied().flatten().is_none() {
            return Err(io::ErrorKind::NotFound.into());
        }
        self.put(fd, None);
        while self.nfds > 0 && self.interest[self.nfds as usize - 1].is_none() {
            self.nfds -= 1;
        }
        Ok(())
    }

    fn select(
        &mut self,
        timeout: Option<Duration>,
        _max: usize,
        emit: &mut impl FnMut(Tag, Ready),
    ) -> io::Result<()> {
        let mut timeout = timeout;
        self.closed.clear();
        loop {
            let elements = fd_set_num_elements(0, self.nfds).min(self.read.len());
            self.read_out.clear();
            self.read_out.extend_from_slice(&self.read[..elements]);
            self.write_out.clear();
            self.write_out.extend_from_slice(&self.write[..elements]);
            let with_except = self.priority > 0;
            self.except_out.clear();
            if with_except {
                self.except_out.extend_from_slice(&self.except[..elements]);
            }
            for &fd in &self.closed {
                fd_set_remove(&mut self.read_out, fd);
                fd_set_remove(&mut self.write_out, fd);
                if with_except {
                    fd_set_remove(&mut self.except_out, fd);
                }
            }
            let timespec = super::timespec(timeout);
            // SAFETY: every descriptor in the sets is registered, hence open
            // (unregister before close). One closed anyway makes the kernel
            // answer EBADF, handled below; nothing is read through it.
            let result = unsafe {
                rustix::event::select(
                    self.nfds,
                    Some(&mut self.read_out),
                    Some(&mut self.write_out),
                    with_except.then_some(&mut self.except_out[..]),
                    timespec.as_ref(),
                )
            };
            match result {
                Ok(0) => {
                    self.ready.clear();
                    break;
                }
                Ok(_) => {
                    self.collect_ready(with_except);
                    self.classify()?;
                    for &(fd, ready) in &self.ready {
                        emit(self.tag(fd), ready);
                    }
                    break;
                }
                Err(Errno::BADF) if self.closed.is_empty() => {
                    // Report the closed ones as poll's POLLNVAL would, then
                    // look at the others once more without waiting.
                    let closed: Vec<RawFd> = self
                        .registered()
                        .filter(|&fd| !super::is_open(fd))
                        .collect();
                    if closed.is_empty() {
                        return Err(Errno::BADF.into());
                    }
                    self.closed = closed;
                    timeout = Some(Duration::ZERO);
                }
                Err(e) => return Err(e.into()),
            }
        }
        for &fd in &self.closed {
            emit(self.tag(fd), Ready::ERROR);
        }
        if self.oneshots > 0 {
            self.disarm_reported();
        }
        Ok(())
    }
}

impl Select {
    fn tag(&self, fd: RawFd) -> Tag {
        let entry = self.interest.get(fd as usize).copied().flatten();
        entry.map_or(Tag::fd(fd), |e| e.tag)
    }

    /// Takes the oneshot registrations this wait reported out of the sets.
    fn disarm_reported(&mut self) {
        for i in 0..self.ready.len() + self.closed.len() {
            let fd = match self.ready.get(i) {
                Some(&(fd, _)) => fd,
                None => self.closed[i - self.ready.len()],
            };
            if let Some(e) = self.interest[fd as usize].filter(|e| e.oneshot && e.armed) {
                self.put(fd, Some(Entry { armed: false, ..e }));
            }
        }
    }
}

fn entry(reg: Reg) -> Entry {
    Entry {
        interest: reg.interest,
        oneshot: reg.mode == Mode::Oneshot,
        armed: true,
        tag: reg.tag,
    }
}
