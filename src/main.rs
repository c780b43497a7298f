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
mod control;
mod fault;
mod http;
mod idle;
mod limits;
mod listen;
mod logging;
mod manual;
mod metrics;
mod notify;
mod proxy;
mod queue;
mod server;
mod signals;
mod sockets;
mod splice;
mod stats;
mod stream;
mod udp;

use anyhow::{Context, Result};
use std::process::ExitCode;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;
use tracing::debug;

use config::{Cli, Config, LogFormat};
use server::{Shared, Worker};
use sockets::Sockets;
use stats::Counters;

/// The allocator: glibc's malloc keeps what a burst of clients freed
/// resident (per-thread caches pin the top of each heap, and a heap shrinks
/// only from its top); jemalloc's background thread gives freed pages back to
/// the OS within its decay time (10 s), so RSS falls again after the burst.
#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse_checked();
    if cli.generate_man || cli.generate_completions.is_some() {
        return manual::generate(&cli);
    }
    logging::init(&cli);
    match run(&cli) {
        // The loops have stopped and the Unix socket paths are gone.
        Ok(None) => {
            match cli.log_format {
                LogFormat::Text => console::err(format_args!("second signal: exiting at once")),
                LogFormat::Json => tracing::warn!("second signal: exiting at once"),
            }
            ExitCode::from(130)
        }
        Ok(Some(total)) => {
            console::out(format_args!("{}", stats::summary(&total)));
            ExitCode::SUCCESS
        }
        Err(e) => {
            match cli.log_format {
                LogFormat::Text => console::err(format_args!("echo-server: {e:#}")),
                LogFormat::Json => tracing::error!("{e:#}"),
            }
            ExitCode::FAILURE
        }
    }
}

/// Serve until the loops end: the totals, or `None` when a second signal
/// stopped them without a drain.
fn run(cli: &Cli) -> Result<Option<Counters>> {
    let workers = usize::from(cli.workers);
    let nofile = raise_nofile_limit();
    let sockets = sockets::open(cli, workers)?;
    let metrics = cli.metrics.as_ref().map(metrics::bind).transpose()?;
    let control = cli
        .control
        .control
        .as_ref()
        .map(control::bind)
        .transpose()?;
    // Signal handlers go in before the sockets are announced: a script that
    // sends SIGTERM as soon as it reads the line must get the graceful path.
    let signals = signals::SignalPipes::install()?;
    let endpoints = [("metrics", metrics.as_ref()), ("control", control.as_ref())];
    sockets::announce(&sockets, &endpoints)?;
    let faults = Arc::new(
        cli.faults
            .faults(&cli.listen, &cli.listen_proxy)
            .with_udp(&cli.udp),
    );
    if cli.faults.announced() {
        console::out(format_args!("fault-seed {}", faults.seed()));
    }
    let started = start_workers(cli, sockets, signals, nofile, faults)?;
    if let Some(listener) = metrics {
        metrics::serve(listener, Arc::clone(&started.shared))?;
    }
    if let Some(listener) = control {
        let listeners = control::Listeners {
            listen: cli.listen.clone(),
            proxy: cli.listen_proxy.clone(),
            udp: cli.udp.clone(),
        };
        control::serve(listener, Arc::clone(&started.shared.faults), listeners)?;
    }
    notify::ready();
    join(started)
}

/// The event loops, ready to run: worker 0 runs on this thread, the others
/// already run on their own.
struct Started {
    shared: Arc<Shared>,
    first: Worker,
    threads: Vec<JoinHandle<std::io::Result<Counters>>>,
}

/// One event loop per worker, each with its sockets; every loop but the
/// first starts on a thread of its own.
fn start_workers(
    cli: &Cli,
    sockets: Vec<Sockets>,
    signals: signals::SignalPipes,
    nofile: usize,
    faults: Arc<fault::Faults>,
) -> Result<Started> {
    let workers = sockets.len();
    let own = 16 + 4 * workers + sockets.iter().map(Sockets::len).sum::<usize>();
    let mut cfg = Config::new(cli, nofile.saturating_sub(own).max(1));
    cfg.watchdog = notify::watchdog_interval();
    let cfg = Arc::new(cfg);
    debug!(
        max_connections = cfg.max_connections,
        max_memory = cfg.max_memory,
        workers,
        "configured"
    );
    let names = sockets
        .iter()
        .map(|s| s.listeners.iter().map(|l| l.describe()).collect())
        .collect();
    let shared = Shared::new(
        workers,
        cfg.max_per_ip,
        budget::Budget::new(cfg.max_memory, cfg.max_connections),
    )
    .with_listener_names(names)
    .with_faults(faults);
    let shared = Arc::new(shared);

    let mut loops = Vec::with_capacity(workers);
    let mut wakers = Vec::with_capacity(workers);
    let mut signals = Some(signals);
    for (id, sockets) in sockets.into_iter().enumerate() {
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
    let first = loops.next().context("no event loop")?;
    let threads = loops
        .enumerate()
        .map(|(i, worker)| {
            std::thread::Builder::new()
                .name(format!("worker-{}", i + 1))
                .spawn(move || worker.run())
        })
        .collect::<Result<_, _>>()
        .context("cannot start a worker thread")?;
    Ok(Started {
        shared,
        first,
        threads,
    })
}

/// Run worker 0 here, then wait for the others and add up their counters.
fn join(started: Started) -> Result<Option<Counters>> {
    let Started {
        shared,
        first,
        threads,
    } = started;
    let mut total = Counters::default();
    let first_result = first.run();
    if first_result.is_err() {
        shared.shutdown.store(true, Relaxed);
        shared.wake_all();
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
        None if shared.abort.load(Relaxed) => Ok(None),
        None => Ok(Some(total)),
    }
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
