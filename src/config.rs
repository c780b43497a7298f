//! The command line, and the settings the event loops run with.

use clap::{ArgAction, Parser};
use netaddr::SocketAddrs;
use selector::BackendKind;
use std::path::PathBuf;
use std::time::Duration;

mod memory;
mod settings;
mod values;

pub use settings::Config;

pub use values::address;
pub(crate) use values::bytes;
use values::{backend, keepalive_seconds, no_port_flag, seconds, stats_seconds};

use crate::splice::ZeroCopy;

/// The tutorial's select() echo server, built for production.
///
/// Every byte a client sends comes back, in order, exactly once. One event
/// loop per worker waits on a selector (epoll, poll or select) for sockets
/// that are ready, the way the classic Python `select.select` echo server
/// does. It prints one `listening ...` line per socket on stdout, logs to
/// stderr, and on SIGINT or SIGTERM stops accepting, finishes echoing what it
/// has received, prints a summary and exits. SIGHUP is logged and otherwise
/// ignored: there is no configuration to reload. Try it with
/// `nc 127.0.0.1 10000`.
#[derive(Debug, Parser)]
#[command(name = "echo-server", version = env!("ECHO_SERVER_VERSION"), about, long_about = None,
          max_term_width = 100, after_help = SIGNALS_HELP)]
pub struct Cli {
    // The help text is given whole: rustdoc would read its brackets as links.
    #[arg(short, long = "listen", value_name = "ADDR", value_parser = address,
          help = "TCP address to listen on (IP:PORT, [IPv6]:PORT or HOST:PORT; port 0 lets the \
                  OS pick). Repeat for several. Default 127.0.0.1:10000 when no --listen, --udp \
                  or --unix is given. [::]:PORT is IPv6 only; to serve both families give two: \
                  -l 0.0.0.0:PORT -l [::]:PORT. A port alone is refused: the host is never \
                  assumed")]
    pub listen: Vec<SocketAddrs>,

    /// TCP address behind a proxy, repeatable: every connection must start
    /// with a PROXY protocol header (v1 or v2), whose client address then
    /// stands for the connection (--max-per-ip, logs, --trace). A missing,
    /// malformed or oversized header closes the connection.
    #[arg(long = "listen-proxy", value_name = "ADDR", value_parser = address)]
    pub listen_proxy: Vec<SocketAddrs>,

    /// Trusted proxy sources for --listen-proxy listeners, repeatable:
    /// ADDRESS/PREFIX (10.0.0.0/8, 2001:db8::/32) or one address. A
    /// connection from elsewhere is closed at accept. Without it anyone who
    /// reaches a proxy listener can claim any client address, and so
    /// bypass --max-per-ip.
    #[arg(long = "proxy-from", value_name = "CIDR", value_parser = netaddr::Cidr::parse)]
    pub proxy_from: Vec<netaddr::Cidr>,

    /// UDP echo address (RFC 862), repeatable. None by default.
    #[arg(short, long = "udp", value_name = "ADDR", value_parser = address)]
    pub udp: Vec<SocketAddrs>,

    /// Unix-domain stream socket path, repeatable.
    #[arg(long = "unix", value_name = "PATH")]
    pub unix: Vec<PathBuf>,

    /// Readiness backend: auto (epoll on Linux), epoll, poll or select.
    /// poll and select scan every registered descriptor on each wait, so
    /// their cost grows with idle connections; use them for few clients.
    #[arg(short, long, value_name = "NAME", default_value = "auto", value_parser = backend())]
    pub backend: BackendKind,

    /// Event loops, each a thread with its own selector; the listening
    /// sockets are shared through SO_REUSEPORT. 1 is the tutorial's model.
    #[arg(short, long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: u16,

    /// Client connections open at once, whole process [default: the file
    /// descriptor limit minus what the server needs for itself].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: Option<u64>,

    /// Client connections open at once from one IP address [default: no cap].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_per_ip: Option<u32>,

    /// Connections on --listen-proxy listeners waiting for their PROXY
    /// header at once from one TCP peer (the header, which names the
    /// client, is not read yet); beyond it new ones from that peer are
    /// closed at once [default: 8, or the --max-per-ip value if larger; no
    /// cap without --max-per-ip].
    /// Not counted for --proxy-from sources.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_pending_headers_per_ip: Option<u32>,

    /// Bytes queued for one connection before the server stops reading from
    /// it until the client catches up (TCP flow control then slows the
    /// client down). KiB, MiB and GiB suffixes are accepted.
    #[arg(long, value_name = "BYTES", default_value = "1MiB", value_parser = bytes)]
    pub max_pending: u64,

    /// Memory the server may hold for all its clients together (queued
    /// output and per-connection state). At the budget it stops reading
    /// from the connections holding the most until they drain; no byte is
    /// dropped. At least one whole read plus 1KiB (65KiB; with --zero-copy
    /// always a whole pipe). KiB, MiB and GiB suffixes are accepted
    /// [default: half the cgroup memory limit when one is set, at most a
    /// quarter of physical memory; else a quarter of physical memory].
    #[arg(long, value_name = "BYTES", value_parser = bytes)]
    pub max_memory: Option<u64>,

    /// Close connections through which no byte moved for this long (none
    /// received, none of their echo sent); 0 = never.
    #[arg(long, value_name = "SECS", default_value = "0", value_parser = seconds,
          allow_negative_numbers = true)]
    pub idle_timeout: Duration,

    /// TCP keepalive: probe a connection silent for this long, so a peer
    /// that vanished (power loss, dropped link) is found and its slot freed
    /// SECS + 6 x max(SECS/6, 1 s) after it last spoke (twice SECS from 6 s
    /// up; 8 s for 2, since probes are at least a second apart). Whole
    /// seconds from 1 to 32767 (the kernel's range); 0 = off. The default,
    /// 60, finds dead peers within about 2 minutes for one small probe a
    /// minute per idle connection; the kernel's own default waits over 2 hours.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = keepalive_seconds,
          allow_negative_numbers = true)]
    pub tcp_keepalive: Duration,

    /// On SIGINT/SIGTERM, how long to finish echoing before giving up.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = seconds,
          allow_negative_numbers = true)]
    pub shutdown_timeout: Duration,

    /// Listen backlog [default: the system maximum, net.core.somaxconn].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
    pub backlog: Option<i32>,

    /// Cap on bytes echoed per second to one UDP source address [default: no cap].
    #[arg(long, value_name = "BYTES/S", value_parser = clap::value_parser!(u64).range(1..))]
    pub udp_rate: Option<u64>,

    /// Zero-copy echo with splice(2) (Linux): auto = once a connection's
    /// reads show a bulk flow (reads of 8 KiB or more), off = always copy,
    /// always = from the first byte. Pipes come from a per-worker pool with
    /// descriptors reserved for it; without one a connection keeps copying.
    #[arg(long, value_name = "MODE", default_value = "auto")]
    pub zero_copy: ZeroCopy,

    /// Narrate every event in the tutorial's words on stderr.
    #[arg(long)]
    pub trace: bool,

    /// Print loop statistics on stderr every SECS seconds (at least 0.1);
    /// 0 = off.
    #[arg(long, value_name = "SECS", default_value = "0", value_parser = stats_seconds,
          allow_negative_numbers = true)]
    pub stats_interval: Duration,

    /// More log output (repeat for more). RUST_LOG overrides.
    #[arg(short, long, action = ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Less log output (repeat for less).
    #[arg(short, long, action = ArgAction::Count)]
    pub quiet: u8,

    /// Log format on stderr: text for people, json for one JSON object per
    /// line (timestamp, level, target, message and fields).
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    pub log_format: LogFormat,

    /// Serve Prometheus metrics (GET /metrics) and a health check (GET
    /// /healthz: 200 while serving, 503 once draining) over HTTP on this
    /// address, from a thread of its own.
    #[arg(long, value_name = "ADDR", value_parser = address)]
    pub metrics: Option<SocketAddrs>,

    #[command(flatten)]
    pub faults: crate::fault::cli::FaultArgs,

    #[command(flatten)]
    pub control: crate::control::ControlArgs,

    /// Print the man page (roff) on stdout and exit.
    #[arg(long, exclusive = true)]
    pub generate_man: bool,

    /// Print a completion script for SHELL (bash, zsh, fish, ...) on stdout
    /// and exit.
    #[arg(long, value_name = "SHELL", exclusive = true)]
    pub generate_completions: Option<clidoc::Shell>,
}

/// `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Cli {
    /// Parse the command line, then check what one value alone cannot
    /// show; a usage error exits with status 2, as clap's own do.
    pub fn parse_checked() -> Cli {
        use clap::error::ErrorKind;
        use clap::CommandFactory;
        let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
        let cli = Cli::try_parse_from(&args).unwrap_or_else(|e| {
            use clap::error::{ContextKind, ContextValue};
            let about_port = matches!(e.get(ContextKind::InvalidArg),
                Some(ContextValue::String(arg)) if arg == "--port" || arg.starts_with("--port="));
            let port = about_port.then(|| no_port_flag(&args)).flatten();
            match port {
                Some(hint) => Cli::command()
                    .error(ErrorKind::UnknownArgument, hint)
                    .exit(),
                None => e.exit(),
            }
        });
        if let Err(e) = cli.check() {
            Cli::command()
                .error(clap::error::ErrorKind::ArgumentConflict, e)
                .exit();
        }
        cli
    }

    /// The same address twice (literally or through a name) would fail to
    /// bind with a confusing "address in use"; port 0 twice is two
    /// listeners on two ports.
    fn check(&self) -> Result<(), String> {
        let tcp = self.listen.iter().map(|a| ("--listen", a));
        let tcp = tcp.chain(self.listen_proxy.iter().map(|a| ("--listen-proxy", a)));
        let udp = self.udp.iter().map(|a| ("--udp", a));
        for specs in [tcp.collect::<Vec<_>>(), udp.collect()] {
            for (i, (flag, spec)) in specs.iter().enumerate() {
                for (first, earlier) in &specs[..i] {
                    let shared = spec.addrs().iter().find(|a| earlier.addrs().contains(a));
                    if let Some(addr) = shared.filter(|a| a.port() != 0) {
                        return Err(format!(
                            "{flag} {spec} is given twice ({addr}, also named by {first} {earlier})"
                        ));
                    }
                }
            }
        }
        if let Some(budget) = self.max_memory {
            let least = memory::smallest_budget(self.max_pending, self.zero_copy);
            if budget < least {
                use clap::ValueEnum;
                let mode = self.zero_copy.to_possible_value();
                return Err(format!(
                    "--max-memory {} is below {}, the smallest budget that can echo with \
                     --zero-copy {} and --max-pending {}: a read needs room for a whole read \
                     buffer (64KiB; a whole pipe with --zero-copy always), at most \
                     --max-pending, plus 1KiB of connection state",
                    memory::human(budget),
                    memory::human(least),
                    mode.as_ref().map_or("?", |m| m.get_name()),
                    memory::human(self.max_pending),
                ));
            }
        }
        self.faults
            .check(&[&self.listen, &self.listen_proxy], &self.udp)?;
        for (i, path) in self.unix.iter().enumerate() {
            if self.unix[..i].contains(path) {
                return Err(format!("--unix {} is given twice", path.display()));
            }
        }
        Ok(())
    }
}

/// The end of `--help`: what signals do.
const SIGNALS_HELP: &str = "Signals: SIGINT or SIGTERM stops accepting, finishes echoing what was \
received, prints the summary line and exits 0; a second one exits at once with 130. SIGHUP is \
logged and otherwise ignored: there is no configuration to reload.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn the_same_address_twice_is_refused_but_port_zero_is_not() {
        let twice = Cli::parse_from([
            "echo-server",
            "-l",
            "127.0.0.1:7000",
            "-l",
            "127.0.0.1:7000",
        ]);
        assert!(twice.check().is_err_and(|e| e.contains("127.0.0.1:7000")));
        let proxied = Cli::parse_from([
            "echo-server",
            "-l",
            "127.0.0.1:7000",
            "--listen-proxy",
            "127.0.0.1:7000",
        ]);
        assert!(proxied.check().is_err_and(|e| e.contains("--listen-proxy")));
        let zero = Cli::parse_from(["echo-server", "-l", "127.0.0.1:0", "-l", "127.0.0.1:0"]);
        assert_eq!(zero.check(), Ok(()));
        let families = Cli::parse_from([
            "echo-server",
            "-l",
            "127.0.0.1:7000",
            "-u",
            "127.0.0.1:7000",
        ]);
        assert_eq!(families.check(), Ok(()));
    }

    #[test]
    fn defaults_follow_the_contract() {
        let cli = Cli::parse_from(["echo-server"]);
        let cfg = Config::new(&cli, 800);
        assert_eq!(cfg.max_pending, 1 << 20);
        // An eighth of the descriptors is kept for zero-copy pipes.
        assert_eq!(cfg.max_connections, 700);
        assert_eq!(cfg.pipes_per_worker, 50);
        assert_eq!(cfg.zero_copy, ZeroCopy::Auto);
        let off = Cli::parse_from(["echo-server", "--zero-copy", "off"]);
        assert_eq!(Config::new(&off, 800).max_connections, 800);
        assert_eq!(cfg.shutdown_timeout, Duration::from_secs(5));
        assert_eq!(cfg.idle_timeout, None);
        assert_eq!(cli.backend, BackendKind::Auto);
        assert_eq!(cli.workers, 1);
    }

    #[test]
    fn pending_headers_cap_follows_max_per_ip_and_proxy_from() {
        let pending = |args: &[&str]| {
            let cli = Cli::parse_from([&["echo-server"][..], args].concat());
            Config::new(&cli, 800).max_pending_headers
        };
        assert_eq!(pending(&[]), None);
        assert_eq!(pending(&["--max-per-ip", "2"]), Some(8));
        assert_eq!(pending(&["--max-per-ip", "50"]), Some(50));
        assert_eq!(pending(&["--max-pending-headers-per-ip", "3"]), Some(3));
        let trusted = ["--max-per-ip", "2", "--proxy-from", "10.0.0.0/8"];
        assert_eq!(pending(&trusted), None);
    }
}
