//! `KeySelector`: Python's `selectors` API (data per key, no tokens) on
//! every backend.

mod util;

use selector::{BackendKind, Interest, KeySelector};
use std::io::{ErrorKind, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

per_backend!(
    keys_carry_their_data,
    misuse_is_an_error,
    select_yields_ready_keys
);

fn key_selector(kind: BackendKind) -> KeySelector<String> {
    let selector = KeySelector::with_backend(kind).unwrap();
    assert_eq!(selector.selector().backend(), kind);
    selector
}

fn keys_carry_their_data(kind: BackendKind) {
    let (a, b) = UnixStream::pair().unwrap();
    let mut selector = key_selector(kind);
    let key = selector
        .register(&a, Interest::READABLE, "a".to_string())
        .unwrap();
    assert_eq!(
        (key.fd(), key.interest()),
        (a.as_raw_fd(), Interest::READABLE)
    );
    selector
        .register(&b, Interest::WRITABLE, "b".into())
        .unwrap();
    assert_eq!(selector.len(), 2);
    let map: Vec<&str> = selector.keys().map(|k| k.data().as_str()).collect();
    assert_eq!(map.len(), 2);
    assert!(map.contains(&"a") && map.contains(&"b"), "{map:?}");

    let key = selector.modify(&a, Interest::BOTH).unwrap();
    assert_eq!((key.interest(), key.data().as_str()), (Interest::BOTH, "a"));
    selector.get_key_mut(&a).unwrap().data_mut().push('!');
    assert_eq!(selector.get_key(&a).unwrap().data(), "a!");
    // By number too.
    assert_eq!(selector.get_key(&b.as_raw_fd()).unwrap().data(), "b");

    assert_eq!(selector.unregister(&a).unwrap(), "a!");
    assert!(selector.get_key(&a).is_none());
    assert_eq!(selector.len(), 1);
    assert_eq!(selector.selector().len(), 1);
}

fn misuse_is_an_error(kind: BackendKind) {
    let (a, _b) = UnixStream::pair().unwrap();
    let mut selector = key_selector(kind);
    let err = selector.modify(&a, Interest::READABLE).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let err = selector.unregister(&a).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    selector
        .register(&a, Interest::READABLE, "a".into())
        .unwrap();
    let err = selector
        .register(&a, Interest::READABLE, "again".into())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    assert_eq!(selector.get_key(&a).unwrap().data(), "a", "data kept");
    let err = selector
        .register(&-1, Interest::READABLE, "bad".into())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let closed = util::closed_fd();
    let err = selector
        .register(&closed, Interest::READABLE, "closed".into())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(selector.len(), 1);
}

fn select_yields_ready_keys(kind: BackendKind) {
    let (mut a, b) = UnixStream::pair().unwrap();
    let (_c, d) = UnixStream::pair().unwrap();
    let mut selector = key_selector(kind);
    selector
        .register(&b, Interest::READABLE, "b".into())
        .unwrap();
    selector
        .register(&d, Interest::READABLE, "d".into())
        .unwrap();
    assert_eq!(selector.select(Some(Duration::ZERO)).unwrap().count(), 0);
    a.write_all(b"x").unwrap();
    let mut ready = Vec::new();
    for _ in 0..20 {
        ready = selector
            .select(Some(Duration::from_millis(100)))
            .unwrap()
            .map(|(key, event)| (key.data().clone(), event.is_readable()))
            .collect();
        if !ready.is_empty() {
            break;
        }
    }
    assert_eq!(ready, [("b".to_string(), true)]);
}

#[test]
fn from_selector_takes_only_an_empty_selector() {
    let (r, _w) = util::pipe();
    let mut selector = selector::Selector::new().unwrap();
    selector
        .register(&r, selector::Token(1), Interest::READABLE)
        .unwrap();
    let err = KeySelector::<()>::from_selector(selector).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    let mut keys = KeySelector::<u8>::from_selector(selector::Selector::new().unwrap()).unwrap();
    keys.register(&r, Interest::READABLE, 7).unwrap();
    assert_eq!(keys.len(), 1);
}
