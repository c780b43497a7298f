//! `is_read_closed` and `is_write_closed`: which direction a peer or an
//! error has closed, the same on every backend.

mod util;

use selector::{BackendKind, Event, Events, Interest, Selector, Token};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::time::Duration;
use util::selector;

per_backend!(
    tcp_peer_shut_writing_is_read_closed,
    tcp_both_directions_shut_is_both_closed,
    unix_peer_gone_is_both_closed,
    pipe_reader_gone_is_write_closed,
    pipe_writer_gone_is_read_closed,
    open_connection_is_neither,
);

/// (read closed, write closed) of the one event for `token`, waiting (for
/// at most [`util::WAIT_LIMIT`]) for `want` to show.
#[track_caller]
fn closed_flags(
    selector: &mut Selector,
    events: &mut Events,
    token: usize,
    want: (bool, bool),
) -> (bool, bool) {
    let mut last = None;
    util::retry(|| {
        selector
            .select(events, Some(Duration::from_millis(100)))
            .unwrap();
        let event: Option<Event> = events.iter().find(|e| e.token() == Token(token));
        last = event.map(|e| (e.is_read_closed(), e.is_write_closed()));
        last == Some(want)
    });
    last.unwrap_or_else(|| panic!("{}: no event for token {token}", selector.backend()))
}

fn tcp_peer_shut_writing_is_read_closed(kind: BackendKind) {
    let (client, server) = util::tcp_pair();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector
        .register(&server, Token(1), Interest::BOTH)
        .unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    // Reading reaches end of file; writing still works.
    let got = closed_flags(&mut selector, &mut events, 1, (true, false));
    assert_eq!(got, (true, false), "{kind}");
}

fn tcp_both_directions_shut_is_both_closed(kind: BackendKind) {
    let (client, server) = util::tcp_pair();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector
        .register(&server, Token(1), Interest::READABLE)
        .unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    server.shutdown(Shutdown::Write).unwrap();
    let got = closed_flags(&mut selector, &mut events, 1, (true, true));
    assert_eq!(got, (true, true), "{kind}");
}

fn unix_peer_gone_is_both_closed(kind: BackendKind) {
    let (a, b) = UnixStream::pair().unwrap();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector.register(&a, Token(1), Interest::WRITABLE).unwrap();
    drop(b);
    let got = closed_flags(&mut selector, &mut events, 1, (true, true));
    assert_eq!(got, (true, true), "{kind}");
}

fn pipe_reader_gone_is_write_closed(kind: BackendKind) {
    let (r, w) = util::pipe();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector.register(&w, Token(1), Interest::WRITABLE).unwrap();
    drop(r);
    // EPIPE: an error, so writing is closed; a write end never reads.
    let got = closed_flags(&mut selector, &mut events, 1, (false, true));
    assert_eq!(got, (false, true), "{kind}");
}

fn pipe_writer_gone_is_read_closed(kind: BackendKind) {
    let (r, w) = util::pipe();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector.register(&r, Token(1), Interest::READABLE).unwrap();
    drop(w);
    // poll reports the hangup, which closes both directions of the pipe
    // end as far as the event can tell.
    let got = closed_flags(&mut selector, &mut events, 1, (true, true));
    assert_eq!(got, (true, true), "{kind}");
}

fn open_connection_is_neither(kind: BackendKind) {
    let (client, server) = util::tcp_pair();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector
        .register(&server, Token(1), Interest::BOTH)
        .unwrap();
    std::io::Write::write_all(&mut &client, b"data").unwrap();
    let got = closed_flags(&mut selector, &mut events, 1, (false, false));
    assert_eq!(got, (false, false), "{kind}");
}
