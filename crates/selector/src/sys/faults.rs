//! A test-only backend that wraps poll(2) and injects the faults a real
//! kernel produces only by bad luck: `EINTR`, spurious readiness, events in
//! an unusual order, the same descriptor twice in a round, error and
//! readable together, and readiness for a descriptor just unregistered.
//!
//! It lets a program built on [`Selector`](crate::Selector) test its state
//! machine without timing luck. Compiled only with the `faults` feature.

use super::poll::Poll;
use super::Ready;
use super::{Backend, Reg, Tag};
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One misbehaviour, applied to one `select` call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The wait fails with `EINTR` (the selector must retry it).
    Interrupt,
    /// Every registered descriptor is reported readable and writable,
    /// ready or not, without waiting.
    Spurious,
    /// The real events, last first.
    Reverse,
    /// The real events, each reported twice.
    Duplicate,
    /// Real readable events also carry error and hangup.
    ErrorWithReadable,
    /// The descriptor unregistered most recently is reported readable, as
    /// if its readiness raced with the unregistration.
    Stale,
}

impl Fault {
    const ALL: [Fault; 6] = [
        Fault::Interrupt,
        Fault::Spurious,
        Fault::Reverse,
        Fault::Duplicate,
        Fault::ErrorWithReadable,
        Fault::Stale,
    ];
}

/// Which faults to inject, and when. Clones share the plan, so a test can
/// add faults while a loop runs.
#[derive(Clone, Debug, Default)]
pub struct FaultPlan {
    inner: Arc<Mutex<Plan>>,
}

#[derive(Debug, Default)]
struct Plan {
    queue: VecDeque<Fault>,
    random: Option<(u64, u32, Vec<Fault>)>,
}

impl FaultPlan {
    /// Faults applied to the next calls, one per call, in order; after
    /// them, plain poll(2).
    pub fn script(faults: impl IntoIterator<Item = Fault>) -> FaultPlan {
        let plan = FaultPlan::default();
        plan.push(faults);
        plan
    }

    /// On about one call in `one_in`, one of `faults` picked by a
    /// deterministic generator seeded with `seed`.
    pub fn random(seed: u64, one_in: u32, faults: &[Fault]) -> FaultPlan {
        let plan = FaultPlan::default();
        let faults = if faults.is_empty() {
            Fault::ALL.to_vec()
        } else {
            faults.to_vec()
        };
        plan.lock().random = Some((seed | 1, one_in.max(1), faults));
        plan
    }

    /// Queue more faults.
    pub fn push(&self, faults: impl IntoIterator<Item = Fault>) {
        self.lock().queue.extend(faults);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Plan> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn next(&self) -> Option<Fault> {
        let mut plan = self.lock();
        if let Some(fault) = plan.queue.pop_front() {
            return Some(fault);
        }
        let (state, one_in, faults) = plan.random.as_mut()?;
        // xorshift64: reproducible from the seed, no dependency.
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        let roll = *state;
        (roll % u64::from(*one_in) == 0).then(|| faults[(roll >> 32) as usize % faults.len()])
    }
}

#[derive(Debug)]
pub(crate) struct Faulty {
    poll: Poll,
    plan: FaultPlan,
    registered: Vec<RawFd>,
    last_unregistered: Option<RawFd>,
    round: Vec<(Tag, Ready)>,
}

impl Faulty {
    pub(crate) fn new(plan: FaultPlan) -> io::Result<Faulty> {
        Ok(Faulty {
            poll: Poll::create()?,
            plan,
            registered: Vec::new(),
            last_unregistered: None,
            round: Vec::new(),
        })
    }
}

impl Backend for Faulty {
    fn create() -> io::Result<Self> {
        Faulty::new(FaultPlan::default())
    }

    fn register(&mut self, fd: BorrowedFd<'_>, reg: Reg) -> io::Result<()> {
        self.poll.register(fd, reg)?;
        self.registered.push(fd.as_raw_fd());
        Ok(())
    }

    fn modify(&mut self, fd: BorrowedFd<'_>, reg: Reg) -> io::Result<()> {
        self.poll.modify(fd, reg)
    }

    fn unregister(&mut self, fd: RawFd) -> io::Result<()> {
        self.poll.unregister(fd)?;
        self.registered.retain(|&r| r != fd);
        self.last_unregistered = Some(fd);
        Ok(())
    }

    fn select(
        &mut self,
        timeout: Option<Duration>,
        max: usize,
        emit: &mut impl FnMut(Tag, Ready),
    ) -> io::Result<()> {
        let fault = self.plan.next();
        let mut both = Ready::READABLE;
        both.insert(Ready::WRITABLE);
        match fault {
            Some(Fault::Interrupt) => return Err(io::ErrorKind::Interrupted.into()),
            Some(Fault::Spurious) => {
                for &fd in &self.registered {
                    emit(Tag::fd(fd), both);
                }
                return Ok(());
            }
            _ => {}
        }
        self.round.clear();
        let round = &mut self.round;
        self.poll
            .select(timeout, max, &mut |fd, ready| round.push((fd, ready)))?;
        match fault {
            Some(Fault::Reverse) => self.round.reverse(),
            Some(Fault::Duplicate) => {
                let copy = self.round.clone();
                self.round.extend(copy);
            }
            Some(Fault::ErrorWithReadable) => {
                for (_, ready) in &mut self.round {
                    if ready.contains(Ready::READABLE) {
                        ready.insert(Ready::ERROR);
                        ready.insert(Ready::HANGUP);
                    }
                }
            }
            Some(Fault::Stale) => {
                if let Some(fd) = self.last_unregistered {
                    self.round.insert(0, (Tag::fd(fd), Ready::READABLE));
                }
            }
            _ => {}
        }
        for &(tag, ready) in &self.round {
            emit(tag, ready);
        }
        Ok(())
    }
}
