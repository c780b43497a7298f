//! Sockets, source addresses and the descriptor limit.

use crate::plan::Sources;
use anyhow::{bail, Result};
use rustix::process::{getrlimit, setrlimit, Resource};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Connections per source address: below the ~28,000 ephemeral ports one
/// address has (32768-60999 by default), with room to spare.
pub const PER_SOURCE: u64 = 20_000;

/// Descriptors beyond one per connection: stdio, /proc reads, and so on;
/// each worker thread adds its selector and pacing timer.
const SPARE_FDS: u64 = 30;
const FDS_PER_THREAD: u64 = 2;

/// An I/O error as people read it: "connection refused", without the
/// "(os error 111)" suffix.
pub fn describe(e: &io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text.to_owned(),
    }
}

/// Raise the soft descriptor limit to the hard one, and fail with advice if
/// `connections` over `threads` workers still do not fit.
pub fn ensure_fd_limit(connections: u64, threads: usize) -> Result<()> {
    let needed = connections + SPARE_FDS + FDS_PER_THREAD * threads as u64;
    let limit = getrlimit(Resource::Nofile);
    let hard = limit.maximum;
    if limit.current != hard {
        // Failing to raise is not fatal by itself: the check below decides.
        let _ = setrlimit(
            Resource::Nofile,
            rustix::process::Rlimit {
                current: hard,
                maximum: hard,
            },
        );
    }
    let soft = getrlimit(Resource::Nofile).current;
    match soft {
        Some(soft) if soft < needed => {
            let hard = hard.map_or_else(|| "unlimited".to_owned(), |h| h.to_string());
            bail!(
                "{connections} connections need {needed} file descriptors, but the limit \
                 (RLIMIT_NOFILE) is {soft} (hard limit {hard}); raise it with `ulimit -n {needed}` \
                 (above the hard limit: as root, or in /etc/security/limits.conf), or split the \
                 connections over several echo-bench processes with different --source-base"
            )
        }
        _ => Ok(()),
    }
}

/// The source address connection `index` binds to, if any.
///
/// A list is used round-robin. Otherwise, to a loopback IPv4 target the
/// first [`PER_SOURCE`] connections let the kernel choose (127.0.0.1), the
/// next use 127.0.0.2, then 127.0.0.3, and so on. With a base, every block
/// binds explicitly: `base`, `base + 1`, ...
pub fn source_for(target: SocketAddr, sources: &Sources, index: u64) -> Option<IpAddr> {
    let base = match sources {
        Sources::List(list) if !list.is_empty() => {
            return Some(list[(index % list.len() as u64) as usize]);
        }
        Sources::Base(base) => Some(*base),
        _ => None,
    };
    let block = index / PER_SOURCE;
    let start = match (base, target.ip()) {
        (Some(base), IpAddr::V4(_)) => base,
        (None, IpAddr::V4(ip)) if ip.is_loopback() && block > 0 => Ipv4Addr::new(127, 0, 0, 1),
        _ => return None,
    };
    let ip = u32::from(start).saturating_add(u32::try_from(block).unwrap_or(u32::MAX));
    Some(IpAddr::V4(Ipv4Addr::from(ip)))
}

/// Whether a non-blocking connect is under way rather than failed.
fn in_progress(e: &io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::INPROGRESS.raw_os_error())
        || e.kind() == io::ErrorKind::WouldBlock
}

/// A non-blocking TCP socket, `TCP_NODELAY`, bound to `source` if given,
/// with its connect to `target` started. The flag says whether the connect
/// already completed.
///
/// # Errors
///
/// Creating, binding or connecting, with the step named.
pub fn start_connect(target: SocketAddr, source: Option<IpAddr>) -> Result<(Socket, bool), String> {
    let socket = Socket::new(
        Domain::for_address(target),
        Type::STREAM,
        Some(Protocol::TCP),
    )
    .map_err(|e| format!("socket: {}", describe(&e)))?;
    let setup = || -> io::Result<()> {
        socket.set_nonblocking(true)?;
        socket.set_tcp_nodelay(true)?;
        Ok(())
    };
    setup().map_err(|e| format!("socket options: {}", describe(&e)))?;
    if let Some(ip) = source {
        socket
            .bind(&SockAddr::from(SocketAddr::new(ip, 0)))
            .map_err(|e| format!("bind {ip}: {}", describe(&e)))?;
    }
    match socket.connect(&SockAddr::from(target)) {
        Ok(()) => Ok((socket, true)),
        Err(e) if in_progress(&e) => Ok((socket, false)),
        Err(e) => Err(format!("connect {target}: {}", describe(&e))),
    }
}

/// A non-blocking Unix-domain stream socket with its connect to `path`
/// started; the flag says whether the connect already completed.
///
/// # Errors
///
/// Creating or connecting, with the step named.
pub fn start_connect_unix(path: &std::path::Path) -> Result<(Socket, bool), String> {
    let target = || format!("unix:{}", path.display());
    let addr = SockAddr::unix(path).map_err(|e| format!("{}: {}", target(), describe(&e)))?;
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)
        .map_err(|e| format!("socket: {}", describe(&e)))?;
    socket
        .set_nonblocking(true)
        .map_err(|e| format!("socket options: {}", describe(&e)))?;
    match socket.connect(&addr) {
        Ok(()) => Ok((socket, true)),
        Err(e) if in_progress(&e) => Ok((socket, false)),
        Err(e) => Err(format!("connect {}: {}", target(), describe(&e))),
    }
}

/// How a started connect ended, once the socket is writable.
pub fn finish_connect(socket: &Socket, target: impl std::fmt::Display) -> Result<(), String> {
    match socket.take_error() {
        Ok(None) => {}
        Ok(Some(e)) | Err(e) => return Err(format!("connect {target}: {}", describe(&e))),
    }
    // Writable without a pending error can still mean "not connected" on
    // some kernels; asking for the peer settles it.
    socket
        .peer_addr()
        .map(drop)
        .map_err(|e| format!("connect {target}: {}", describe(&e)))
}

/// A non-blocking UDP socket connected to `target` (so the kernel filters
/// other senders), bound to `source` if given.
pub fn udp_socket(target: SocketAddr, source: Option<IpAddr>) -> Result<Socket, String> {
    let socket = Socket::new(
        Domain::for_address(target),
        Type::DGRAM,
        Some(Protocol::UDP),
    )
    .map_err(|e| format!("socket: {}", describe(&e)))?;
    socket
        .set_nonblocking(true)
        .map_err(|e| format!("socket options: {}", describe(&e)))?;
    let local = source.unwrap_or(match target {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        SocketAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
    });
    socket
        .bind(&SockAddr::from(SocketAddr::new(local, 0)))
        .map_err(|e| format!("bind {local}: {}", describe(&e)))?;
    socket
        .connect(&SockAddr::from(target))
        .map_err(|e| format!("connect {target}: {}", describe(&e)))?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_like_sentences() {
        let e = io::Error::from_raw_os_error(rustix::io::Errno::CONNREFUSED.raw_os_error());
        assert_eq!(describe(&e), "connection refused");
    }

    #[test]
    fn loopback_sources_change_every_block() {
        let t: SocketAddr = "127.0.0.1:7".parse().unwrap();
        let auto = &Sources::Auto;
        assert_eq!(source_for(t, auto, 0), None);
        assert_eq!(source_for(t, auto, PER_SOURCE - 1), None);
        let second = source_for(t, auto, PER_SOURCE).unwrap();
        assert_eq!(second, "127.0.0.2".parse::<IpAddr>().unwrap());
        let far = source_for(t, auto, 300 * PER_SOURCE).unwrap();
        assert_eq!(far, "127.0.1.45".parse::<IpAddr>().unwrap());
        let base = &Sources::Base(Ipv4Addr::new(127, 0, 1, 1));
        assert_eq!(source_for(t, base, 5), Some("127.0.1.1".parse().unwrap()));
        assert_eq!(
            source_for(t, base, PER_SOURCE),
            Some("127.0.1.2".parse().unwrap())
        );
        let v6: SocketAddr = "[::1]:7".parse().unwrap();
        assert_eq!(source_for(v6, auto, 3 * PER_SOURCE), None);
        let remote: SocketAddr = "10.0.0.1:7".parse().unwrap();
        assert_eq!(source_for(remote, auto, 3 * PER_SOURCE), None);
    }

    #[test]
    fn a_source_list_goes_round_robin() {
        let t: SocketAddr = "127.0.0.1:7".parse().unwrap();
        let list = Sources::List(vec![
            "127.0.0.2".parse().unwrap(),
            "127.0.0.3".parse().unwrap(),
        ]);
        let picked: Vec<_> = (0..4)
            .map(|i| source_for(t, &list, i).unwrap().to_string())
            .collect();
        assert_eq!(picked, ["127.0.0.2", "127.0.0.3", "127.0.0.2", "127.0.0.3"]);
    }
}
