//! Registration bookkeeping and its misuse errors, the same on every backend.

mod util;

use selector::{BackendKind, Events, Interest, Registration, Token};
use std::io::{ErrorKind, Write};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use util::{expect_events, expect_no_events, selector, Expect};

per_backend!(
    registration_lookup_and_count,
    register_twice_is_already_exists,
    unknown_fd_is_not_found,
    closed_fd_is_invalid_input,
    negative_fd_is_invalid_input,
    modify_to_writable,
    modify_changes_token,
    modify_to_same_interest_changes_token,
    unregister_returns_registration,
    register_again_after_unregister,
    unregister_during_iteration,
    any_token_comes_back,
);

/// The descriptor table is one `Option<Registration>` per number: the
/// interest's niche keeps a slot at two words, so lookups stay dense.
#[test]
fn table_slot_is_two_words() {
    let slot = std::mem::size_of::<Option<Registration>>();
    assert_eq!(slot, 2 * std::mem::size_of::<usize>());
}

fn registration_lookup_and_count(kind: BackendKind) {
    let (a, b) = UnixStream::pair().unwrap();
    let mut selector = selector(kind);
    assert!(selector.is_empty());
    assert_eq!(selector.registration(&a), None);

    selector.register(&a, Token(1), Interest::READABLE).unwrap();
    selector.register(&b, Token(2), Interest::BOTH).unwrap();
    assert_eq!(selector.len(), 2);
    assert!(!selector.is_empty());
    assert_eq!(
        selector.registration(&a),
        Some(Registration {
            token: Token(1),
            interest: Interest::READABLE
        })
    );
    assert_eq!(
        selector.registration(&b.as_raw_fd()),
        Some(Registration {
            token: Token(2),
            interest: Interest::BOTH
        })
    );
}

fn register_twice_is_already_exists(kind: BackendKind) {
    let (a, _b) = UnixStream::pair().unwrap();
    let mut selector = selector(kind);
    selector.register(&a, Token(1), Interest::READABLE).unwrap();
    let err = selector
        .register(&a, Token(2), Interest::WRITABLE)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    assert!(
        err.to_string().contains(&a.as_raw_fd().to_string()),
        "{err}"
    );
    // The first registration is untouched.
    assert_eq!(
        selector.registration(&a).map(|r| r.token),
        Some(Token(1)),
        "a failed register must not change the registration"
    );
    assert_eq!(selector.len(), 1);
}

fn unknown_fd_is_not_found(kind: BackendKind) {
    let (a, _b) = UnixStream::pair().unwrap();
    let mut selector = selector(kind);
    let err = selector
        .modify(&a, Token(1), Interest::READABLE)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let err = selector.unregister(&a).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(
        err.to_string().contains(&a.as_raw_fd().to_string()),
        "{err}"
    );
    // A number far beyond anything registered.
    let err = selector.unregister(&100_000).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

fn closed_fd_is_invalid_input(kind: BackendKind) {
    let raw = util::closed_fd();
    // SAFETY: `raw` was closed by closed_fd and no other test reopens that
    // number; register only asks the kernel about it, and fails.
    let closed = unsafe { BorrowedFd::borrow_raw(raw) };
    let mut selector = selector(kind);
    let err = selector
        .register(closed, Token(1), Interest::READABLE)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains(&raw.to_string()), "{err}");
    assert!(selector.is_empty());
    assert_eq!(selector.registration(&raw), None);
}

fn negative_fd_is_invalid_input(kind: BackendKind) {
    let mut selector = selector(kind);
    let err = selector.unregister(&-1).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
}

fn modify_to_writable(kind: BackendKind) {
    let (mut a, b) = UnixStream::pair().unwrap();
    a.write_all(b"ping").unwrap();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);

    // b has data and buffer space: each interest shows only its own half.
    selector.register(&b, Token(1), Interest::READABLE).unwrap();
    expect_events(&mut selector, &mut events, &[Expect::readable(1)]);
    selector.modify(&b, Token(1), Interest::WRITABLE).unwrap();
    expect_events(&mut selector, &mut events, &[Expect::writable(1)]);
    selector.modify(&b, Token(1), Interest::BOTH).unwrap();
    expect_events(
        &mut selector,
        &mut events,
        &[Expect::readable(1).and_writable()],
    );
    selector.modify(&b, Token(1), Interest::READABLE).unwrap();
    expect_events(&mut selector, &mut events, &[Expect::readable(1)]);
    assert_eq!(
        selector.registration(&b).map(|r| r.interest),
        Some(Interest::READABLE)
    );
}

fn modify_changes_token(kind: BackendKind) {
    let (mut a, b) = UnixStream::pair().unwrap();
    a.write_all(b"ping").unwrap();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector.register(&b, Token(1), Interest::READABLE).unwrap();
    expect_events(&mut selector, &mut events, &[Expect::readable(1)]);
    selector.modify(&b, Token(2), Interest::BOTH).unwrap();
    expect_events(
        &mut selector,
        &mut events,
        &[Expect::readable(2).and_writable()],
    );
}

fn modify_to_same_interest_changes_token(kind: BackendKind) {
    let (mut a, b) = UnixStream::pair().unwrap();
    a.write_all(b"ping").unwrap();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector.register(&b, Token(1), Interest::READABLE).unwrap();
    selector.modify(&b, Token(9), Interest::READABLE).unwrap();
    expect_events(&mut selector, &mut events, &[Expect::readable(9)]);
    assert_eq!(selector.registration(&b).map(|r| r.token), Some(Token(9)));
}

/// Every `usize` is a valid token, including those too large for epoll to
/// carry in its event data (above 2^61), and modify can cross that line.
fn any_token_comes_back(kind: BackendKind) {
    let (mut a, b) = UnixStream::pair().unwrap();
    a.write_all(b"ping").unwrap();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    let tokens = [usize::MAX, (1 << 61) - 1, 1 << 61, 0, usize::MAX - 3];
    selector
        .register(&b, Token(tokens[0]), Interest::READABLE)
        .unwrap();
    expect_events(&mut selector, &mut events, &[Expect::readable(tokens[0])]);
    for &token in &tokens[1..] {
        selector.modify(&b, Token(token), Interest::BOTH).unwrap();
        expect_events(
            &mut selector,
            &mut events,
            &[Expect::readable(token).and_writable()],
        );
    }
}

fn unregister_returns_registration(kind: BackendKind) {
    let (mut a, b) = UnixStream::pair().unwrap();
    a.write_all(b"ping").unwrap();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector.register(&b, Token(4), Interest::BOTH).unwrap();
    selector.register(&a, Token(5), Interest::WRITABLE).unwrap();
    let old = selector.unregister(&b).unwrap();
    assert_eq!(
        old,
        Registration {
            token: Token(4),
            interest: Interest::BOTH
        }
    );
    assert_eq!(selector.len(), 1);
    // Only a is left, and b's pending data no longer shows.
    expect_events(&mut selector, &mut events, &[Expect::writable(5)]);
    selector.unregister(&a).unwrap();
    assert!(selector.is_empty());
    expect_no_events(&mut selector, &mut events);
}

fn register_again_after_unregister(kind: BackendKind) {
    let (mut a, b) = UnixStream::pair().unwrap();
    a.write_all(b"ping").unwrap();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector.register(&b, Token(1), Interest::WRITABLE).unwrap();
    selector.unregister(&b).unwrap();
    selector.register(&b, Token(2), Interest::READABLE).unwrap();
    expect_events(&mut selector, &mut events, &[Expect::readable(2)]);
}

/// A handler may unregister (and close) descriptors whose events are still
/// in the buffer it is iterating; the next select must not report them.
fn unregister_during_iteration(kind: BackendKind) {
    let mut pairs: Vec<(UnixStream, Option<UnixStream>)> = (0..6)
        .map(|_| {
            let (mut a, b) = UnixStream::pair().unwrap();
            a.write_all(b"x").unwrap();
            (a, Some(b))
        })
        .collect();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(16);
    for (i, (_, b)) in pairs.iter().enumerate() {
        let b = b.as_ref().unwrap();
        selector.register(b, Token(i), Interest::READABLE).unwrap();
    }
    let all: Vec<Expect> = (0..6).map(Expect::readable).collect();
    expect_events(&mut selector, &mut events, &all);

    // On each event, drop every odd-numbered registration (some of which
    // are later in this very batch).
    let mut handled = 0;
    for event in &events {
        handled += 1;
        for (i, (_, b)) in pairs.iter_mut().enumerate() {
            if i % 2 == 1 {
                if let Some(b) = b.take() {
                    selector.unregister(&b).unwrap();
                    drop(b);
                }
            }
        }
        assert!(event.is_readable());
    }
    assert_eq!(handled, 6, "the batch stays as it was reported");
    assert_eq!(selector.len(), 3);
    let even: Vec<Expect> = (0..6).step_by(2).map(Expect::readable).collect();
    expect_events(&mut selector, &mut events, &even);
}
