//! Priority interest: TCP out-of-band data (`MSG_OOB`) is the tutorial's
//! third list, reported as `is_priority` on every backend (select(2) through
//! `exceptfds`, poll through `POLLPRI`, epoll through `EPOLLPRI`).
//!
//! Only the priority bit is asserted where the urgent byte is concerned:
//! whether the kernel also calls the socket readable then is its own
//! affair (Linux usually says no, as the byte is not in the stream, but yes
//! when the connection's receive window is small, as on a machine under TCP
//! memory pressure).

mod util;

use selector::{BackendKind, Event, Events, Interest, Selector, Token};
use std::io::Write;
use std::mem::MaybeUninit;
use std::time::Duration;
use util::selector;

per_backend!(
    out_of_band_byte_is_priority,
    priority_beside_normal_data,
    no_priority_without_the_interest,
    priority_interest_alone,
);

/// Reads the one urgent byte (with `MSG_OOB`), which ends the priority state.
fn read_urgent(socket: &socket2::Socket) {
    let mut buf = [MaybeUninit::<u8>::uninit(); 1];
    assert_eq!(socket.recv_out_of_band(&mut buf).unwrap(), 1);
}

fn tcp_pair() -> (socket2::Socket, socket2::Socket) {
    let (client, server) = util::tcp_pair();
    (socket2::Socket::from(client), socket2::Socket::from(server))
}

/// The event for token 1 once it says priority (waiting for at most
/// [`util::WAIT_LIMIT`]).
#[track_caller]
fn wait_priority(selector: &mut Selector, events: &mut Events) -> Event {
    let mut last = None;
    util::retry(|| {
        selector
            .select(events, Some(Duration::from_millis(100)))
            .unwrap();
        last = events.iter().find(|e| e.token() == Token(1));
        last.is_some_and(|e| e.is_priority())
    });
    last.filter(Event::is_priority)
        .unwrap_or_else(|| panic!("{}: no priority event; last {last:?}", selector.backend()))
}

/// A few waits, none of which may report priority.
#[track_caller]
fn expect_no_priority(selector: &mut Selector, events: &mut Events) {
    for _ in 0..3 {
        selector
            .select(events, Some(Duration::from_millis(20)))
            .unwrap();
        let seen: Vec<Event> = events.iter().filter(|e| e.is_priority()).collect();
        assert!(seen.is_empty(), "{}: {seen:?}", selector.backend());
    }
}

fn out_of_band_byte_is_priority(kind: BackendKind) {
    let (client, server) = tcp_pair();
    server.set_nonblocking(true).unwrap();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector
        .register(&server, Token(1), Interest::READABLE | Interest::PRIORITY)
        .unwrap();
    util::expect_no_events(&mut selector, &mut events);
    assert_eq!(client.send_out_of_band(b"!").unwrap(), 1);
    let event = wait_priority(&mut selector, &mut events);
    assert!(!event.is_error_or_hangup(), "{event:?}");
    // Level-triggered: until it is read with MSG_OOB.
    wait_priority(&mut selector, &mut events);
    read_urgent(&server);
    expect_no_priority(&mut selector, &mut events);
}

fn priority_beside_normal_data(kind: BackendKind) {
    let (client, server) = tcp_pair();
    server.set_nonblocking(true).unwrap();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector
        .register(&server, Token(1), Interest::READABLE | Interest::PRIORITY)
        .unwrap();
    (&client).write_all(b"normal").unwrap();
    client.send_out_of_band(b"!").unwrap();
    let event = wait_priority(&mut selector, &mut events);
    assert!(event.is_readable(), "{event:?}");
    read_urgent(&server);
    expect_no_priority(&mut selector, &mut events);
    assert_eq!(util::drain(&server), 6);
}

fn no_priority_without_the_interest(kind: BackendKind) {
    let (client, server) = tcp_pair();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector
        .register(&server, Token(1), Interest::READABLE)
        .unwrap();
    client.send_out_of_band(b"!").unwrap();
    // Give the byte time to arrive, then check nothing is said about it.
    std::thread::sleep(Duration::from_millis(20));
    expect_no_priority(&mut selector, &mut events);
    // Asking for it now reports it.
    selector
        .modify(&server, Token(1), Interest::READABLE | Interest::PRIORITY)
        .unwrap();
    wait_priority(&mut selector, &mut events);
}

fn priority_interest_alone(kind: BackendKind) {
    let (client, server) = tcp_pair();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector
        .register(&server, Token(1), Interest::PRIORITY)
        .unwrap();
    (&client).write_all(b"plain data is not asked for").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    util::expect_no_events(&mut selector, &mut events);
    client.send_out_of_band(b"!").unwrap();
    let event = wait_priority(&mut selector, &mut events);
    assert!(
        !event.is_readable(),
        "read interest was not asked: {event:?}"
    );
}
