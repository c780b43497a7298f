//! What each kind of descriptor reports, and when: pipes, Unix stream pairs,
//! TCP and UDP on loopback, regular files. The same on every backend.

mod util;

use selector::{BackendKind, Events, Interest, Token};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::Duration;
use util::{expect_events, expect_no_events, selector, Expect};

per_backend!(
    pipe_readable_until_drained,
    pipe_write_end_writable,
    pipe_hangup_when_writer_closes,
    pipe_error_when_reader_closes,
    unix_stream_readable_and_writable,
    unix_stream_not_writable_when_full,
    unix_stream_hangup_when_peer_closes,
    unix_stream_half_close_is_readable_not_hangup,
    tcp_listener_readable_on_connect,
    tcp_stream_readable_after_write,
    tcp_peer_close_is_end_of_file,
    tcp_hangup_when_both_directions_shut,
    tcp_reset_is_error_and_hangup,
    tcp_refused_connect_is_error,
    udp_readable_per_datagram,
    udp_refused_send_is_error,
    regular_file_always_ready,
    regular_file_does_not_block_a_wait,
    several_descriptors_at_once,
);

fn pipe_readable_until_drained(kind: BackendKind) {
    let (r, mut w) = util::pipe();
    util::set_nonblocking(&r);
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector.register(&r, Token(1), Interest::READABLE).unwrap();
    expect_no_events(&mut selector, &mut events);

    w.write_all(b"hello").unwrap();
    expect_events(&mut selector, &mut events, &[Expect::readable(1)]);
    // Level-triggered: still reported while the bytes are there.
    expect_events(&mut selector, &mut events, &[Expect::readable(1)]);
    assert_eq!(util::drain(&r), 5);
    expect_no_events(&mut selector, &mut events);
}

fn pipe_write_end_writable(kind: BackendKind) {
    let (_r, w) = util::pipe();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector.register(&w, Token(1), Interest::BOTH).unwrap();
    // A write end never reads; only writability shows.
    expect_events(&mut selector, &mut events, &[Expect::writable(1)]);
}

fn pipe_hangup_when_writer_closes(kind: BackendKind) {
    let (r, mut w) = util::pipe();
    w.write_all(b"last words").unwrap();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector.register(&r, Token(1), Interest::READABLE).unwrap();
    drop(w);
    expect_events(
        &mut selector,
        &mut events,
        &[Expect::readable(1).and_hangup()],
    );
    // The data is still there to read, then end of file; hangup stays.
    assert_eq!(util::drain(&r), 10);
    expect_events(
        &mut selector,
        &mut events,
        &[Expect::readable(1).and_hangup()],
    );
}

fn pipe_error_when_reader_closes(kind: BackendKind) {
    let (r, w) = util::pipe();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector.register(&w, Token(1), Interest::WRITABLE).unwrap();
    drop(r);
    // A write would fail with EPIPE at once: writable, with an error.
    expect_events(
        &mut selector,
        &mut events,
        &[Expect::writable(1).and_error()],
    );
}

fn unix_stream_readable_and_writable(kind: BackendKind) {
    let (mut a, b) = UnixStream::pair().unwrap();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector.register(&a, Token(1), Interest::READABLE).unwrap();
    selector.register(&b, Token(2), Interest::BOTH).unwrap();
    expect_events(&mut selector, &mut events, &[Expect::writable(2)]);
    a.write_all(b"to b").unwrap();
    expect_events(
        &mut selector,
        &mut events,
        &[Expect::readable(2).and_writable()],
    );
    (&b).write_all(b"to a").unwrap();
    expect_events(
        &mut selector,
        &mut events,
        &[Expect::readable(1), Expect::readable(2).and_writable()],
    );
    assert_eq!(util::read_exact(&b, 4), b"to b");
    assert_eq!(util::read_exact(&a, 4), b"to a");
    expect_events(&mut selector, &mut events, &[Expect::writable(2)]);
}

fn unix_stream_not_writable_when_full(kind: BackendKind) {
    let (a, b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector.register(&a, Token(1), Interest::WRITABLE).unwrap();
    expect_events(&mut selector, &mut events, &[Expect::writable(1)]);
    let chunk = [7u8; 4096];
    let mut written = 0;
    loop {
        match (&a).write(&chunk) {
            Ok(n) => written += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("fill: {e}"),
        }
        assert!(written < 64 << 20, "the socket buffer never filled");
    }
    expect_no_events(&mut selector, &mut events);
    // Reading it all makes room again.
    b.set_nonblocking(true).unwrap();
    assert_eq!(util::drain(&b), written);
    expect_events(&mut selector, &mut events, &[Expect::writable(1)]);
}

fn unix_stream_hangup_when_peer_closes(kind: BackendKind) {
    let (a, b) = UnixStream::pair().unwrap();
    let (c, d) = UnixStream::pair().unwrap();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector.register(&a, Token(1), Interest::READABLE).unwrap();
    selector.register(&c, Token(2), Interest::WRITABLE).unwrap();
    drop(b);
    drop(d);
    // Hangup shows whatever the interest; readable (EOF) only if asked.
    expect_events(
        &mut selector,
        &mut events,
        &[
            Expect::readable(1).and_hangup(),
            Expect::writable(2).and_hangup(),
        ],
    );
}

fn unix_stream_half_close_is_readable_not_hangup(kind: BackendKind) {
    let (a, b) = UnixStream::pair().unwrap();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector.register(&a, Token(1), Interest::BOTH).unwrap();
    b.shutdown(Shutdown::Write).unwrap();
    // End of file to read, and b still reads what a writes.
    expect_events(
        &mut selector,
        &mut events,
        &[Expect::readable(1).and_writable()],
    );
    a.shutdown(Shutdown::Write).unwrap();
    expect_events(
        &mut selector,
        &mut events,
        &[Expect::readable(1).and_writable().and_hangup()],
    );
}

fn tcp_listener_readable_on_connect(kind: BackendKind) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector
        .register(&listener, Token(0), Interest::READABLE)
        .unwrap();
    expect_no_events(&mut selector, &mut events);
    let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    expect_events(&mut selector, &mut events, &[Expect::readable(0)]);
    let (_server_side, _) = listener.accept().unwrap();
    expect_no_events(&mut selector, &mut events);
}

fn tcp_stream_readable_after_write(kind: BackendKind) {
    let (mut client, server) = util::tcp_pair();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector
        .register(&server, Token(1), Interest::BOTH)
        .unwrap();
    selector
        .register(&client, Token(2), Interest::READABLE)
        .unwrap();
    expect_events(&mut selector, &mut events, &[Expect::writable(1)]);
    client.write_all(b"over tcp").unwrap();
    expect_events(
        &mut selector,
        &mut events,
        &[Expect::readable(1).and_writable()],
    );
    assert_eq!(util::read_exact(&server, 8), b"over tcp");
    expect_events(&mut selector, &mut events, &[Expect::writable(1)]);
}

fn tcp_peer_close_is_end_of_file(kind: BackendKind) {
    let (client, server) = util::tcp_pair();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector
        .register(&server, Token(1), Interest::BOTH)
        .unwrap();
    drop(client);
    // A FIN only closes the peer's direction: readable (EOF), not hangup.
    expect_events(
        &mut selector,
        &mut events,
        &[Expect::readable(1).and_writable()],
    );
    assert_eq!((&server).read(&mut [0; 8]).unwrap(), 0);
}

fn tcp_hangup_when_both_directions_shut(kind: BackendKind) {
    let (client, server) = util::tcp_pair();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector
        .register(&server, Token(1), Interest::READABLE)
        .unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    expect_events(&mut selector, &mut events, &[Expect::readable(1)]);
    server.shutdown(Shutdown::Write).unwrap();
    expect_events(
        &mut selector,
        &mut events,
        &[Expect::readable(1).and_hangup()],
    );
}

fn tcp_reset_is_error_and_hangup(kind: BackendKind) {
    let (client, server) = util::tcp_pair();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector
        .register(&server, Token(1), Interest::BOTH)
        .unwrap();
    // SO_LINGER 0: close sends RST instead of FIN.
    let client = socket2::Socket::from(client);
    client.set_linger(Some(Duration::ZERO)).unwrap();
    drop(client);
    expect_events(
        &mut selector,
        &mut events,
        &[Expect::readable(1).and_writable().and_error().and_hangup()],
    );
    let err = (&server).read(&mut [0; 8]).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
}

fn tcp_refused_connect_is_error(kind: BackendKind) {
    // A port with nobody listening: bind one, note it, close it.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_nonblocking(true).unwrap();
    match socket.connect(&addr.into()) {
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INPROGRESS.raw_os_error()) => {}
        // Loopback may refuse at once; nothing left to watch then.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
        other => panic!("connect to a closed port: {other:?}"),
    }
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector
        .register(&socket, Token(1), Interest::WRITABLE)
        .unwrap();
    expect_events(
        &mut selector,
        &mut events,
        &[Expect::writable(1).and_error().and_hangup()],
    );
    let err = socket.take_error().unwrap().expect("a pending error");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
}

fn udp_readable_per_datagram(kind: BackendKind) {
    let (a, b) = util::udp_pair();
    a.set_nonblocking(true).unwrap();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector.register(&a, Token(1), Interest::READABLE).unwrap();
    selector.register(&b, Token(2), Interest::WRITABLE).unwrap();
    expect_events(&mut selector, &mut events, &[Expect::writable(2)]);
    b.send(b"one").unwrap();
    b.send(b"two").unwrap();
    expect_events(
        &mut selector,
        &mut events,
        &[Expect::readable(1), Expect::writable(2)],
    );
    let mut buf = [0; 16];
    assert_eq!(a.recv(&mut buf).unwrap(), 3);
    // One datagram left: still readable.
    expect_events(
        &mut selector,
        &mut events,
        &[Expect::readable(1), Expect::writable(2)],
    );
    assert_eq!(a.recv(&mut buf).unwrap(), 3);
    expect_events(&mut selector, &mut events, &[Expect::writable(2)]);
}

fn udp_refused_send_is_error(kind: BackendKind) {
    let (a, b) = util::udp_pair();
    drop(b);
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector.register(&a, Token(1), Interest::READABLE).unwrap();
    // The ICMP port-unreachable comes back as a pending error on a
    // connected socket; the read then reports it.
    a.send(b"anyone?").unwrap();
    expect_events(
        &mut selector,
        &mut events,
        &[Expect::readable(1).and_error()],
    );
    let err = a.recv(&mut [0; 16]).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
}

fn regular_file_always_ready(kind: BackendKind) {
    let file = util::regular_file();
    let other = util::regular_file();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector.register(&file, Token(1), Interest::BOTH).unwrap();
    selector
        .register(&other, Token(2), Interest::READABLE)
        .unwrap();
    expect_events(
        &mut selector,
        &mut events,
        &[Expect::readable(1).and_writable(), Expect::readable(2)],
    );
    selector
        .modify(&file, Token(3), Interest::WRITABLE)
        .unwrap();
    expect_events(
        &mut selector,
        &mut events,
        &[Expect::writable(3), Expect::readable(2)],
    );
    selector.unregister(&other).unwrap();
    expect_events(&mut selector, &mut events, &[Expect::writable(3)]);
    selector.unregister(&file).unwrap();
    expect_no_events(&mut selector, &mut events);
}

fn regular_file_does_not_block_a_wait(kind: BackendKind) {
    let file = util::regular_file();
    let (r, _w) = util::pipe();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector.register(&r, Token(1), Interest::READABLE).unwrap();
    selector
        .register(&file, Token(2), Interest::READABLE)
        .unwrap();
    // No timeout: the file is ready, so this returns at once.
    let ((), elapsed) = util::timed(|| selector.select(&mut events, None).unwrap());
    assert_eq!(util::seen(&events), [Expect::readable(2)]);
    assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
}

fn several_descriptors_at_once(kind: BackendKind) {
    let (pr, mut pw) = util::pipe();
    let (ua, mut ub) = UnixStream::pair().unwrap();
    let (tc, ts) = util::tcp_pair();
    let (da, db) = util::udp_pair();
    let mut selector = selector(kind);
    let mut events = Events::with_capacity(8);
    selector
        .register(&pr, Token(10), Interest::READABLE)
        .unwrap();
    selector
        .register(&ua, Token(20), Interest::READABLE)
        .unwrap();
    selector
        .register(&ts, Token(30), Interest::READABLE)
        .unwrap();
    selector
        .register(&da, Token(40), Interest::READABLE)
        .unwrap();
    expect_no_events(&mut selector, &mut events);
    pw.write_all(b"p").unwrap();
    ub.write_all(b"u").unwrap();
    (&tc).write_all(b"t").unwrap();
    db.send(b"d").unwrap();
    expect_events(
        &mut selector,
        &mut events,
        &[
            Expect::readable(10),
            Expect::readable(20),
            Expect::readable(30),
            Expect::readable(40),
        ],
    );
}
