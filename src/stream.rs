//! A client's byte stream, TCP or Unix-domain, and who is on the other end.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;

/// A connected byte stream, TCP or Unix-domain.
#[derive(Debug)]
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }

    pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    /// Write what the kernel takes now: `Ok(0)` when it would block.
    pub fn send(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.write(buf) {
            Err(e) if would_block(&e) => Ok(0),
            sent => sent,
        }
    }

    pub fn shutdown_write(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(Shutdown::Write),
            Stream::Unix(s) => s.shutdown(Shutdown::Write),
        }
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
        }
    }
}

/// Who is on the other end, for logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    Ip(SocketAddr),
    /// Unix-domain clients are usually unnamed; the serial tells them apart.
    Unix(u64),
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Ip(addr) => addr.fmt(f),
            Peer::Unix(serial) => write!(f, "unix#{serial}"),
        }
    }
}

/// `WouldBlock` (or `EINTR`) is the normal end of a read or write burst.
pub fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// The start of the data as the tutorial's prints show it: quoted, with
/// control and non-ASCII bytes escaped, cut at 32 bytes.
pub fn preview(data: &[u8]) -> String {
    const SHOWN: usize = 32;
    let shown = &data[..data.len().min(SHOWN)];
    let more = if data.len() > SHOWN { "..." } else { "" };
    format!("\"{}\"{more}", shown.escape_ascii())
}

#[cfg(test)]
mod tests {
    use super::preview;

    #[test]
    fn preview_escapes_and_cuts() {
        assert_eq!(preview(b"hi\n"), r#""hi\n""#);
        assert_eq!(preview(&[0xff, b'"']), r#""\xff\"""#);
        let long = [b'a'; 40];
        assert_eq!(preview(&long), format!("\"{}\"...", "a".repeat(32)));
    }
}
