//! epoll(7): level-triggered by default, `EPOLLONESHOT` and `EPOLLET` when
//! asked. Cost per wait grows with the number of *ready* descriptors, not
//! the number registered.
//!
//! Quirks handled here: epoll refuses regular files and directories (EPERM),
//! which select(2) and poll(2) report as always ready. Such descriptors are
//! kept on a side list and reported ready on every call, so all backends
//! agree. Closing a descriptor removes it from the kernel's interest list
//! (once every duplicate of it is closed), so unregistering a closed
//! descriptor is not an error. Read interest also asks for `EPOLLRDHUP`, so a
//! peer that shut down writing is told apart from plain data.

use super::{AlwaysReady, Backend, Change, Direct, Ready, Records, Reg, Tag};
use crate::Mode;
use rustix::event::epoll;
use rustix::io::Errno;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub(crate) struct Epoll {
    /// Shared with the selector's registries, which change it directly.
    epoll: Arc<OwnedFd>,
    /// Kernel events from the last wait; capacity reused across calls.
    buffer: Vec<epoll::Event>,
    /// Descriptors epoll cannot watch (regular files): always ready.
    always_ready: AlwaysReady,
}

// SAFETY: `epoll::Event` is not `Send` only because its data field can hold
// a pointer. This backend stores descriptor numbers there (`new_u64`) and
// never a pointer, so the buffer is plain data that may move between threads.
unsafe impl Send for Epoll {}

impl std::fmt::Debug for Epoll {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Epoll")
            .field("epoll", &self.epoll)
            .field("always_ready", &self.always_ready)
            .finish_non_exhaustive()
    }
}

fn flags(reg: Reg) -> epoll::EventFlags {
    use epoll::EventFlags as F;
    let mut flags = F::empty();
    if reg.exclusive {
        // The kernel takes only IN, OUT and ET beside it (EINVAL otherwise),
        // so no RDHUP: a shut-down peer still shows as readable.
        flags |= F::EXCLUSIVE;
    }
    if reg.interest.is_readable() {
        flags |= F::IN;
        if !reg.exclusive {
            flags |= F::RDHUP;
        }
    }
    if reg.interest.is_writable() {
        flags |= F::OUT;
    }
    if reg.interest.is_priority() {
        flags |= F::PRI;
    }
    match reg.mode {
        Mode::Level => {}
        Mode::Oneshot => flags |= F::ONESHOT,
        Mode::Edge => flags |= F::ET,
    }
    flags
}

fn data(tag: Tag) -> epoll::EventData {
    epoll::EventData::new_u64(tag.to_u64())
}

pub(crate) fn ready(flags: epoll::EventFlags) -> Ready {
    use epoll::EventFlags as F;
    let mut ready = Ready::default();
    if flags.contains(F::IN) {
        ready.insert(Ready::READABLE);
    }
    if flags.contains(F::RDHUP) {
        ready.insert(Ready::READABLE);
        ready.insert(Ready::READ_CLOSED);
    }
    if flags.contains(F::PRI) {
        ready.insert(Ready::PRIORITY);
    }
    if flags.contains(F::OUT) {
        ready.insert(Ready::WRITABLE);
    }
    if flags.contains(F::ERR) {
        ready.insert(Ready::ERROR);
    }
    if flags.contains(F::HUP) {
        ready.insert(Ready::HANGUP);
    }
    ready
}

/// Set once the kernel answered `ENOSYS` to epoll_pwait2 (Linux before
/// 5.11): every later wait then goes to epoll_wait in whole milliseconds.
static NO_PWAIT2: AtomicBool = AtomicBool::new(false);

/// One wait on `epoll` for up to `max` records, into `records`: with
/// epoll_pwait2's nanosecond timeout where the kernel has it, else
/// epoll_wait's milliseconds, rounded up (rustix rounds up) so the wait is
/// never shorter than asked.
fn wait(
    epoll: &OwnedFd,
    timeout: Option<Duration>,
    max: usize,
    records: &mut Vec<epoll::Event>,
) -> io::Result<()> {
    records.clear();
    // Room for exactly `max`: epoll fills all the room there is, and the
    // caller's capacity is the bound it was promised (`reserve` may round a
    // small request up).
    let max = max.max(1);
    if records.capacity() != max {
        *records = Vec::with_capacity(max);
    }
    let timespec = super::timespec(timeout);
    // None and zero say the same in milliseconds; only a finite, non-zero
    // timeout needs the nanoseconds.
    if let Some(ts) = timespec.filter(|_| timeout != Some(Duration::ZERO)) {
        if !NO_PWAIT2.load(Ordering::Relaxed) {
            match pwait2(epoll, &ts, records) {
                Err(Errno::NOSYS) => NO_PWAIT2.store(true, Ordering::Relaxed),
                result => return Ok(result?),
            }
        }
    }
    epoll::wait(
        epoll.as_fd(),
        rustix::buffer::spare_capacity(records),
        timespec.as_ref(),
    )?;
    Ok(())
}

/// epoll_pwait2(2), which rustix calls only when built for Linux 5.11 and
/// later (it cannot fall back at run time); into `records`' spare capacity.
fn pwait2(
    epoll: &OwnedFd,
    timeout: &rustix::event::Timespec,
    records: &mut Vec<epoll::Event>,
) -> Result<(), Errno> {
    let ts = libc::timespec {
        tv_sec: timeout.tv_sec as libc::time_t,
        tv_nsec: timeout.tv_nsec as _,
    };
    let room = libc::c_int::try_from(records.capacity()).unwrap_or(libc::c_int::MAX);
    // SAFETY: `records` has room for `room` records at its pointer, and
    // rustix's `epoll::Event` has the kernel's `struct epoll_event` layout
    // (it is what rustix hands epoll_wait). `ts` outlives the call; a null
    // signal mask means "leave the mask alone", and its size is then unread.
    let n = unsafe {
        libc::syscall(
            libc::SYS_epoll_pwait2,
            epoll.as_raw_fd(),
            records.as_mut_ptr(),
            room,
            &ts as *const libc::timespec,
            std::ptr::null::<libc::sigset_t>(),
            0_usize,
        )
    };
    if n < 0 {
        return Err(Errno::from_io_error(&io::Error::last_os_error()).unwrap_or(Errno::INVAL));
    }
    // SAFETY: the kernel wrote `n` (at most `room`) records from the start.
    unsafe { records.set_len(n as usize) };
    Ok(())
}

/// A change made from another thread, straight to the kernel (epoll_ctl is
/// safe to call while another thread waits, and the wait sees it). `false`
/// when it must go through the backend instead: a regular file, which only
/// the backend's side list can hold.
pub(crate) fn apply_direct(epoll: &OwnedFd, change: Change) -> io::Result<bool> {
    match change {
        Change::Register(fd, reg) => {
            match epoll::add(epoll, super::borrow_number(fd)?, data(reg.tag), flags(reg)) {
                Ok(()) => Ok(true),
                Err(Errno::PERM) => Ok(false),
                Err(e) => Err(e.into()),
            }
        }
        Change::Modify(fd, reg) => {
            match epoll::modify(epoll, super::borrow_number(fd)?, data(reg.tag), flags(reg)) {
                Ok(()) => Ok(true),
                // A regular file (EPERM: epoll refuses it before looking),
                // or not in the kernel's set: on the side list.
                Err(Errno::PERM | Errno::NOENT) => Ok(false),
                Err(e) => Err(e.into()),
            }
        }
        Change::Unregister(fd) => match epoll::delete(epoll, super::borrow_number(fd)?) {
            Ok(()) | Err(Errno::BADF) => Ok(true),
            Err(Errno::PERM | Errno::NOENT) => Ok(false),
            Err(e) => Err(e.into()),
        },
    }
}

impl Backend for Epoll {
    fn create() -> io::Result<Self> {
        Ok(Epoll {
            epoll: Arc::new(epoll::create(epoll::CreateFlags::CLOEXEC)?),
            buffer: Vec::new(),
            always_ready: AlwaysReady::default(),
        })
    }

    fn register(&mut self, fd: BorrowedFd<'_>, reg: Reg) -> io::Result<()> {
        match epoll::add(&self.epoll, fd, data(reg.tag), flags(reg)) {
            Ok(()) => Ok(()),
            Err(Errno::PERM) => {
                self.always_ready.register(fd.as_raw_fd(), reg);
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    fn modify(&mut self, fd: BorrowedFd<'_>, reg: Reg) -> io::Result<()> {
        if self.always_ready.modify(fd.as_raw_fd(), reg) {
            return Ok(());
        }
        Ok(epoll::modify(&self.epoll, fd, data(reg.tag), flags(reg))?)
    }

    fn unregister(&mut self, fd: RawFd) -> io::Result<()> {
        if self.always_ready.unregister(fd) {
            return Ok(());
        }
        // SAFETY: the descriptor is only handed to epoll_ctl(DEL), which
        // answers EBADF if the caller already closed it; nothing reads or
        // writes through it.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        match epoll::delete(&self.epoll, borrowed) {
            // Closed first (EBADF), or closed and the number reused by a
            // descriptor epoll never saw (ENOENT): the kernel already forgot it.
            Ok(()) | Err(Errno::BADF) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn select(
        &mut self,
        timeout: Option<Duration>,
        max: usize,
        emit: &mut impl FnMut(Tag, Ready),
    ) -> io::Result<()> {
        // Always-ready descriptors must not wait behind a sleeping epoll_wait.
        let timeout = if self.always_ready.is_empty() || !self.always_ready.any_armed() {
            timeout
        } else {
            Some(Duration::ZERO)
        };
        wait(&self.epoll, timeout, max, &mut self.buffer)?;
        for event in &self.buffer {
            let flags = event.flags;
            // The data is the tag stored at registration.
            emit(Tag::from_u64(event.data.u64()), ready(flags));
        }
        self.always_ready.emit(emit);
        Ok(())
    }

    fn direct(&self) -> Option<Direct> {
        Some(Direct {
            epoll: Arc::clone(&self.epoll),
        })
    }

    fn select_records(
        &mut self,
        timeout: Option<Duration>,
        max: usize,
        records: &mut Records,
    ) -> io::Result<bool> {
        // Regular files on the side list need the callback path.
        if !self.always_ready.is_empty() {
            return Ok(false);
        }
        wait(&self.epoll, timeout, max, &mut records.buf)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// Both paths wait at least the timeout: epoll_pwait2, and the
    /// millisecond fallback a kernel without it gets (forced here; the flag
    /// only ever costs precision, so other tests running meanwhile still
    /// pass).
    #[test]
    fn both_waits_last_at_least_the_timeout() {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC).unwrap();
        let mut records = Vec::new();
        for no_pwait2 in [false, true, false] {
            NO_PWAIT2.store(no_pwait2, Ordering::Relaxed);
            for micros in [150, 1_200] {
                let timeout = Duration::from_micros(micros);
                let start = Instant::now();
                wait(&epoll, Some(timeout), 4, &mut records).unwrap();
                let elapsed = start.elapsed();
                assert!(records.is_empty());
                assert!(elapsed >= timeout, "{timeout:?} took {elapsed:?}");
            }
        }
    }
}
