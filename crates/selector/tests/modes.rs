//! Modes per registration: oneshot (native on epoll, emulated on poll and
//! select), edge-triggered where the kernel has it and a typed `Unsupported`
//! error elsewhere, level as the default.

mod util;

use selector::{BackendKind, Events, Interest, Mode, Token, Unsupported};
use std::io::{ErrorKind, Write};
use util::{expect_events, expect_no_events, selector, Expect};

per_backend!(
    oneshot_reports_once_until_modify,
    oneshot_disarmed_hides_hangup_too,
    oneshot_back_to_level,
    oneshot_unregister_while_disarmed,
    oneshot_regular_file,
    oneshot_beside_level,
    edge_or_unsupported,
    register_defaults_to_level,
);

fn oneshot_reports_once_until_modify(kind: BackendKind) {
    let (r, mut w) = util::pipe();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector
        .register_with(&r, Token(1), Interest::READABLE, Mode::Oneshot)
        .unwrap();
    assert_eq!(selector.mode(&r), Some(Mode::Oneshot));
    w.write_all(b"x").unwrap();
    expect_events(&mut selector, &mut events, &[Expect::readable(1)]);
    // Still readable, but disarmed.
    expect_no_events(&mut selector, &mut events);
    w.write_all(b"y").unwrap();
    expect_no_events(&mut selector, &mut events);
    // modify re-arms, keeping the mode, even with the same interest.
    selector.modify(&r, Token(1), Interest::READABLE).unwrap();
    assert_eq!(selector.mode(&r), Some(Mode::Oneshot));
    expect_events(&mut selector, &mut events, &[Expect::readable(1)]);
    expect_no_events(&mut selector, &mut events);
    // A new token on re-arming is the one reported.
    selector.modify(&r, Token(2), Interest::READABLE).unwrap();
    expect_events(&mut selector, &mut events, &[Expect::readable(2)]);
}

fn oneshot_disarmed_hides_hangup_too(kind: BackendKind) {
    let (r, mut w) = util::pipe();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector
        .register_with(&r, Token(1), Interest::READABLE, Mode::Oneshot)
        .unwrap();
    w.write_all(b"x").unwrap();
    expect_events(&mut selector, &mut events, &[Expect::readable(1)]);
    drop(w);
    expect_no_events(&mut selector, &mut events);
    selector.modify(&r, Token(1), Interest::READABLE).unwrap();
    expect_events(
        &mut selector,
        &mut events,
        &[Expect::readable(1).and_hangup()],
    );
}

fn oneshot_back_to_level(kind: BackendKind) {
    let (r, mut w) = util::pipe();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector
        .register_with(&r, Token(1), Interest::READABLE, Mode::Oneshot)
        .unwrap();
    w.write_all(b"x").unwrap();
    expect_events(&mut selector, &mut events, &[Expect::readable(1)]);
    selector
        .modify_with(&r, Token(1), Interest::READABLE, Mode::Level)
        .unwrap();
    for _ in 0..3 {
        expect_events(&mut selector, &mut events, &[Expect::readable(1)]);
    }
    assert_eq!(selector.mode(&r), Some(Mode::Level));
}

fn oneshot_unregister_while_disarmed(kind: BackendKind) {
    let (r, mut w) = util::pipe();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector
        .register_with(&r, Token(1), Interest::READABLE, Mode::Oneshot)
        .unwrap();
    w.write_all(b"x").unwrap();
    expect_events(&mut selector, &mut events, &[Expect::readable(1)]);
    let old = selector.unregister(&r).unwrap();
    assert_eq!(old.token, Token(1));
    assert!(selector.is_empty());
    let err = selector
        .modify(&r, Token(1), Interest::READABLE)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    // Registered afresh, level this time.
    selector.register(&r, Token(3), Interest::READABLE).unwrap();
    expect_events(&mut selector, &mut events, &[Expect::readable(3)]);
    expect_events(&mut selector, &mut events, &[Expect::readable(3)]);
}

fn oneshot_regular_file(kind: BackendKind) {
    let file = util::regular_file();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector
        .register_with(&file, Token(1), Interest::BOTH, Mode::Oneshot)
        .unwrap();
    expect_events(
        &mut selector,
        &mut events,
        &[Expect::readable(1).and_writable()],
    );
    expect_no_events(&mut selector, &mut events);
    selector
        .modify(&file, Token(1), Interest::WRITABLE)
        .unwrap();
    expect_events(&mut selector, &mut events, &[Expect::writable(1)]);
    expect_no_events(&mut selector, &mut events);
}

fn oneshot_beside_level(kind: BackendKind) {
    let (r1, mut w1) = util::pipe();
    let (r2, mut w2) = util::pipe();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector
        .register_with(&r1, Token(1), Interest::READABLE, Mode::Oneshot)
        .unwrap();
    selector
        .register(&r2, Token(2), Interest::READABLE)
        .unwrap();
    w1.write_all(b"x").unwrap();
    w2.write_all(b"x").unwrap();
    expect_events(
        &mut selector,
        &mut events,
        &[Expect::readable(1), Expect::readable(2)],
    );
    expect_events(&mut selector, &mut events, &[Expect::readable(2)]);
    expect_events(&mut selector, &mut events, &[Expect::readable(2)]);
}

/// Edge-triggered where the backend has it (reported when data arrives, not
/// while it waits); elsewhere the typed error, and nothing registered.
fn edge_or_unsupported(kind: BackendKind) {
    let (r, mut w) = util::pipe();
    util::set_nonblocking(&r);
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    let result = selector.register_with(&r, Token(1), Interest::READABLE, Mode::Edge);
    if !selector.supports(Mode::Edge) {
        let err = result.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
        let why = err.get_ref().and_then(|e| e.downcast_ref::<Unsupported>());
        assert_eq!(why, Some(&Unsupported::Mode(kind, Mode::Edge)));
        assert!(selector.is_empty(), "{kind}: a refused mode registered");
        assert!(err.to_string().contains("edge"), "{err}");
        return;
    }
    result.unwrap();
    w.write_all(b"x").unwrap();
    expect_events(&mut selector, &mut events, &[Expect::readable(1)]);
    // The byte is still there, but no new edge.
    expect_no_events(&mut selector, &mut events);
    w.write_all(b"y").unwrap();
    expect_events(&mut selector, &mut events, &[Expect::readable(1)]);
    expect_no_events(&mut selector, &mut events);
    assert_eq!(util::drain(&r), 2);
}

fn register_defaults_to_level(kind: BackendKind) {
    let (r, _w) = util::pipe();
    let mut selector = selector(kind);
    assert!(selector.supports(Mode::Level) && selector.supports(Mode::Oneshot));
    selector.register(&r, Token(1), Interest::READABLE).unwrap();
    assert_eq!(selector.mode(&r), Some(Mode::Level));
    // Modifying into an unsupported mode leaves the registration as it was.
    if !selector.supports(Mode::Edge) {
        let err = selector
            .modify_with(&r, Token(2), Interest::BOTH, Mode::Edge)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported);
        let reg = selector.registration(&r).unwrap();
        assert_eq!((reg.token, reg.interest), (Token(1), Interest::READABLE));
    }
}
