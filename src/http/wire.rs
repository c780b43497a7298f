//! A connection's reads and writes for the endpoints' loop: the request
//! read to its end, the answer written, what follows a refusal drained.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};

use rustix::io::Errno;
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
use rustix::net::SocketFlags;
use tracing::debug;

use super::message::{self, parse, Parsed};
use super::MAX_DRAIN;

/// What an event on a connection leaves it needing.
pub enum Next {
    Read,
    Write,
    Close,
}

/// Read what has arrived into `buf` (never past what the request can
/// hold) and parse it; an error when the client left.
pub fn read_request(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    max_body: usize,
) -> io::Result<Parsed> {
    let mut chunk = [0u8; 4096];
    // What the bytes so far say the request needs (its head's limit, or
    // its head and body).
    let mut want = match parse(buf, max_body) {
        Parsed::Incomplete(n) => n,
        _ => message::MAX_HEAD,
    };
    loop {
        let room = want.saturating_sub(buf.len()).clamp(1, chunk.len());
        let n = match stream.read(&mut chunk[..room]) {
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Parsed::Incomplete(want)),
            Err(e) => return Err(e),
        };
        buf.extend_from_slice(&chunk[..n]);
        match parse(buf, max_body) {
            Parsed::Incomplete(more) => want = more,
            done => return Ok(done),
        }
    }
}

/// Read and throw away what the client still sends: close at its FIN, an
/// error, or past [`MAX_DRAIN`].
pub fn drain(stream: &mut TcpStream, read: &mut usize) -> Next {
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(n) if n > 0 && *read + n <= MAX_DRAIN => *read += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Next::Read,
            _ => return Next::Close,
        }
    }
}

/// Write until done (then shut the write side) or until the socket is full.
pub fn write_out(stream: &mut TcpStream, out: &[u8], sent: &mut usize, name: &str) -> Next {
    while *sent < out.len() {
        match stream.write(&out[*sent..]) {
            Ok(n) => *sent += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Next::Write,
            Err(e) => {
                debug!(error = %e, "{name}: response not sent");
                return Next::Close;
            }
        }
    }
    let _ = stream.shutdown(Shutdown::Write);
    Next::Close
}

/// One connection from the listener, already non-blocking and close-on-exec:
/// one `accept4` where the system has it.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
pub fn accept_nonblocking(listener: &TcpListener) -> Result<TcpStream, Errno> {
    let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
    rustix::net::accept_with(listener, flags).map(TcpStream::from)
}

/// One connection from the listener, made non-blocking (std's accept sets
/// close-on-exec).
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
pub fn accept_nonblocking(listener: &TcpListener) -> Result<TcpStream, Errno> {
    let errno = |e: io::Error| Errno::from_io_error(&e).unwrap_or(Errno::IO);
    let (stream, _) = listener.accept().map_err(errno)?;
    stream.set_nonblocking(true).map_err(errno)?;
    Ok(stream)
}
