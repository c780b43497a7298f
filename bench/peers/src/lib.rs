//! Peer echo servers for the benchmarks: small, honest versions of what people would write with
//! tokio and mio instead of using echo-server.
//!
//! Every binary takes the listen address as its first argument (default `127.0.0.1:0`), sets
//! `TCP_NODELAY` on accepted sockets (echo-server does too), and prints `listening tcp ADDR` on
//! stdout once bound, the same line echo-server prints, so the harness treats all servers alike.
#![forbid(unsafe_code)]

use std::io::{self, Write};
use std::net::SocketAddr;

/// Bytes each tokio connection reads at once: one 16 KiB message fits in one read.
pub const TOKIO_BUF: usize = 16 * 1024;

/// The listen address from the first command-line argument, or `127.0.0.1:0`.
///
/// # Errors
/// `InvalidInput` when the argument is not a socket address.
pub fn listen_addr() -> io::Result<SocketAddr> {
    let arg = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".to_owned());
    arg.parse().map_err(|e| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("bad listen address {arg:?}: {e}"))
    })
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
                if let Err(e) = echo(stream).await {
                    eprintln!("connection: {e}");
                }
            });
        }
    }

    async fn echo(mut stream: TcpStream) -> std::io::Result<()> {
        stream.set_nodelay(true)?;
        let mut buf = vec![0u8; super::TOKIO_BUF];
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            stream.write_all(&buf[..n]).await?;
        }
    }
}
