//! Descriptors closed while registered, and numbers the kernel reuses: the
//! cases CPython's test_selectors covers with `test_unregister_after_fd_close`
//! and `test_unregister_after_fd_close_and_reuse`.
//!
//! The descriptors here get numbers of their own (`util::private_dup`), so no
//! other test thread can reopen a number while a test holds it closed.

mod util;

use selector::{BackendKind, Events, Interest, Registration, Token};
use std::io::{ErrorKind, Write};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use util::{expect_events, expect_no_events, selector, Expect};

per_backend!(
    close_then_unregister,
    close_then_unregister_with_others_ready,
    close_then_fd_reuse,
    reuse_before_unregister_is_already_exists,
    duplicate_descriptors_are_separate_registrations,
    modify_after_close_is_invalid_input,
);

/// What a descriptor closed while still registered looks like: select and
/// poll report an error event until it is unregistered; epoll has already
/// forgotten it (see `Selector::unregister`).
fn closed_while_registered(kind: BackendKind, token: usize) -> Vec<Expect> {
    match kind {
        BackendKind::Epoll => vec![],
        _ => vec![Expect::readable(token).and_error()],
    }
}

fn close_then_unregister(kind: BackendKind) {
    let (r, _w) = util::private_pipe();
    let raw = r.as_raw_fd();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector.register(&r, Token(1), Interest::READABLE).unwrap();
    drop(r);
    expect_events(
        &mut selector,
        &mut events,
        &closed_while_registered(kind, 1),
    );
    // The old number is all that is left to name it by.
    let old = selector.unregister(&raw).unwrap();
    assert_eq!(
        old,
        Registration {
            token: Token(1),
            interest: Interest::READABLE
        }
    );
    assert!(selector.is_empty());
    expect_no_events(&mut selector, &mut events);
    let err = selector.unregister(&raw).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

fn close_then_unregister_with_others_ready(kind: BackendKind) {
    let (r, _w) = util::private_pipe();
    let raw = r.as_raw_fd();
    let (live, mut live_w) = util::pipe();
    live_w.write_all(b"x").unwrap();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector.register(&r, Token(1), Interest::READABLE).unwrap();
    selector
        .register(&live, Token(2), Interest::READABLE)
        .unwrap();
    drop(r);
    // The closed one must not hide the live one (select(2) fails the whole
    // call with EBADF; its backend then looks at the rest again).
    let mut expected = closed_while_registered(kind, 1);
    expected.push(Expect::readable(2));
    expect_events(&mut selector, &mut events, &expected);
    selector.unregister(&raw).unwrap();
    expect_events(&mut selector, &mut events, &[Expect::readable(2)]);
}

/// Duplicates `fd` onto exactly `number`, which must be free.
fn reopen_at(fd: &std::fs::File, number: RawFd) -> std::fs::File {
    let dup = util::dup_at_least(fd, number);
    assert_eq!(dup.as_raw_fd(), number, "number {number} was taken");
    std::fs::File::from(dup)
}

fn close_then_fd_reuse(kind: BackendKind) {
    let (old, mut old_w) = util::private_pipe();
    let number = old.as_raw_fd();
    old_w.write_all(b"stale").unwrap();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector
        .register(&old, Token(1), Interest::READABLE)
        .unwrap();
    expect_events(&mut selector, &mut events, &[Expect::readable(1)]);
    drop(old);
    selector.unregister(&number).unwrap();

    // A new, idle file gets the same number.
    let (fresh, mut fresh_w) = util::pipe();
    let new = reopen_at(&fresh, number);
    drop(fresh);
    selector
        .register(&new, Token(2), Interest::READABLE)
        .unwrap();
    // Nothing from the old file's pending bytes, under either token.
    expect_no_events(&mut selector, &mut events);
    fresh_w.write_all(b"new").unwrap();
    expect_events(&mut selector, &mut events, &[Expect::readable(2)]);
    selector.modify(&new, Token(3), Interest::BOTH).unwrap();
    expect_events(&mut selector, &mut events, &[Expect::readable(3)]);
    selector.unregister(&new).unwrap();
    expect_no_events(&mut selector, &mut events);
}

fn reuse_before_unregister_is_already_exists(kind: BackendKind) {
    let (old, _old_w) = util::private_pipe();
    let number = old.as_raw_fd();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector
        .register(&old, Token(1), Interest::READABLE)
        .unwrap();
    drop(old);

    let (fresh, mut fresh_w) = util::pipe();
    let new = reopen_at(&fresh, number);
    drop(fresh);
    // The selector still holds the number for the old file.
    let err = selector
        .register(&new, Token(2), Interest::READABLE)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    assert_eq!(selector.unregister(&new).unwrap().token, Token(1));
    selector
        .register(&new, Token(2), Interest::READABLE)
        .unwrap();
    expect_no_events(&mut selector, &mut events);
    fresh_w.write_all(b"new").unwrap();
    expect_events(&mut selector, &mut events, &[Expect::readable(2)]);
}

/// Two numbers for one open file are two registrations; closing one leaves
/// the other working (epoll keys its entries by file *and* number).
fn duplicate_descriptors_are_separate_registrations(kind: BackendKind) {
    let (r, mut w) = util::private_pipe();
    let dup = util::private_dup(&r);
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector.register(&r, Token(1), Interest::READABLE).unwrap();
    selector
        .register(&dup, Token(2), Interest::READABLE)
        .unwrap();
    w.write_all(b"x").unwrap();
    expect_events(
        &mut selector,
        &mut events,
        &[Expect::readable(1), Expect::readable(2)],
    );
    let dup_number = dup.as_raw_fd();
    selector.unregister(&dup).unwrap();
    drop(dup);
    expect_events(&mut selector, &mut events, &[Expect::readable(1)]);
    // SAFETY: `dup_number` was this test's own number and is closed now;
    // register only asks the kernel about it, and fails.
    let closed = unsafe { BorrowedFd::borrow_raw(dup_number) };
    let err = selector
        .register(closed, Token(3), Interest::READABLE)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
}

/// Modifying a descriptor closed while registered is misuse, reported the
/// same way on every backend, whether the interest or only the token
/// changes; the registration stays as it was, ready to be unregistered.
fn modify_after_close_is_invalid_input(kind: BackendKind) {
    let (r, _w) = util::private_pipe();
    let raw = r.as_raw_fd();
    let mut selector = selector(kind);
    selector.register(&r, Token(1), Interest::READABLE).unwrap();
    drop(r);
    // SAFETY: `raw` was this test's own number and is closed now; modify
    // only hands it to the kernel, which refuses it.
    let closed = unsafe { BorrowedFd::borrow_raw(raw) };
    for (token, interest) in [(1, Interest::WRITABLE), (2, Interest::READABLE)] {
        let err = selector.modify(closed, Token(token), interest).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains(&raw.to_string()), "{err}");
    }
    assert_eq!(
        selector.unregister(&raw).unwrap(),
        Registration {
            token: Token(1),
            interest: Interest::READABLE
        }
    );
}
