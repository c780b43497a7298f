//! echo-server: the classic select() echo server, built for production.
//!
//! `main` parses the command line, opens the sockets, announces them on
//! stdout, runs one event loop per worker (the first on this thread, the one
//! that also receives signals) and prints the summary when they are done.

#![forbid(unsafe_code)]

mod budget;
mod config;
mod conn;
mod console;
mod idle;
mod limits;
mod listen;
mod queue;
mod server;
mod signals;
mod splice;
mod stats;
mod stream;
mod udp;

use anyhow::{Context, Result};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::ExitCode;
use std::sync::Arc;
use tracing::{debug, warn};

use config::{Cli, Config};
use listen::Listener;
use server::{Shared, Worker};
use stats::Counters;

fn main() -> ExitCode {
    let cli = Cli::parse_checked();
    init_logging(&cli);
    match run(&cli) {
        // The loops have stopped and the Unix socket paths are gone.
        Ok(None) => {
            console::err(format_args!("second signal: exiting at once"));
            ExitCode::from(130)
        }
        Ok(Some(total)) => {
            console::out(format_args!("{}", stats::summary(&total)));
            ExitCode::SUCCESS
        }
        Err(e) => {
            console::err(format_args!("echo-server: {e:#}"));
            ExitCode::FAILURE
        }
    }
}

fn init_logging(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    let level = match i16::from(cli.verbose) - i16::from(cli.quiet) {
        ..=-2 => "error",
        -1 => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    if cli.trace {
        if let Ok(directive) = "trace=info".parse() {
            filter = filter.add_directive(directive);
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        // A closed stderr must not turn every log line into a panic.
        .log_internal_errors(false)
        .init();
}

/// The sockets of one worker.
struct Sockets {
    listeners: Vec<Listener>,
    udp: Vec<UdpSocket>,
}

/// Serve until the loops end: the totals, or `None` when a second signal
/// stopped them without a drain.
fn run(cli: &Cli) -> Result<Option<Counters>> {
    let workers = usize::from(cli.workers);
    let nofile = raise_nofile_limit();
    let mut tcp: Vec<SocketAddr> = Vec::new();
    let mut udp: Vec<SocketAddr> = Vec::new();
    let defaults = cli.listen.is_empty() && cli.udp.is_empty() && cli.unix.is_empty();
    let tcp_specs = if defaults {
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

    let backlog = cli.backlog.unwrap_or_else(listen::somaxconn);
    let reuse_port = workers > 1;
    // Worker 0 binds first; with port 0 the others then bind the port the OS
    // picked, so every worker listens on the same addresses.
    let first = bind(&tcp, &udp, reuse_port, backlog)?;
    let mut all = vec![Sockets {
        listeners: first.0,
        udp: first.1,
    }];
    for path in &cli.unix {
        all[0]
            .listeners
            .push(Listener::Unix(listen::unix(path, backlog)?, path.clone()));
    }
    let bound_tcp = local_addrs(&all[0].listeners)?;
    let bound_udp: Vec<SocketAddr> = all[0]
        .udp
        .iter()
        .map(UdpSocket::local_addr)
        .collect::<Result<_, _>>()?;
    for _ in 1..workers {
        let (listeners, udp) = bind(&bound_tcp, &bound_udp, true, backlog)?;
        all.push(Sockets { listeners, udp });
    }

    // Signal handlers go in before the sockets are announced: a script that
    // sends SIGTERM as soon as it reads the line must get the graceful path.
    let signals = signals::SignalPipes::install()?;
    for l in &all[0].listeners {
        console::out(format_args!("listening {}", l.describe()));
    }
    for s in &all[0].udp {
        console::out(format_args!("listening udp {}", s.local_addr()?));
    }

    let own = 16
        + 4 * workers
        + all
            .iter()
            .map(|s| s.listeners.len() + s.udp.len())
            .sum::<usize>();
    let cfg = Arc::new(Config::new(cli, nofile.saturating_sub(own).max(1)));
    debug!(
        max_connections = cfg.max_connections,
        max_memory = cfg.max_memory,
        backlog,
        workers,
        "configured"
    );
    let shared = Arc::new(Shared::new(workers, cfg.max_per_ip, cfg.max_memory));

    let mut loops = Vec::with_capacity(workers);
    let mut wakers = Vec::with_capacity(workers);
    let mut signals = Some(signals);
    for (id, sockets) in all.into_iter().enumerate() {
        let selector = selector::Selector::with_backend(cfg.backend)
            .with_context(|| format!("cannot create a {} selector", cfg.backend))?;
        let (worker, waker) = Worker::new(
            id,
            Arc::clone(&cfg),
            Arc::clone(&shared),
            selector,
            sockets.listeners,
            sockets.udp,
            signals.take(),
        )
        .context("cannot start an event loop")?;
        loops.push(worker);
        wakers.push(waker);
    }
    // Set once, before any loop runs.
    let _ = shared.wakers.set(wakers);

    let mut loops = loops.into_iter();
    let main_loop = loops.next().context("no event loop")?;
    let threads: Vec<_> = loops
        .enumerate()
        .map(|(i, worker)| {
            std::thread::Builder::new()
                .name(format!("worker-{}", i + 1))
                .spawn(move || worker.run())
        })
        .collect::<Result<_, _>>()
        .context("cannot start a worker thread")?;

    let mut total = Counters::default();
    let first_result = main_loop.run();
    if first_result.is_err() {
        shared
            .shutdown
            .store(true, std::sync::atomic::Ordering::Relaxed);
        for w in shared.wakers.get().into_iter().flatten() {
            let _ = w.wake();
        }
    }
    let mut failure = first_result
        .as_ref()
        .err()
        .map(|e| anyhow::anyhow!("event loop failed: {e}"));
    if let Ok(c) = &first_result {
        total.add(c);
    }
    for t in threads {
        match t.join() {
            Ok(Ok(c)) => total.add(&c),
            Ok(Err(e)) => failure = Some(anyhow::anyhow!("event loop failed: {e}")),
            Err(_) => failure = Some(anyhow::anyhow!("an event loop panicked")),
        }
    }
    match failure {
        Some(e) => Err(e),
        None if shared.abort.load(std::sync::atomic::Ordering::Relaxed) => Ok(None),
        None => Ok(Some(total)),
    }
}

fn bind(
    tcp: &[SocketAddr],
    udp: &[SocketAddr],
    reuse_port: bool,
    backlog: i32,
) -> Result<(Vec<Listener>, Vec<UdpSocket>)> {
    let listeners = tcp
        .iter()
        .map(|&a| listen::tcp(a, reuse_port, backlog).map(Listener::Tcp))
        .collect::<Result<_>>()?;
    let udp = udp
        .iter()
        .map(|&a| listen::udp(a, reuse_port))
        .collect::<Result<_>>()?;
    Ok((listeners, udp))
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

/// Raise the soft descriptor limit to the hard one (as nginx and Go do),
/// and return the limit now in force.
fn raise_nofile_limit() -> usize {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit
        .maximum
        .is_some_and(|max| limit.current.is_some_and(|cur| cur < max))
    {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            debug!(error = %e, "cannot raise RLIMIT_NOFILE");
        }
    }
    getrlimit(Resource::Nofile)
        .current
        .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX))
}
