//! `Registry`: registrations changed from other threads while the selector
//! waits, with the selector's own misuse errors, on every backend.

mod util;

use selector::{BackendKind, Events, Interest, Mode, Token};
use std::io::{ErrorKind, Write};
use std::os::fd::BorrowedFd;
use std::thread;
use std::time::Duration;
use util::{expect_events, selector, Expect};

per_backend!(
    register_during_a_wait,
    modify_during_a_wait,
    unregister_during_a_wait,
    misuse_errors_are_the_selectors,
    closed_selector_refuses_changes,
    registry_and_selector_share_the_table,
    regular_file_through_a_registry,
);

/// Long enough that a wait that missed the change fails the test by
/// timing out empty, never by being slow.
const LONG: Duration = Duration::from_secs(20);
/// How long the helper thread lets the main thread block first.
const LET_IT_BLOCK: Duration = Duration::from_millis(50);

fn register_during_a_wait(kind: BackendKind) {
    let (r, mut w) = util::pipe();
    w.write_all(b"x").unwrap();
    let mut selector = selector(kind);
    let registry = selector.registry().unwrap();
    let helper = thread::spawn(move || {
        thread::sleep(LET_IT_BLOCK);
        registry.register(&r, Token(1), Interest::READABLE).unwrap();
        r
    });
    let mut events = Events::with_capacity(8);
    selector.select(&mut events, Some(LONG)).unwrap();
    assert_eq!(util::seen(&events), [Expect::readable(1)], "{kind}");
    let r = helper.join().unwrap();
    selector.unregister(&r).unwrap();
    assert!(selector.is_empty());
}

fn modify_during_a_wait(kind: BackendKind) {
    let (_r, w) = util::pipe();
    let mut selector = selector(kind);
    // A write end is never readable: the wait blocks.
    selector.register(&w, Token(1), Interest::READABLE).unwrap();
    let registry = selector.registry().unwrap();
    let helper = thread::spawn(move || {
        thread::sleep(LET_IT_BLOCK);
        registry.modify(&w, Token(2), Interest::WRITABLE).unwrap();
        w
    });
    let mut events = Events::with_capacity(8);
    selector.select(&mut events, Some(LONG)).unwrap();
    assert_eq!(util::seen(&events), [Expect::writable(2)], "{kind}");
    helper.join().unwrap();
}

fn unregister_during_a_wait(kind: BackendKind) {
    let (r1, mut w1) = util::pipe();
    let (r2, mut w2) = util::pipe();
    w2.write_all(b"x").unwrap();
    let mut selector = selector(kind);
    selector
        .register(&r1, Token(1), Interest::READABLE)
        .unwrap();
    let registry = selector.registry().unwrap();
    let helper = thread::spawn(move || {
        thread::sleep(LET_IT_BLOCK);
        // Gone before it becomes readable; then something else to report.
        let old = registry.unregister(&r1).unwrap();
        assert_eq!(old.token, Token(1));
        w1.write_all(b"x").unwrap();
        registry
            .register(&r2, Token(2), Interest::READABLE)
            .unwrap();
        (r1, r2)
    });
    let mut events = Events::with_capacity(8);
    selector.select(&mut events, Some(LONG)).unwrap();
    // epoll may have collected r1 in the same wait, before it was removed
    // (the documented race); the others apply both changes before waiting
    // again. Either way r2 comes, and r1 is never reported after.
    let (_r1, r2) = helper.join().unwrap();
    expect_events(&mut selector, &mut events, &[Expect::readable(2)]);
    selector.unregister(&r2).unwrap();
    assert!(selector.is_empty());
}

fn misuse_errors_are_the_selectors(kind: BackendKind) {
    let (r, _w) = util::pipe();
    let mut selector = selector(kind);
    let registry = selector.registry().unwrap();
    let err = registry
        .modify(&r, Token(1), Interest::READABLE)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let err = registry.unregister(&r).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    registry.register(&r, Token(1), Interest::READABLE).unwrap();
    let err = registry
        .register(&r, Token(1), Interest::READABLE)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    // The selector sees the registration the registry made, and the other way.
    let err = selector
        .register(&r, Token(1), Interest::READABLE)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    let number = util::closed_fd();
    // SAFETY: `number` is this test's own and closed (util::closed_fd);
    // register only asks the kernel about it, and fails.
    let closed = unsafe { BorrowedFd::borrow_raw(number) };
    let err = registry
        .register(closed, Token(2), Interest::READABLE)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let (r2, _w2) = util::pipe();
    let result = registry.register_with(&r2, Token(3), Interest::READABLE, Mode::Edge);
    if selector.supports(Mode::Edge) {
        result.unwrap();
    } else {
        assert_eq!(result.unwrap_err().kind(), ErrorKind::Unsupported);
    }
}

fn closed_selector_refuses_changes(kind: BackendKind) {
    let (r, _w) = util::pipe();
    let mut selector = selector(kind);
    let registry = selector.registry().unwrap();
    drop(selector);
    let err = registry
        .register(&r, Token(1), Interest::READABLE)
        .unwrap_err();
    assert!(err.to_string().contains("closed"), "{err}");
}

fn registry_and_selector_share_the_table(kind: BackendKind) {
    let (r, mut w) = util::pipe();
    let mut selector = selector(kind);
    let registry = selector.registry().unwrap();
    let clone = registry.clone();
    let _r = thread::spawn(move || clone.register(&r, Token(4), Interest::READABLE).map(|()| r))
        .join()
        .unwrap()
        .unwrap();
    assert_eq!(selector.len(), 1);
    w.write_all(b"x").unwrap();
    let mut events = Events::with_capacity(8);
    expect_events(&mut selector, &mut events, &[Expect::readable(4)]);
    // Not counted: the registry's own wake descriptor.
    assert_eq!(selector.len(), 1);
}

/// Regular files, which epoll keeps on a side list: the registry hands them
/// to the selecting thread, on every backend alike.
fn regular_file_through_a_registry(kind: BackendKind) {
    let file = util::regular_file();
    let mut selector = selector(kind);
    let registry = selector.registry().unwrap();
    let mut events = Events::with_capacity(8);
    registry
        .register(&file, Token(1), Interest::READABLE)
        .unwrap();
    expect_events(&mut selector, &mut events, &[Expect::readable(1)]);
    registry.modify(&file, Token(2), Interest::BOTH).unwrap();
    expect_events(
        &mut selector,
        &mut events,
        &[Expect::readable(2).and_writable()],
    );
    let old = registry.unregister(&file).unwrap();
    assert_eq!(old.token, Token(2));
    util::expect_no_events(&mut selector, &mut events);
    assert!(selector.is_empty());
}
