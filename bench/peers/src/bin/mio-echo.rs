//! mio echo server, about the effort of mio's `tcp_server` example.
//!
//! mio is edge-triggered: each connection is registered once for READABLE | WRITABLE, every
//! readable event is read until `WouldBlock`, and what the kernel did not take on write waits in
//! the connection's `pending` buffer until the next writable event.
#![forbid(unsafe_code)]

use std::io::{self, ErrorKind, Read, Write};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

const LISTENER: Token = Token(usize::MAX);
/// One read buffer for the whole loop; 64 KiB takes a 16 KiB message (or several) per read.
const READ_BUF: usize = 64 * 1024;

struct Connection {
    stream: TcpStream,
    /// Echo bytes the kernel has not taken yet, in order.
    pending: Vec<u8>,
}

/// What to do with a connection after handling its event.
enum Next {
    Keep,
    Close,
}

fn main() -> io::Result<()> {
    let mut listener = TcpListener::bind(echo_peers::listen_addr()?)?;
    echo_peers::announce(listener.local_addr()?)?;

    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut events = Events::with_capacity(1024);
    // A slab: token = index; freed slots are reused.
    let mut conns: Vec<Option<Connection>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut buf = vec![0u8; READ_BUF];

    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in &events {
            if event.token() == LISTENER {
                accept_all(&listener, &poll, &mut conns, &mut free);
                continue;
            }
            let idx = event.token().0;
            let Some(conn) = conns.get_mut(idx).and_then(Option::as_mut) else {
                continue;
            };
            let mut next = Next::Keep;
            if event.is_writable() && !conn.pending.is_empty() {
                next = flush(conn);
            }
            // An error event alone is also read: the read reports the error and closes.
            let readable = event.is_readable() || event.is_read_closed() || event.is_error();
            if matches!(next, Next::Keep) && readable {
                next = read_and_echo(conn, &mut buf);
            }
            if matches!(next, Next::Close) {
                if let Some(mut conn) = conns[idx].take() {
                    // Deregister before the drop closes the fd.
                    let _ = poll.registry().deregister(&mut conn.stream);
                }
                free.push(idx);
            }
        }
    }
}

fn accept_all(
    listener: &TcpListener,
    poll: &Poll,
    conns: &mut Vec<Option<Connection>>,
    free: &mut Vec<usize>,
) {
    loop {
        let mut stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) => {
                // EMFILE and friends: the next connection attempt brings a new edge.
                eprintln!("accept: {e}");
                return;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            eprintln!("set_nodelay: {e}");
        }
        let idx = free.pop().unwrap_or(conns.len());
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = poll.registry().register(&mut stream, Token(idx), interest) {
            eprintln!("register: {e}");
            free.push(idx);
            continue;
        }
        let conn = Some(Connection {
            stream,
            pending: Vec::new(),
        });
        if idx == conns.len() {
            conns.push(conn);
        } else {
            conns[idx] = conn;
        }
    }
}

/// Reads until `WouldBlock` (edge-triggered), echoing each chunk.
fn read_and_echo(conn: &mut Connection, buf: &mut [u8]) -> Next {
    loop {
        match conn.stream.read(buf) {
            Ok(0) => return Next::Close,
            Ok(n) => {
                if conn.pending.is_empty() {
                    match write_some(&mut conn.stream, &buf[..n]) {
                        Ok(written) => conn.pending.extend_from_slice(&buf[written..n]),
                        Err(_) => return Next::Close,
                    }
                } else {
                    // Keep the order: new bytes go behind the ones still waiting.
                    conn.pending.extend_from_slice(&buf[..n]);
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Next::Keep,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Next::Close,
        }
    }
}

/// Writes the pending bytes until done or `WouldBlock`.
fn flush(conn: &mut Connection) -> Next {
    match write_some(&mut conn.stream, &conn.pending) {
        Ok(written) => {
            conn.pending.drain(..written);
            Next::Keep
        }
        Err(_) => Next::Close,
    }
}

/// Writes as much of `data` as the kernel takes; `Ok(n)` short of the end means `WouldBlock`.
fn write_some(stream: &mut TcpStream, data: &[u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < data.len() {
        match stream.write(&data[done..]) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}
