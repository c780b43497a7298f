//! Where the served sockets come from, one function per source: sockets
//! inherited from the service manager (systemd socket activation), the
//! command line's addresses (bound here, once per worker), and announcing
//! them on stdout.
//!
//! Workers and inherited sockets: systemd usually passes one socket per
//! address, so workers cannot each have their own the way `--workers` does
//! with SO_REUSEPORT. Every worker then registers a dup of that listener,
//! and the kernel hands each new connection to whichever worker's accept
//! gets there first. The selectors are level-triggered, so one arriving
//! connection wakes every worker and all but one find nothing (EAGAIN): one
//! wasted wakeup per worker per connection, never per message.
//! EPOLLEXCLUSIVE would wake one, but only on epoll, and the poll and select
//! backends have nothing like it. The alternative without it: when systemd
//! passes at least as many listeners on one address as there are workers
//! (several socket units with `ReusePort=yes`), they are dealt out, one
//! worker each, and the kernel spreads connections over their own accept
//! queues with no shared wakeups. Inherited UDP sockets are always dealt
//! out, one worker each: a shared one would wake every worker for every
//! datagram.

use anyhow::{bail, Context, Result};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::fd::AsFd;
use std::path::PathBuf;

use crate::config::Cli;
use crate::listen::{self, Listener, Origin};
use tracing::{info, warn};

/// The sockets of one worker.
#[derive(Debug, Default)]
pub struct Sockets {
    pub listeners: Vec<Listener>,
    pub udp: Vec<UdpSocket>,
}

impl Sockets {
    pub fn len(&self) -> usize {
        self.listeners.len() + self.udp.len()
    }
}

/// Every worker's sockets, worker 0's first: the inherited ones, then those
/// the flags name. The default listener only when neither gives any.
pub fn open(cli: &Cli, workers: usize) -> Result<Vec<Sockets>> {
    let inherited = inherited(workers)?;
    let mut all = from_flags(cli, workers, inherited.is_none())?;
    if let Some(inherited) = inherited {
        for (mine, theirs) in all.iter_mut().zip(inherited) {
            let flagged = std::mem::replace(mine, theirs);
            mine.listeners.extend(flagged.listeners);
            mine.udp.extend(flagged.udp);
        }
    }
    for listener in all.iter().flat_map(|s| &s.listeners) {
        urgent_inline(listener)?;
    }
    Ok(all)
}

/// Urgent data (`MSG_OOB`) is echoed inline, as an ordinary byte in its
/// place in the stream: SO_OOBINLINE on the TCP listeners, which accepted
/// sockets inherit (so accepting costs no extra syscall). Out of line, the
/// byte would wait beside the stream for a `MSG_OOB` read that an echo
/// server never makes, and the zero-copy path cannot pass its mark at all
/// (`crate::splice` copies past it).
fn urgent_inline(listener: &Listener) -> Result<()> {
    if let Listener::Tcp(l) | Listener::Proxy(l) = listener {
        socket2::SockRef::from(l)
            .set_out_of_band_inline(true)
            .context("SO_OOBINLINE on a TCP listener")?;
    }

    Ok(())
}

/// The sockets systemd passed (`LISTEN_FDS` for our `LISTEN_PID`, named by
/// `LISTEN_FDNAMES`), or `None` when it passed none. Each is told apart by
/// its type, family and listening state; anything else is an error.
fn inherited(workers: usize) -> Result<Option<Vec<Sockets>>> {
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .map(|v| v.split(':').map(str::to_string).collect())
        .unwrap_or_default();
    // systemd's rule: the descriptors are ours only if LISTEN_PID names us
    // (listenfd alone would also take them with no LISTEN_PID at all).
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|pid| pid.parse::<u32>().ok())
        .is_some_and(|pid| pid == std::process::id());
    // Takes the descriptors and unsets LISTEN_FDS and LISTEN_PID, so that
    // nothing we start inherits them. Still single-threaded here.
    let mut fds = match ours {
        true => listenfd::ListenFd::from_env(),
        false => listenfd::ListenFd::empty(),
    };
    for var in ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"] {
        std::env::remove_var(var);
    }
    if fds.len() == 0 {
        return Ok(None);
    }
    let mut all: Vec<Sockets> = (0..workers).map(|_| Sockets::default()).collect();
    let mut listeners = Vec::new();
    let mut next_udp = 0;
    for i in 0..fds.len() {
        let fd = 3 + i; // SD_LISTEN_FDS_START
        let name = names.get(i).map_or("", String::as_str);
        let what = || format!("inherited socket {fd} (name {name:?})");
        match take(&mut fds, i).with_context(what)? {
            // FileDescriptorName=proxy: a TCP listener behind a proxy.
            Taken::Listener(Listener::Tcp(l)) if name == "proxy" => {
                listeners.push(Listener::Proxy(l));
            }
            Taken::Listener(l) => listeners.push(l),
            Taken::Udp(s) => {
                all[next_udp % workers].udp.push(s);
                next_udp += 1;
            }
        }
        info!(fd, name, "serving an inherited socket");
    }
    let described: Vec<String> = listeners.iter().map(Listener::describe).collect();
    for (listener, owners) in listeners.into_iter().zip(deal(&described, workers)) {
        for &worker in &owners[1..] {
            let dup = listener
                .try_clone()
                .context("cannot dup an inherited listener")?;
            all[worker].listeners.push(dup);
        }
        all[owners[0]].listeners.push(listener);
    }
    Ok(Some(all))
}

/// Which workers watch each listener (by its description, the address):
/// every worker shares a listener whose address has fewer listeners than
/// there are workers; when there are enough, each goes to one worker.
fn deal(described: &[String], workers: usize) -> Vec<Vec<usize>> {
    let mut seen: Vec<(&str, usize)> = Vec::new();
    described
        .iter()
        .map(|d| {
            let same = described.iter().filter(|e| *e == d).count();
            let nth = match seen.iter_mut().find(|(s, _)| s == d) {
                Some((_, n)) => {
                    *n += 1;
                    *n
                }
                None => {
                    seen.push((d, 0));
                    0
                }
            };
            match same >= workers {
                true => vec![nth % workers],
                false => (0..workers).collect(),
            }
        })
        .collect()
}

enum Taken {
    Listener(Listener),
    Udp(UdpSocket),
}

/// One inherited descriptor as a TCP or Unix stream listener or a UDP
/// socket, non-blocking (systemd passes blocking ones unless told not to).
fn take(fds: &mut listenfd::ListenFd, i: usize) -> Result<Taken> {
    if let Ok(Some(l)) = fds.take_tcp_listener(i) {
        must_listen(&l, "a TCP")?;
        l.set_nonblocking(true)?;
        return Ok(Taken::Listener(Listener::Tcp(l)));
    }
    if let Ok(Some(l)) = fds.take_unix_listener(i) {
        must_listen(&l, "a Unix stream")?;
        l.set_nonblocking(true)?;
        let addr = l.local_addr()?;
        let path = addr
            .as_pathname()
            .map_or_else(|| PathBuf::from("(unnamed)"), PathBuf::from);
        return Ok(Taken::Listener(Listener::Unix(l, path, Origin::Inherited)));
    }
    match fds.take_udp_socket(i) {
        Ok(Some(s)) => {
            s.set_nonblocking(true)?;
            Ok(Taken::Udp(s))
        }
        Ok(None) => bail!("taken twice"),
        Err(_) => bail!("not a TCP or Unix stream listener, nor a UDP socket"),
    }
}

/// A stream socket handed over already connected (`Accept=yes`) is one
/// client, not a listener: refuse it rather than fail on accept later.
fn must_listen(socket: impl AsFd, kind: &str) -> Result<()> {
    #[cfg(not(target_vendor = "apple"))]
    if !rustix::net::sockopt::socket_acceptconn(socket)? {
        bail!("{kind} socket that is not listening (use Accept=no in the socket unit)");
    }
    #[cfg(target_vendor = "apple")]
    let _ = (socket, kind);
    Ok(())
}

/// Bind what `--listen`, `--udp` and `--unix` name (127.0.0.1:10000 when
/// `default` and nothing is named). Worker 0 binds first; with port 0 the
/// others then bind the port the OS picked (SO_REUSEPORT), so every worker
/// listens on the same addresses. Unix listeners belong to worker 0.
fn from_flags(cli: &Cli, workers: usize, default: bool) -> Result<Vec<Sockets>> {
    let backlog = cli.backlog.unwrap_or_else(listen::somaxconn);
    let mut tcp: Vec<SocketAddr> = Vec::new();
    let mut proxied: Vec<SocketAddr> = Vec::new();
    let mut udp: Vec<SocketAddr> = Vec::new();
    let named = !(cli.listen.is_empty()
        && cli.listen_proxy.is_empty()
        && cli.udp.is_empty()
        && cli.unix.is_empty());
    if default && !named {
        tcp.push(SocketAddr::from(([127, 0, 0, 1], 10000)));
    }
    tcp.extend(cli.listen.iter().flat_map(|a| a.addrs()));
    proxied.extend(cli.listen_proxy.iter().flat_map(|a| a.addrs()));
    udp.extend(cli.udp.iter().flat_map(|a| a.addrs()));
    for addr in tcp.iter().chain(&proxied).chain(&udp) {
        if addr.ip().is_unspecified() {
            warn!(%addr, "listening on a wildcard address: reachable from other hosts");
        }
    }

    let reuse_port = workers > 1;
    let mut first = bind(&tcp, &proxied, &udp, reuse_port, backlog)?;
    for path in &cli.unix {
        first.listeners.push(Listener::Unix(
            listen::unix(path, backlog)?,
            path.clone(),
            Origin::Bound,
        ));
    }
    let bound_tcp = local_addrs(&first.listeners, false)?;
    let bound_proxied = local_addrs(&first.listeners, true)?;
    let bound_udp: Vec<SocketAddr> = first
        .udp
        .iter()
        .map(UdpSocket::local_addr)
        .collect::<Result<_, _>>()?;
    let mut all = vec![first];
    for _ in 1..workers {
        all.push(bind(&bound_tcp, &bound_proxied, &bound_udp, true, backlog)?);
    }
    Ok(all)
}

fn bind(
    tcp: &[SocketAddr],
    proxied: &[SocketAddr],
    udp: &[SocketAddr],
    reuse_port: bool,
    backlog: i32,
) -> Result<Sockets> {
    let plain = tcp
        .iter()
        .map(|&a| listen::tcp(a, reuse_port, backlog).map(Listener::Tcp));
    let behind_proxy = proxied
        .iter()
        .map(|&a| listen::tcp(a, reuse_port, backlog).map(Listener::Proxy));
    let listeners = plain.chain(behind_proxy).collect::<Result<_>>()?;
    let udp = udp
        .iter()
        .map(|&a| listen::udp(a, reuse_port))
        .collect::<Result<_>>()?;
    Ok(Sockets { listeners, udp })
}

/// The bound addresses of the TCP listeners, plain or behind a proxy.
fn local_addrs(listeners: &[Listener], proxied: bool) -> Result<Vec<SocketAddr>> {
    let mut addrs = Vec::new();
    for l in listeners {
        match l {
            Listener::Tcp(t) if !proxied => addrs.push(TcpListener::local_addr(t)?),
            Listener::Proxy(t) if proxied => addrs.push(TcpListener::local_addr(t)?),
            _ => {}
        }
    }
    Ok(addrs)
}

/// One `listening KIND ADDR` line per address served, on stdout, then
/// flush: the contract scripts and tests wait for. Every worker's sockets
/// count (inherited ones may be dealt to one worker each); an address that
/// several workers serve is announced once.
pub fn announce(all: &[Sockets], endpoints: &[(&str, Option<&TcpListener>)]) -> Result<()> {
    let mut lines: Vec<String> = Vec::new();
    for sockets in all {
        for l in &sockets.listeners {
            lines.push(format!("listening {}", l.describe()));
        }
    }
    for sockets in all {
        for s in &sockets.udp {
            lines.push(format!("listening udp {}", s.local_addr()?));
        }
    }
    for (name, endpoint) in endpoints {
        if let Some(l) = endpoint {
            lines.push(format!("listening {name} {}", l.local_addr()?));
        }
    }
    // A reader that takes the first line and goes away (`| head -1`) must
    // not stop the server: the console ignores a closed stdout.
    for (i, line) in lines.iter().enumerate() {
        if !lines[..i].contains(line) {
            crate::console::out(format_args!("{line}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::deal;

    #[test]
    fn listeners_are_shared_unless_there_is_one_per_worker() {
        let d = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // One listener per address: every worker watches it.
        assert_eq!(deal(&d(&["tcp a", "unix b"]), 3), vec![vec![0, 1, 2]; 2]);
        // Three on one address (ReusePort=yes) for three workers: one each;
        // the lone one on another address is still shared.
        assert_eq!(
            deal(&d(&["tcp a", "tcp b", "tcp a", "tcp a"]), 3),
            vec![vec![0], vec![0, 1, 2], vec![1], vec![2]]
        );
        // Four on one address for two workers: two each.
        assert_eq!(
            deal(&d(&["tcp a"; 4]), 2),
            vec![vec![0], vec![1], vec![0], vec![1]]
        );
        assert_eq!(deal(&d(&["tcp a"]), 1), vec![vec![0]]);
    }
}
