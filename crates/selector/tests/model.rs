//! Model-based property test: random sequences of register / modify /
//! unregister / write / read-all / close-peer on a few Unix stream pairs,
//! with one selector per backend watching the same descriptors in lockstep.
//! After every step each backend must report exactly what a small model
//! says, and so all backends agree with each other.
//!
//! The model, per registered open end (found by experiment and by the rules
//! in `Event`'s docs):
//! - readable iff read interest and (bytes pending, or the peer closed: a
//!   read then returns end of file);
//! - writable iff write interest (writes here are small and bounded, so the
//!   buffer never fills; a closed peer still leaves it writable, the write
//!   then fails with EPIPE);
//! - hangup iff the peer closed, whatever the interest;
//! - error iff the peer closed with bytes it had not read (the kernel then
//!   resets the connection, like a TCP RST), until a read reports the reset;
//! - no event at all when none of these hold;
//! - a oneshot registration (registered with `Mode::Oneshot`, or changed to
//!   it with `modify_with`) is reported by one select and then not at all
//!   until a `modify` re-arms it; `modify` keeps the mode.
//!
//! Each registration change goes, at random, through the selector or through
//! its `Registry` (which on poll and select queues it for the selecting
//! thread): the answers and the events must not depend on which.
//!
//! Edge-triggered mode exists only on epoll (and kqueue), so it cannot run
//! in lockstep here; `tests/modes.rs` covers it on every backend (as
//! behaviour where supported, as the `Unsupported` error elsewhere).

mod util;

use proptest::prelude::*;
use selector::{BackendKind, Events, Interest, Mode, Registration, Registry, Selector, Token};
use std::io::{ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;
use util::Expect;

const PAIRS: usize = 3;
const ENDS: usize = PAIRS * 2;
/// Writes left unread per end, kept far below what fills a socket buffer
/// (a Unix socket accounts each small write at about 1 KiB).
const MAX_QUEUED_WRITES: usize = 16;

#[derive(Clone, Copy, Debug)]
enum Op {
    Register {
        end: usize,
        tag: usize,
        interest: Interest,
        mode: Mode,
    },
    /// `modify` when `mode` is `None`, else `modify_with`.
    Modify {
        end: usize,
        tag: usize,
        interest: Interest,
        mode: Option<Mode>,
    },
    Unregister {
        end: usize,
    },
    Write {
        end: usize,
        len: usize,
    },
    ReadAll {
        end: usize,
    },
    ClosePeer {
        end: usize,
    },
}

fn interest() -> impl Strategy<Value = Interest> {
    prop_oneof![
        Just(Interest::READABLE),
        Just(Interest::WRITABLE),
        Just(Interest::BOTH),
    ]
}

/// The modes every backend has.
fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![2 => Just(Mode::Level), 1 => Just(Mode::Oneshot)]
}

fn op() -> impl Strategy<Value = Op> {
    let end = 0..ENDS;
    prop_oneof![
        3 => (end.clone(), 0..3usize, interest(), mode())
            .prop_map(|(end, tag, interest, mode)| Op::Register { end, tag, interest, mode }),
        2 => (end.clone(), 0..3usize, interest(), prop::option::of(mode()))
            .prop_map(|(end, tag, interest, mode)| Op::Modify { end, tag, interest, mode }),
        1 => end.clone().prop_map(|end| Op::Unregister { end }),
        3 => (end.clone(), 1..64usize).prop_map(|(end, len)| Op::Write { end, len }),
        2 => end.clone().prop_map(|end| Op::ReadAll { end }),
        1 => end.prop_map(|end| Op::ClosePeer { end }),
    ]
}

/// Distinct per end and tag, so events name their end.
fn token(end: usize, tag: usize) -> Token {
    Token(end * 10 + tag)
}

fn peer(end: usize) -> usize {
    end ^ 1
}

#[derive(Clone, Copy, Default, Debug)]
struct EndModel {
    registration: Option<Registration>,
    /// The registration is oneshot ...
    oneshot: bool,
    /// ... and was reported since it was last armed.
    disarmed: bool,
    /// Bytes waiting to be read on this end.
    pending: usize,
    /// Writes that delivered those bytes.
    writes: usize,
    /// The peer closed with unread bytes: a reset waits to be read.
    reset: bool,
}

struct World {
    ends: Vec<Option<UnixStream>>,
    model: [EndModel; ENDS],
    selectors: Vec<Selector>,
    /// Each selector's registry, the other way to change registrations.
    registries: Vec<Registry>,
    events: Events,
}

impl World {
    fn new() -> World {
        let mut ends = Vec::new();
        for _ in 0..PAIRS {
            let (a, b) = UnixStream::pair().unwrap();
            for s in [&a, &b] {
                s.set_nonblocking(true).unwrap();
            }
            ends.push(Some(a));
            ends.push(Some(b));
        }
        World {
            ends,
            model: [EndModel::default(); ENDS],
            registries: Vec::new(),
            selectors: util::KINDS.iter().map(|&k| util::selector(k)).collect(),
            events: Events::with_capacity(ENDS),
        }
    }

    fn open(&self, end: usize) -> bool {
        self.ends[end].is_some()
    }

    /// Applies `op` to every selector and the sockets, checking each
    /// backend's answer against the model's, then updates the model.
    fn apply(&mut self, op: Op, via_registry: bool) -> Result<(), TestCaseError> {
        if self.registries.is_empty() {
            for s in &mut self.selectors {
                self.registries.push(s.registry().unwrap());
            }
        }
        let registries = &self.registries;
        match op {
            Op::Register {
                end,
                tag,
                interest,
                mode,
            } => {
                let Some(stream) = &self.ends[end] else {
                    return Ok(());
                };
                let already = self.model[end].registration.is_some();
                for (s, r) in self.selectors.iter_mut().zip(registries) {
                    let result = if via_registry {
                        r.register_with(stream, token(end, tag), interest, mode)
                    } else {
                        s.register_with(stream, token(end, tag), interest, mode)
                    };
                    check_result(s.backend(), result, already, ErrorKind::AlreadyExists)?;
                }
                if !already {
                    let m = &mut self.model[end];
                    m.registration = Some(Registration {
                        token: token(end, tag),
                        interest,
                    });
                    m.oneshot = mode == Mode::Oneshot;
                    m.disarmed = false;
                }
            }
            Op::Modify {
                end,
                tag,
                interest,
                mode,
            } => {
                let Some(stream) = &self.ends[end] else {
                    return Ok(());
                };
                let unknown = self.model[end].registration.is_none();
                for (s, r) in self.selectors.iter_mut().zip(registries) {
                    let result = match (mode, via_registry) {
                        (None, false) => s.modify(stream, token(end, tag), interest),
                        (Some(mode), false) => {
                            s.modify_with(stream, token(end, tag), interest, mode)
                        }
                        (None, true) => r.modify(stream, token(end, tag), interest),
                        (Some(mode), true) => {
                            r.modify_with(stream, token(end, tag), interest, mode)
                        }
                    };
                    check_result(s.backend(), result, unknown, ErrorKind::NotFound)?;
                }
                if !unknown {
                    let m = &mut self.model[end];
                    m.registration = Some(Registration {
                        token: token(end, tag),
                        interest,
                    });
                    if let Some(mode) = mode {
                        m.oneshot = mode == Mode::Oneshot;
                    }
                    m.disarmed = false;
                }
            }
            Op::Unregister { end } => {
                let Some(stream) = &self.ends[end] else {
                    return Ok(());
                };
                let old = self.model[end].registration.take();
                for (s, r) in self.selectors.iter_mut().zip(registries) {
                    let result = if via_registry {
                        r.unregister(stream)
                    } else {
                        s.unregister(stream)
                    };
                    match old {
                        Some(old) => prop_assert_eq!(result.ok(), Some(old)),
                        None => check_result(s.backend(), result, true, ErrorKind::NotFound)?,
                    }
                }
            }
            Op::Write { end, len } => {
                let Some(stream) = &self.ends[end] else {
                    return Ok(());
                };
                let to = peer(end);
                if !self.open(to) {
                    let err = (&*stream).write(&[0; 64][..len]).unwrap_err();
                    prop_assert_eq!(err.kind(), ErrorKind::BrokenPipe);
                } else if self.model[to].writes < MAX_QUEUED_WRITES {
                    let written = (&*stream).write(&[0; 64][..len]).unwrap();
                    prop_assert_eq!(written, len);
                    self.model[to].pending += len;
                    self.model[to].writes += 1;
                }
            }
            Op::ReadAll { end } => {
                let Some(stream) = &self.ends[end] else {
                    return Ok(());
                };
                let (bytes, reset) = read_all(stream);
                prop_assert_eq!(bytes, self.model[end].pending);
                prop_assert_eq!(reset, self.model[end].reset, "reset read from end {}", end);
                self.model[end].pending = 0;
                self.model[end].writes = 0;
                self.model[end].reset = false;
            }
            Op::ClosePeer { end } => {
                let gone = peer(end);
                let Some(stream) = self.ends[gone].take() else {
                    return Ok(());
                };
                // Unregister before close, as the rule says.
                if self.model[gone].registration.take().is_some() {
                    for s in &mut self.selectors {
                        s.unregister(&stream).unwrap();
                    }
                }
                drop(stream);
                if self.model[gone].pending > 0 {
                    self.model[end].reset = true;
                }
            }
        }
        Ok(())
    }

    fn expected(&self) -> Vec<Expect> {
        let mut expected = Vec::new();
        for end in 0..ENDS {
            let Some(registration) = self.model[end].registration else {
                continue;
            };
            if !self.open(end) || self.model[end].disarmed {
                continue;
            }
            let peer_closed = !self.open(peer(end));
            let mut e = Expect::token(0);
            e.token = registration.token;
            e.readable =
                registration.interest.is_readable() && (self.model[end].pending > 0 || peer_closed);
            e.writable = registration.interest.is_writable();
            e.hangup = peer_closed;
            e.error = self.model[end].reset;
            if e.readable || e.writable || e.hangup || e.error {
                expected.push(e);
            }
        }
        expected.sort();
        expected
    }

    /// Each backend must report `expected`; a few retries (the later ones
    /// waiting briefly) tolerate kernel latency, never a wrong answer.
    fn check(&mut self, step: usize) -> Result<(), TestCaseError> {
        let expected = self.expected();
        let registered = self
            .model
            .iter()
            .filter(|m| m.registration.is_some())
            .count();
        let oneshot: Vec<Token> = self
            .model
            .iter()
            .filter(|m| m.oneshot)
            .filter_map(|m| m.registration.map(|r| r.token))
            .collect();
        let mut observed = Vec::new();
        for s in &mut self.selectors {
            prop_assert_eq!(s.len(), registered, "{}: registration count", s.backend());
            // A oneshot event is reported by one select only: a retry sees
            // the others, and the earlier oneshot events count as seen.
            let mut fired = Vec::new();
            let mut last = Vec::new();
            for attempt in 0..4 {
                let timeout = Duration::from_millis(if attempt == 0 { 0 } else { 10 });
                s.select(&mut self.events, Some(timeout)).unwrap();
                last = util::seen(&self.events);
                last.extend(fired.iter().copied());
                last.sort();
                if last == expected {
                    break;
                }
                fired.extend(
                    util::seen(&self.events)
                        .into_iter()
                        .filter(|e| oneshot.contains(&e.token)),
                );
            }
            observed.push((s.backend(), last));
        }
        let (first_kind, first) = &observed[0];
        for (kind, seen) in &observed[1..] {
            prop_assert_eq!(
                seen,
                first,
                "after step {}: {} and {} disagree",
                step,
                first_kind,
                kind
            );
        }
        prop_assert_eq!(first, &expected, "after step {}: backends vs model", step);
        // What was reported of a oneshot registration disarmed it.
        for m in &mut self.model {
            let reported = m
                .registration
                .is_some_and(|r| expected.iter().any(|e| e.token == r.token));
            if m.oneshot && reported {
                m.disarmed = true;
            }
        }
        Ok(())
    }
}

/// Reads until nothing is left or end of file; returns the bytes read and
/// whether a connection reset was reported on the way.
fn read_all(stream: &UnixStream) -> (usize, bool) {
    let mut buf = [0u8; 4096];
    let (mut total, mut reset) = (0, false);
    loop {
        match std::io::Read::read(&mut &*stream, &mut buf) {
            Ok(0) => return (total, reset),
            Ok(n) => total += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return (total, reset),
            Err(e) if e.kind() == ErrorKind::ConnectionReset && !reset => reset = true,
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// A misuse must fail with `kind` exactly when `misuse` holds, on every
/// backend; otherwise succeed.
fn check_result<T: std::fmt::Debug>(
    backend: BackendKind,
    result: std::io::Result<T>,
    misuse: bool,
    kind: ErrorKind,
) -> Result<(), TestCaseError> {
    match (misuse, result) {
        (true, Err(e)) => prop_assert_eq!(e.kind(), kind, "{}: {}", backend, e),
        (false, Ok(_)) => {}
        (misuse, result) => {
            prop_assert!(false, "{}: misuse {} gave {:?}", backend, misuse, result)
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        max_shrink_iters: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_backend_matches_the_model(
        ops in prop::collection::vec((op(), any::<bool>()), 1..40)
    ) {
        let mut world = World::new();
        world.check(0)?;
        for (i, (op, via_registry)) in ops.into_iter().enumerate() {
            world.apply(op, via_registry)?;
            world.check(i + 1)?;
        }
    }
}
