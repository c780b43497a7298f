use selector::{BackendKind, Events, Interest, Selector, Token};
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::Duration;

#[test]
fn smoke_all_backends() {
    for kind in [BackendKind::Epoll, BackendKind::Poll, BackendKind::Select] {
        let (mut a, b) = UnixStream::pair().unwrap();
        let mut s = Selector::with_backend(kind).unwrap();
        s.register(&b, Token(3), Interest::READABLE).unwrap();
        s.register(&a, Token(4), Interest::WRITABLE).unwrap();
        let mut ev = Events::with_capacity(16);
        s.select(&mut ev, Some(Duration::from_millis(10))).unwrap();
        assert_eq!(ev.len(), 1, "{kind}: {:?}", ev);
        a.write_all(b"x").unwrap();
        s.select(&mut ev, Some(Duration::from_millis(10))).unwrap();
        assert_eq!(ev.len(), 2, "{kind}: {:?}", ev);
        drop(a);
        s.select(&mut ev, Some(Duration::from_millis(10))).unwrap();
        println!("{kind}: {:?}", ev);
    }
}
