//! Priority interest: TCP out-of-band data (`MSG_OOB`) is the tutorial's
//! third list, reported as `is_priority` on every backend (select(2) through
//! `exceptfds`, poll through `POLLPRI`, epoll through `EPOLLPRI`).

mod util;

use selector::{BackendKind, Events, Interest, Token};
use std::io::Write;
use std::mem::MaybeUninit;
use util::{expect_events, expect_no_events, selector, Expect};

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

fn out_of_band_byte_is_priority(kind: BackendKind) {
    let (client, server) = tcp_pair();
    server.set_nonblocking(true).unwrap();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector
        .register(&server, Token(1), Interest::READABLE | Interest::PRIORITY)
        .unwrap();
    expect_no_events(&mut selector, &mut events);
    assert_eq!(client.send_out_of_band(b"!").unwrap(), 1);
    // The urgent byte alone is not readable (it is not in the stream).
    expect_events(
        &mut selector,
        &mut events,
        &[Expect::token(1).and_priority()],
    );
    // Level-triggered: until it is read with MSG_OOB.
    expect_events(
        &mut selector,
        &mut events,
        &[Expect::token(1).and_priority()],
    );
    read_urgent(&server);
    expect_no_events(&mut selector, &mut events);
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
    expect_events(
        &mut selector,
        &mut events,
        &[Expect::readable(1).and_priority()],
    );
    read_urgent(&server);
    expect_events(&mut selector, &mut events, &[Expect::readable(1)]);
    assert_eq!(util::drain(&server), 6);
    expect_no_events(&mut selector, &mut events);
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
    std::thread::sleep(std::time::Duration::from_millis(20));
    expect_no_events(&mut selector, &mut events);
    // Asking for it now reports it.
    selector
        .modify(&server, Token(1), Interest::READABLE | Interest::PRIORITY)
        .unwrap();
    expect_events(
        &mut selector,
        &mut events,
        &[Expect::token(1).and_priority()],
    );
}

fn priority_interest_alone(kind: BackendKind) {
    let (client, server) = tcp_pair();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector
        .register(&server, Token(1), Interest::PRIORITY)
        .unwrap();
    (&client).write_all(b"plain data is not asked for").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    expect_no_events(&mut selector, &mut events);
    client.send_out_of_band(b"!").unwrap();
    expect_events(
        &mut selector,
        &mut events,
        &[Expect::token(1).and_priority()],
    );
}
