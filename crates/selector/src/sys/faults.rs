//! A test-only backend that wraps poll(2) and injects the faults a real
//! kernel produces only by bad luck: `EINTR`, spurious readiness, events in
//! an unusual order, the same descriptor twice in a round, error and
//! readable together, and readiness for a descriptor just unregistered.
//!
//! It lets a program built on `Selector` test its state machine without
//! timing luck. [`FaultPlan::simulation`] drives it from a seed instead of a
//! script: each wait may be interrupted, report spurious readiness, shuffle
//! its events, or report a stale event for a descriptor that was closed and
//! whose number now names another registration (with the old registration's
//! token, as epoll does); each registration change may fire a callback
//! between changes (a test wakes a `Waker` there). The same seed gives the
//! same run. Compiled only with the `faults` feature.

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

#[derive(Default)]
struct Plan {
    queue: VecDeque<Fault>,
    random: Option<(u64, u32, Vec<Fault>)>,
    /// The seeded simulation, if this plan is one.
    sim: Option<Rng>,
    /// Called between registration changes, on about one change in four
    /// of a simulation.
    on_change: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("queue", &self.queue)
            .field("random", &self.random)
            .field("sim", &self.sim)
            .finish_non_exhaustive()
    }
}

/// A small deterministic generator (xorshift64): the same seed, the same
/// run, with no dependency.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (any value, zero included).
    pub fn new(seed: u64) -> Rng {
        // splitmix64 of the seed, so nearby seeds start far apart.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n` (zero when `n` is zero).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        ((self.next_u64() >> 11) % n as u64) as usize
    }

    /// True about once in `n` calls.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n.max(1)) == 0
    }
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

    /// A simulation driven by `seed`: on each wait, with fixed odds, an
    /// `EINTR`, spurious readiness on a registered descriptor, the events
    /// shuffled, or a stale event for a descriptor number closed and then
    /// registered again (under its old token); see the module's doc.
    pub fn simulation(seed: u64) -> FaultPlan {
        let plan = FaultPlan::default();
        plan.lock().sim = Some(Rng::new(seed));
        plan
    }

    /// Call `hook` between registration changes (on about one change in
    /// four of a simulation, before the change): a test wakes a `Waker`
    /// there.
    pub fn on_change(&self, hook: impl Fn() + Send + Sync + 'static) {
        self.lock().on_change = Some(Arc::new(hook));
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
    /// The last tag of each descriptor number unregistered.
    gone: Vec<(RawFd, Tag)>,
    /// Tags of registrations whose number was registered again: what a
    /// kernel may still report for the old one.
    stale: Vec<Tag>,
}

impl Faulty {
    pub(crate) fn new(plan: FaultPlan) -> io::Result<Faulty> {
        Ok(Faulty {
            poll: Poll::create()?,
            plan,
            registered: Vec::new(),
            last_unregistered: None,
            round: Vec::new(),
            gone: Vec::new(),
            stale: Vec::new(),
        })
    }
}

impl Backend for Faulty {
    fn create() -> io::Result<Self> {
        Faulty::new(FaultPlan::default())
    }

    fn register(&mut self, fd: BorrowedFd<'_>, reg: Reg) -> io::Result<()> {
        self.plan.between_changes();
        self.poll.register(fd, reg)?;
        let raw = fd.as_raw_fd();
        self.registered.push(raw);
        if let Some(i) = self.gone.iter().position(|&(f, _)| f == raw) {
            let (_, old) = self.gone.swap_remove(i);
            if old != reg.tag {
                self.stale.push(old);
            }
        }
        Ok(())
    }

    fn modify(&mut self, fd: BorrowedFd<'_>, reg: Reg) -> io::Result<()> {
        self.plan.between_changes();
        self.poll.modify(fd, reg)
    }

    fn unregister(&mut self, fd: RawFd) -> io::Result<()> {
        self.plan.between_changes();
        if let Some(tag) = self.poll.tag_of(fd) {
            self.gone.retain(|&(f, _)| f != fd);
            self.gone.push((fd, tag));
        }
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
        if self.plan.is_simulation() {
            return self.simulate(timeout, max, emit);
        }
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

impl FaultPlan {
    fn is_simulation(&self) -> bool {
        self.lock().sim.is_some()
    }

    /// The simulation's next number below `n`.
    fn draw(&self, n: usize) -> usize {
        self.lock().sim.as_mut().map_or(1, |rng| rng.below(n))
    }

    fn between_changes(&self) {
        let hook = {
            let mut plan = self.lock();
            let fire = plan.sim.as_mut().is_some_and(|rng| rng.one_in(4));
            plan.on_change.clone().filter(|_| fire)
        };
        if let Some(hook) = hook {
            hook();
        }
    }
}

impl Faulty {
    /// One wait of the seeded simulation.
    fn simulate(
        &mut self,
        timeout: Option<Duration>,
        max: usize,
        emit: &mut impl FnMut(Tag, Ready),
    ) -> io::Result<()> {
        let plan = &self.plan;
        if plan.draw(8) == 0 {
            return Err(io::ErrorKind::Interrupted.into());
        }
        self.round.clear();
        let round = &mut self.round;
        self.poll
            .select(timeout, max, &mut |tag, ready| round.push((tag, ready)))?;
        if plan.draw(4) == 0 && !self.registered.is_empty() {
            // Spurious: one registration reported ready although it is not.
            let fd = self.registered[plan.draw(self.registered.len())];
            let mut both = Ready::READABLE;
            both.insert(Ready::WRITABLE);
            if let Some(tag) = self.poll.tag_of(fd) {
                self.round.push((tag, both));
            }
        }
        if plan.draw(3) == 0 && !self.stale.is_empty() {
            // A closed descriptor's last readiness, under its old tag.
            let tag = self.stale.swap_remove(plan.draw(self.stale.len()));
            self.round.push((tag, Ready::READABLE));
        }
        // Reordered within the batch (Fisher-Yates from the seed).
        for i in (1..self.round.len()).rev() {
            self.round.swap(i, plan.draw(i + 1));
        }
        for &(tag, ready) in &self.round {
            emit(tag, ready);
        }
        Ok(())
    }
}
