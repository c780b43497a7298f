//! Where the served sockets come from, one function per source: the
//! command line's addresses (bound here, once per worker), and announcing
//! them on stdout.

use anyhow::Result;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, UdpSocket};

use crate::config::Cli;
use crate::listen::{self, Listener};
use tracing::warn;

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

/// Every worker's sockets, worker 0's first.
pub fn open(cli: &Cli, workers: usize) -> Result<Vec<Sockets>> {
    let defaults = cli.listen.is_empty() && cli.udp.is_empty() && cli.unix.is_empty();
    from_flags(cli, workers, defaults)
}

/// Bind what `--listen`, `--udp` and `--unix` name (127.0.0.1:10000 when
/// `default` and nothing is named). Worker 0 binds first; with port 0 the
/// others then bind the port the OS picked (SO_REUSEPORT), so every worker
/// listens on the same addresses. Unix listeners belong to worker 0.
fn from_flags(cli: &Cli, workers: usize, default: bool) -> Result<Vec<Sockets>> {
    let backlog = cli.backlog.unwrap_or_else(listen::somaxconn);
    let mut tcp: Vec<SocketAddr> = Vec::new();
    let mut udp: Vec<SocketAddr> = Vec::new();
    let tcp_specs = if default && cli.listen.is_empty() {
        vec!["127.0.0.1:10000".to_string()]
    } else {
        cli.listen.clone()
    };
    for spec in &tcp_specs {
        tcp.extend(listen::resolve(spec)?);
    }
    for spec in &cli.udp {
        udp.extend(listen::resolve(spec)?);
    }
    for addr in tcp.iter().chain(&udp) {
        if addr.ip().is_unspecified() {
            warn!(%addr, "listening on a wildcard address: reachable from other hosts");
        }
    }

    let reuse_port = workers > 1;
    let mut first = bind(&tcp, &udp, reuse_port, backlog)?;
    for path in &cli.unix {
        first
            .listeners
            .push(Listener::Unix(listen::unix(path, backlog)?, path.clone()));
    }
    let bound_tcp = local_addrs(&first.listeners)?;
    let bound_udp: Vec<SocketAddr> = first
        .udp
        .iter()
        .map(UdpSocket::local_addr)
        .collect::<Result<_, _>>()?;
    let mut all = vec![first];
    for _ in 1..workers {
        all.push(bind(&bound_tcp, &bound_udp, true, backlog)?);
    }
    Ok(all)
}

fn bind(tcp: &[SocketAddr], udp: &[SocketAddr], reuse_port: bool, backlog: i32) -> Result<Sockets> {
    let listeners = tcp
        .iter()
        .map(|&a| listen::tcp(a, reuse_port, backlog).map(Listener::Tcp))
        .collect::<Result<_>>()?;
    let udp = udp
        .iter()
        .map(|&a| listen::udp(a, reuse_port))
        .collect::<Result<_>>()?;
    Ok(Sockets { listeners, udp })
}

fn local_addrs(listeners: &[Listener]) -> Result<Vec<SocketAddr>> {
    let mut addrs = Vec::new();
    for l in listeners {
        if let Listener::Tcp(t) = l {
            addrs.push(TcpListener::local_addr(t)?);
        }
    }
    Ok(addrs)
}

/// One `listening KIND ADDR` line per socket on stdout, then flush: the
/// contract scripts and tests wait for.
pub fn announce(sockets: &Sockets) -> Result<()> {
    let mut out = std::io::stdout().lock();
    for l in &sockets.listeners {
        writeln!(out, "listening {}", l.describe())?;
    }
    for s in &sockets.udp {
        writeln!(out, "listening udp {}", s.local_addr()?)?;
    }
    out.flush()?;
    Ok(())
}
