//! Peer echo servers for the benchmarks: small, honest versions of what people would write with
//! tokio and mio instead of using echo-server.
//!
//! Every binary takes the listen address as its first argument (default `127.0.0.1:0`; the
//! tokio ones take their per-connection read-buffer size as the second), sets
//! `TCP_NODELAY` on accepted sockets (echo-server does too), and prints `listening tcp ADDR` on
//! stdout once bound, the same line echo-server prints, so the harness treats all servers alike.
#![forbid(unsafe_code)]

use std::io::{self, Write};
use std::net::SocketAddr;

/// Default bytes each tokio connection reads at once: one 16 KiB message fits in one read.
/// tokio's README example uses 1 KiB; the second argument sets it.
pub const TOKIO_BUF: usize = 16 * 1024;

/// The listen address from the first command-line argument, or `127.0.0.1:0`.
///
/// # Errors
/// `InvalidInput` when the argument is not a socket address.
pub fn listen_addr() -> io::Result<SocketAddr> {
    let arg = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_owned());
    arg.parse().map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad listen address {arg:?}: {e}"),
        )
    })
}

/// The tokio read-buffer size from the second command-line argument, or [`TOKIO_BUF`].
///
/// # Errors
/// `InvalidInput` when the argument is not a positive number.
pub fn buffer_size() -> io::Result<usize> {
    match std::env::args().nth(2) {
        None => Ok(TOKIO_BUF),
        Some(arg) => match arg.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad buffer size {arg:?}: want a positive number of bytes"),
            )),
        },
    }
}

/// Prints `listening tcp ADDR` on stdout and flushes it.
///
/// # Errors
/// Writing to stdout failed.
pub fn announce(addr: SocketAddr) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "listening tcp {addr}")?;
    out.flush()
}

/// The tokio echo server shared by the current-thread and multi-thread binaries: one task per
/// connection reads into its own buffer and `write_all`s what it got.
pub mod tokio_echo {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// Binds, announces, and serves forever.
    ///
    /// # Errors
    /// Bad address, bind failure, or stdout failure. Accept errors (EMFILE) are logged and the
    /// loop goes on.
    pub async fn run() -> std::io::Result<()> {
        let buf_size = super::buffer_size()?;
        let listener = TcpListener::bind(super::listen_addr()?).await?;
        super::announce(listener.local_addr()?)?;
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    eprintln!("accept: {e}");
                    // EMFILE and friends: back off instead of spinning.
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            tokio::spawn(async move {
                match echo(stream, buf_size).await {
                    Ok(()) => {}
                    // A client leaving with echoes unread resets; that is not news.
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
                    Err(e) => eprintln!("connection: {e}"),
                }
            });
        }
    }

    async fn echo(mut stream: TcpStream, buf_size: usize) -> std::io::Result<()> {
        stream.set_nodelay(true)?;
        let mut buf = vec![0u8; buf_size];
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            stream.write_all(&buf[..n]).await?;
        }
    }
}
