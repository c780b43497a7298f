//! The tutorial's `select.select()` echo server, ported line for line with
//! this crate's [`selector::select`]. Read it beside the Python original:
//! `inputs`, `outputs` and `message_queues` are the same lists, and the three
//! loops handle readable, writable and exceptional sockets the same way.
//!
//! ```text
//! cargo run -p fdselector --example select_echo            # localhost:10000
//! cargo run -p fdselector --example select_echo 127.0.0.1:0
//! nc localhost 10000                                     # in another terminal
//! ```
//!
//! Where it departs from the Python, it says so in a comment: Rust needs
//! its own handles to the ready sockets before the lists can change, and the
//! tutorial's known bugs are not copied (a socket closed in the readable loop
//! is skipped by the later loops instead of being removed twice; a reset
//! connection is closed instead of crashing the server; a partial send keeps
//! the rest of the message).

use selector::select;
use std::collections::{HashMap, VecDeque};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::rc::Rc;

/// Python has one socket type; Rust has a listener and streams, so the
/// lists hold either. A connection keeps its peer's address, which Python
/// asks `getpeername()` for (and which fails once the peer has reset).
enum Socket {
    Server(TcpListener),
    Connection { stream: TcpStream, peer: SocketAddr },
}

impl AsFd for Socket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Socket::Server(listener) => listener.as_fd(),
            Socket::Connection { stream, .. } => stream.as_fd(),
        }
    }
}

impl Socket {
    /// What the log calls this socket: the peer, or our own address.
    fn name(&self) -> String {
        match self {
            Socket::Server(listener) => match listener.local_addr() {
                Ok(addr) => format!("server {addr}"),
                Err(_) => "server".to_string(),
            },
            Socket::Connection { peer, .. } => peer.to_string(),
        }
    }
}

fn main() -> io::Result<()> {
    let server_address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "localhost:10000".to_string());
    // Create a TCP/IP socket, bind it to the port and listen (std's backlog
    // is 128 where the tutorial asks for 5), non-blocking.
    let server = TcpListener::bind(&server_address)
        .map_err(|e| io::Error::new(e.kind(), format!("bind {server_address}: {e}")))?;
    server.set_nonblocking(true)?;
    let local = server.local_addr()?;
    eprintln!("starting up on {} port {}", local.ip(), local.port());
    eprintln!("connect with: nc {} {}", local.ip(), local.port());
    serve(server)
}

/// The tutorial's event loop, from `inputs = [server]` on.
fn serve(server: TcpListener) -> io::Result<()> {
    let server = Rc::new(Socket::Server(server));
    // Sockets from which we expect to read
    let mut inputs: Vec<Rc<Socket>> = vec![Rc::clone(&server)];
    // Sockets to which we expect to write
    let mut outputs: Vec<Rc<Socket>> = Vec::new();
    // Outgoing message queues, by socket (its descriptor number)
    let mut message_queues: HashMap<RawFd, VecDeque<Vec<u8>>> = HashMap::new();

    while !inputs.is_empty() {
        // Wait for at least one of the sockets to be ready for processing
        eprintln!("\nwaiting for the next event");
        let ready = select(&inputs, &outputs, &inputs, None)?;
        // Not in Python: the results borrow `inputs` and `outputs`, which the
        // loops below change, so take our own handles to the ready sockets.
        let readable: Vec<Rc<Socket>> = ready.readable.into_iter().cloned().collect();
        let writable: Vec<Rc<Socket>> = ready.writable.into_iter().cloned().collect();
        let exceptional: Vec<Rc<Socket>> = ready.exceptional.into_iter().cloned().collect();

        // Handle inputs
        for s in &readable {
            match &**s {
                // A "readable" server socket is ready to accept a connection
                Socket::Server(listener) => {
                    let (connection, client_address) = match listener.accept() {
                        Ok(accepted) => accepted,
                        // The client gave up between select and accept.
                        Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                        Err(e) => {
                            eprintln!("accept failed: {e}");
                            continue;
                        }
                    };
                    eprintln!("new connection from {client_address}");
                    connection.set_nonblocking(true)?;
                    let fd = connection.as_raw_fd();
                    inputs.push(Rc::new(Socket::Connection {
                        stream: connection,
                        peer: client_address,
                    }));
                    // Give the connection a queue for data we want to send
                    message_queues.insert(fd, VecDeque::new());
                }
                Socket::Connection { stream, peer } => {
                    let mut data = [0u8; 1024];
                    match (&*stream).read(&mut data) {
                        Ok(0) => {
                            // Interpret empty result as closed connection
                            eprintln!("closing {peer} after reading no data");
                            close(s, &mut inputs, &mut outputs, &mut message_queues);
                        }
                        Ok(n) => {
                            // A readable client socket has data
                            let data = &data[..n];
                            eprintln!("received {:?} from {peer}", String::from_utf8_lossy(data));
                            if let Some(queue) = message_queues.get_mut(&s.as_fd().as_raw_fd()) {
                                queue.push_back(data.to_vec());
                            }
                            // Add output channel for response
                            if position(&outputs, s).is_none() {
                                outputs.push(Rc::clone(s));
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                        // Python raises here (ConnectionResetError) and the
                        // server dies; close this one connection instead.
                        Err(e) => {
                            eprintln!("closing {peer} after an error: {e}");
                            close(s, &mut inputs, &mut outputs, &mut message_queues);
                        }
                    }
                }
            }
        }

        // Handle outputs
        for s in &writable {
            // Closed by the loop above: nothing left to send it.
            let Some(queue) = message_queues.get_mut(&s.as_fd().as_raw_fd()) else {
                continue;
            };
            let Socket::Connection { stream, peer } = &**s else {
                continue;
            };
            match queue.pop_front() {
                None => {
                    // No messages waiting so stop checking for writability.
                    eprintln!("output queue for {peer} is empty");
                    if let Some(i) = position(&outputs, s) {
                        outputs.remove(i);
                    }
                }
                Some(next_msg) => {
                    let text = String::from_utf8_lossy(&next_msg);
                    eprintln!("sending {text:?} to {peer}");
                    match (&*stream).write(&next_msg) {
                        // Python drops what send() did not take; keep it.
                        Ok(sent) if sent < next_msg.len() => {
                            queue.push_front(next_msg[sent..].to_vec());
                        }
                        Ok(_) => {}
                        Err(e) if e.kind() == ErrorKind::WouldBlock => queue.push_front(next_msg),
                        Err(e) => {
                            eprintln!("closing {peer} after an error: {e}");
                            close(s, &mut inputs, &mut outputs, &mut message_queues);
                        }
                    }
                }
            }
        }

        // Handle "exceptional conditions"
        for s in &exceptional {
            // The tutorial's bug: a socket that was readable at end of file
            // *and* exceptional was closed above; removing it again fails.
            if position(&inputs, s).is_none() {
                continue;
            }
            eprintln!("handling exceptional condition for {}", s.name());
            // Stop listening for input on the connection
            close(s, &mut inputs, &mut outputs, &mut message_queues);
        }
        // Here the last handles to the sockets closed this round go away,
        // and with them the descriptors (Python's `s.close()`).
    }
    Ok(())
}

/// Where `s` is in `list` (Python's `s in list`, by identity).
fn position(list: &[Rc<Socket>], s: &Rc<Socket>) -> Option<usize> {
    list.iter().position(|other| Rc::ptr_eq(other, s))
}

/// The tutorial's closing steps: out of `outputs` and `inputs`, and its
/// message queue deleted. The socket itself closes when the round's last
/// handle to it is dropped, so its number is not reused meanwhile.
fn close(
    s: &Rc<Socket>,
    inputs: &mut Vec<Rc<Socket>>,
    outputs: &mut Vec<Rc<Socket>>,
    message_queues: &mut HashMap<RawFd, VecDeque<Vec<u8>>>,
) {
    if let Some(i) = position(outputs, s) {
        outputs.remove(i);
    }
    if let Some(i) = position(inputs, s) {
        inputs.remove(i);
    }
    message_queues.remove(&s.as_fd().as_raw_fd());
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
            // Everyone sends before anyone reads: the loop serves them all.
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
        // Longer than one 1024-byte read.
        let big: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        echo(&mut clients[0], &big);
    }

    #[test]
    fn survives_clients_that_leave() {
        let connect = start();
        let mut stays = connect();
        echo(&mut stays, b"before\n");

        // One says goodbye properly: end of file, "closing ... after
        // reading no data".
        let mut polite = connect();
        echo(&mut polite, b"bye\n");
        polite.shutdown(Shutdown::Write).unwrap();
        assert_eq!(
            polite.read(&mut [0; 8]).unwrap(),
            0,
            "the server closes too"
        );

        // One resets: readable and exceptional in the same round, the case
        // the tutorial removes twice.
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
