//! Opening the sockets the server listens on: TCP and UDP through socket2
//! (SO_REUSEADDR, SO_REUSEPORT for several workers, IPV6_V6ONLY), and
//! Unix-domain listeners with stale-socket cleanup.

use anyhow::{bail, Context, Result};
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use crate::stream::{Peer, Stream};

/// Where new connections come from.
#[derive(Debug)]
pub enum Listener {
    Tcp(TcpListener),
    /// `--listen-proxy`: TCP behind a proxy that sends a PROXY header first.
    Proxy(TcpListener),
    Unix(UnixListener, PathBuf, Origin),
}

/// Who made a socket: its path is removed at shutdown only if we bound it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Bound,
    /// Handed over by the service manager, which owns the path.
    Inherited,
}

impl Listener {
    /// Accept one connection, non-blocking and close-on-exec in one call,
    /// with TCP_NODELAY set: echo traffic must not wait on delayed ACKs.
    pub fn accept(&self, unix_serial: u64) -> io::Result<(Stream, Peer)> {
        use rustix::net::sockopt;
        match self {
            Listener::Tcp(l) | Listener::Proxy(l) => {
                let (fd, addr) = accept_nonblocking(l)?;
                sockopt::set_tcp_nodelay(&fd, true)?;
                let peer = addr
                    .and_then(|a| SocketAddr::try_from(a).ok())
                    .ok_or_else(|| {
                        io::Error::other("accepted a TCP connection without an address")
                    })?;
                Ok((Stream::Tcp(fd.into()), Peer::Ip(peer)))
            }
            Listener::Unix(l, ..) => {
                let (fd, _) = accept_nonblocking(l)?;
                // Not inherited from the listener, unlike TCP (`sockets.rs`).
                #[cfg(target_os = "linux")]
                socket2::SockRef::from(&fd).set_out_of_band_inline(true)?;
                Ok((Stream::Unix(fd.into()), Peer::Unix(unix_serial)))
            }
        }
    }

    /// Another descriptor for the same socket (dup), for another worker.
    pub fn try_clone(&self) -> io::Result<Listener> {
        Ok(match self {
            Listener::Tcp(l) => Listener::Tcp(l.try_clone()?),
            Listener::Proxy(l) => Listener::Proxy(l.try_clone()?),
            Listener::Unix(l, path, origin) => {
                Listener::Unix(l.try_clone()?, path.clone(), *origin)
            }
        })
    }

    /// The bound address of a TCP listener (plain or behind a proxy).
    pub fn tcp_local_addr(&self) -> Option<SocketAddr> {
        match self {
            Listener::Tcp(l) | Listener::Proxy(l) => l.local_addr().ok(),
            Listener::Unix(..) => None,
        }
    }

    /// Whether connections start with a PROXY header.
    pub fn is_proxy(&self) -> bool {
        matches!(self, Listener::Proxy(_))
    }

    /// `--tcp-keepalive`: set on the listener, so every accepted socket
    /// inherits it (Linux, the BSDs and macOS copy these options to the
    /// accepted socket) and accepting costs no extra syscalls. Probes start
    /// after `idle` without traffic and go out every `idle / 6` (at least
    /// 1 s); after 6 unanswered ones the kernel resets the connection, so a
    /// dead peer is found about `2 * idle` after it last spoke. Unix-domain
    /// listeners have no peers to lose.
    pub fn set_keepalive(&self, idle: Option<std::time::Duration>) -> io::Result<()> {
        let (Listener::Tcp(l) | Listener::Proxy(l), Some(idle)) = (self, idle) else {
            return Ok(());
        };
        let interval = (idle / 6).max(std::time::Duration::from_secs(1));
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(idle)
            .with_interval(interval);
        #[cfg(any(target_os = "linux", target_os = "freebsd", target_vendor = "apple"))]
        let keepalive = keepalive.with_retries(6);
        socket2::SockRef::from(l).set_tcp_keepalive(&keepalive)
    }

    /// The line announced on stdout.
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => match l.local_addr() {
                Ok(addr) => format!("tcp {addr}"),
                Err(_) => "tcp ?".to_string(),
            },
            Listener::Proxy(l) => match l.local_addr() {
                Ok(addr) => format!("tcp+proxy {addr}"),
                Err(_) => "tcp+proxy ?".to_string(),
            },
            Listener::Unix(_, path, _) => format!("unix {}", path.display()),
        }
    }
}

type Accepted = (std::os::fd::OwnedFd, Option<rustix::net::SocketAddrAny>);

/// accept4(2) with `SOCK_NONBLOCK | SOCK_CLOEXEC`: one syscall per client.
#[cfg(not(target_vendor = "apple"))]
fn accept_nonblocking(listener: impl std::os::fd::AsFd) -> io::Result<Accepted> {
    use rustix::net::{acceptfrom_with, SocketFlags};
    Ok(acceptfrom_with(
        listener,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
    )?)
}

/// Apple has no accept4(2): accept, then set the flags.
#[cfg(target_vendor = "apple")]
fn accept_nonblocking(listener: impl std::os::fd::AsFd) -> io::Result<Accepted> {
    use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};
    use rustix::io::{fcntl_setfd, FdFlags};
    let (fd, addr) = rustix::net::acceptfrom(listener)?;
    fcntl_setfd(&fd, FdFlags::CLOEXEC)?;
    fcntl_setfl(&fd, fcntl_getfl(&fd)? | OFlags::NONBLOCK)?;
    Ok((fd, addr))
}

impl std::os::fd::AsRawFd for Listener {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsFd;
        self.as_fd().as_raw_fd()
    }
}

impl std::os::fd::AsFd for Listener {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self {
            Listener::Tcp(l) | Listener::Proxy(l) => l.as_fd(),
            Listener::Unix(l, ..) => l.as_fd(),
        }
    }
}

/// The kernel's cap on listen backlogs (somaxconn), 4096 if unreadable.
pub fn somaxconn() -> i32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4096)
}

fn socket(addr: SocketAddr, ty: Type, protocol: Protocol, reuse_port: bool) -> io::Result<Socket> {
    // socket2 opens sockets close-on-exec on every platform.
    let socket = Socket::new(Domain::for_address(addr), ty, Some(protocol))?;
    socket.set_nonblocking(true)?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.bind(&addr.into())?;
    Ok(socket)
}

pub fn tcp(addr: SocketAddr, reuse_port: bool, backlog: i32) -> Result<TcpListener> {
    let s = socket(addr, Type::STREAM, Protocol::TCP, reuse_port)
        .and_then(|s| s.listen(backlog).map(|()| s))
        .with_context(|| format!("cannot listen on tcp {addr}"))?;
    Ok(s.into())
}

pub fn udp(addr: SocketAddr, reuse_port: bool) -> Result<UdpSocket> {
    let s = socket(addr, Type::DGRAM, Protocol::UDP, reuse_port)
        .with_context(|| format!("cannot listen on udp {addr}"))?;
    Ok(s.into())
}

/// Bind a Unix-domain listener. A socket file left by a dead server (nobody
/// accepts on it) is replaced; a live one, or any other file, is an error.
pub fn unix(path: &Path, backlog: i32) -> Result<UnixListener> {
    let what = || format!("cannot listen on unix {}", path.display());
    let addr = socket2::SockAddr::unix(path).with_context(what)?;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            bail!("{}: the path exists and is not a socket", what());
        }
        // A non-blocking probe: a blocking connect to a live server whose
        // backlog is full waits until that server accepts, maybe forever.
        let probe = Socket::new(Domain::UNIX, Type::STREAM, None)
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
            .with_context(what)?;
        match probe.connect(&addr) {
            Ok(()) => bail!("{}: address in use (another server accepts on it)", what()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => bail!(
                "{}: address in use (another server listens on it; its backlog is full)",
                what()
            ),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                std::fs::remove_file(path).with_context(what)?;
            }
            Err(e) => return Err(e).with_context(what),
        }
    }
    let s = Socket::new(Domain::UNIX, Type::STREAM, None)
        .and_then(|s| s.set_nonblocking(true).map(|()| s))
        .and_then(|s| s.bind(&addr).map(|()| s))
        .and_then(|s| s.listen(backlog).map(|()| s))
        .with_context(what)?;
    Ok(s.into())
}
