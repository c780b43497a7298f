//! The tutorial's echo server again, on Python's `selectors` shape: a
//! [`selector::KeySelector`] keeps each socket's state as the key's data, so
//! there are no `inputs`/`outputs` lists and no token bookkeeping. Compare
//! with `select_echo.rs`, the `select.select()` version.
//!
//! ```text
//! cargo run -p fdselector --example selectors_echo            # localhost:10000
//! cargo run -p fdselector --example selectors_echo 127.0.0.1:0
//! nc localhost 10000                                        # in another terminal
//! ```
//!
//! The tutorial's `inputs` is every key with read interest, `outputs` every
//! key with write interest, and `message_queues[s]` the key's queue. Each
//! handler returns what the loop must do with the socket, and the loop does
//! it in one place: unregister, then close.

use selector::{Event, Interest, KeySelector};
use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

/// A key's data: the listening socket, or a connection with its queue.
pub(crate) enum Socket {
    Server(TcpListener),
    Connection {
        stream: TcpStream,
        peer: SocketAddr,
        /// The tutorial's `message_queues[s]`.
        queue: VecDeque<Vec<u8>>,
    },
}

/// What the loop must do after a handler ran.
enum Next {
    /// Watch the socket for this from now on.
    Watch(Interest),
    /// Register a new connection.
    Accepted(TcpStream, SocketAddr),
    /// Unregister the socket, then close it.
    Close,
    /// Nothing changes.
    Same,
}

fn main() -> io::Result<()> {
    let server_address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "localhost:10000".to_string());
    let server = TcpListener::bind(&server_address)
        .map_err(|e| io::Error::new(e.kind(), format!("bind {server_address}: {e}")))?;
    server.set_nonblocking(true)?;
    let local = server.local_addr()?;
    eprintln!("starting up on {} port {}", local.ip(), local.port());
    eprintln!("connect with: nc {} {}", local.ip(), local.port());
    serve(server)
}

/// The event loop: `inputs = [server]`, then select until nothing is left.
fn serve(server: TcpListener) -> io::Result<()> {
    let mut selector: KeySelector<Socket> = KeySelector::new()?;
    listen(&mut selector, server)?;
    while !selector.is_empty() {
        eprintln!("\nwaiting for the next event");
        round(&mut selector, None)?;
    }
    Ok(())
}

/// Registers the listening socket (also what a test calls, on a selector of
/// its own).
pub(crate) fn listen(selector: &mut KeySelector<Socket>, server: TcpListener) -> io::Result<()> {
    // The key's data owns the socket; the key is found by its number.
    selector.register(
        &server.as_raw_fd(),
        Interest::READABLE,
        Socket::Server(server),
    )?;
    Ok(())
}

/// One select and the handling of what it reported.
pub(crate) fn round(
    selector: &mut KeySelector<Socket>,
    timeout: Option<Duration>,
) -> io::Result<()> {
    // Copy the ready (fd, event) pairs out: handling them changes the
    // registrations, which the select result borrows.
    let ready: Vec<(RawFd, Event)> = selector
        .select(timeout)?
        .map(|(key, event)| (key.fd(), event))
        .collect();
    for (fd, event) in ready {
        // Closed by an earlier event of this round: nothing left to do.
        let Some(key) = selector.get_key_mut(&fd) else {
            continue;
        };
        match handle(key.data_mut(), event) {
            Next::Same => {}
            Next::Watch(interest) => {
                if selector.get_key(&fd).map(|k| k.interest()) != Some(interest) {
                    selector.modify(&fd, interest)?;
                }
            }
            Next::Accepted(stream, peer) => {
                eprintln!("new connection from {peer}");
                stream.set_nonblocking(true)?;
                let conn = Socket::Connection {
                    stream,
                    peer,
                    queue: VecDeque::new(),
                };
                let fd = conn_fd(&conn);
                selector.register(&fd, Interest::READABLE, conn)?;
            }
            Next::Close => {
                // Unregister before close: the data owns the socket,
                // and dropping it closes the descriptor.
                let socket = selector.unregister(&fd)?;
                drop(socket);
            }
        }
    }
    Ok(())
}

fn conn_fd(socket: &Socket) -> RawFd {
    match socket {
        Socket::Server(listener) => listener.as_raw_fd(),
        Socket::Connection { stream, .. } => stream.as_raw_fd(),
    }
}

/// One socket's work for one event; says what the loop must do next.
fn handle(socket: &mut Socket, event: Event) -> Next {
    match socket {
        // A "readable" server socket is ready to accept a connection
        Socket::Server(listener) => match listener.accept() {
            Ok((stream, peer)) => Next::Accepted(stream, peer),
            // The client gave up between select and accept.
            Err(e) if e.kind() == ErrorKind::WouldBlock => Next::Same,
            Err(e) => {
                eprintln!("accept failed: {e}");
                Next::Same
            }
        },
        Socket::Connection {
            stream,
            peer,
            queue,
        } => {
            if event.is_readable() {
                match read(stream, queue) {
                    Ok(Some(0)) => {
                        // Interpret empty result as closed connection
                        eprintln!("closing {peer} after reading no data");
                        return Next::Close;
                    }
                    Ok(Some(n)) => eprintln!("received {n} bytes from {peer}"),
                    // Spurious readiness: nothing to read after all.
                    Ok(None) => {}
                    Err(e) => {
                        eprintln!("closing {peer} after an error: {e}");
                        return Next::Close;
                    }
                }
            }
            if event.is_writable() || !queue.is_empty() {
                if let Err(e) = send(stream, queue) {
                    eprintln!("closing {peer} after an error: {e}");
                    return Next::Close;
                }
            }
            if queue.is_empty() {
                // No messages waiting so stop checking for writability.
                Next::Watch(Interest::READABLE)
            } else {
                // Add output channel for response
                Next::Watch(Interest::BOTH)
            }
        }
    }
}

/// Reads what is there into the queue: `Some(0)` at end of file, `None`
/// when nothing was there after all.
fn read(stream: &mut TcpStream, queue: &mut VecDeque<Vec<u8>>) -> io::Result<Option<usize>> {
    let mut data = [0u8; 1024];
    match stream.read(&mut data) {
        Ok(n) => {
            queue.push_back(data[..n].to_vec());
            Ok(Some(n))
        }
        Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

/// Sends queued messages until the queue is empty or the socket is full.
fn send(stream: &mut TcpStream, queue: &mut VecDeque<Vec<u8>>) -> io::Result<()> {
    while let Some(next_msg) = queue.pop_front() {
        match stream.write(&next_msg) {
            Ok(sent) if sent < next_msg.len() => {
                queue.push_front(next_msg[sent..].to_vec());
                return Ok(());
            }
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                queue.push_front(next_msg);
                return Ok(());
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::serve;
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::time::Duration;

    /// Starts the loop on port 0 in a thread of this test process (it ends
    /// with the process) and returns a way to connect to it.
    fn start() -> impl Fn() -> TcpStream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || serve(listener));
        move || {
            let stream = TcpStream::connect(addr).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            stream
        }
    }

    fn echo(client: &mut TcpStream, message: &[u8]) {
        client.write_all(message).unwrap();
        let mut back = vec![0; message.len()];
        client.read_exact(&mut back).unwrap();
        assert_eq!(back, message);
    }

    #[test]
    fn echoes_for_several_clients() {
        let connect = start();
        let mut clients: Vec<TcpStream> = (0..5).map(|_| connect()).collect();
        for round in 0..3 {
            for (i, client) in clients.iter_mut().enumerate() {
                client
                    .write_all(format!("client {i} round {round}\n").as_bytes())
                    .unwrap();
            }
            for (i, client) in clients.iter_mut().enumerate() {
                let expected = format!("client {i} round {round}\n");
                let mut back = vec![0; expected.len()];
                client.read_exact(&mut back).unwrap();
                assert_eq!(String::from_utf8(back).unwrap(), expected);
            }
        }
        // Far more than one read and than a socket buffer: the queue and
        // write interest carry it.
        let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut writer = clients[0].try_clone().unwrap();
        let sent = big.clone();
        let sender = std::thread::spawn(move || writer.write_all(&sent).unwrap());
        let mut back = vec![0; big.len()];
        clients[0].read_exact(&mut back).unwrap();
        sender.join().unwrap();
        assert!(back == big, "the big message came back changed");
    }

    #[test]
    fn survives_clients_that_leave() {
        let connect = start();
        let mut stays = connect();
        echo(&mut stays, b"before\n");

        let mut polite = connect();
        echo(&mut polite, b"bye\n");
        polite.shutdown(Shutdown::Write).unwrap();
        assert_eq!(
            polite.read(&mut [0; 8]).unwrap(),
            0,
            "the server closes too"
        );

        for _ in 0..5 {
            let rude = socket2::Socket::from(connect());
            rude.set_linger(Some(Duration::ZERO)).unwrap();
            (&rude).write_all(b"unread").unwrap();
            drop(rude);
        }

        echo(&mut stays, b"after\n");
        let mut late = connect();
        echo(&mut late, b"still serving\n");
    }
}
