//! The server under test: [`Server`] runs the real binary (through [`testkit::Spawned`],
//! which reads its `listening` lines and keeps its output for assertions) and kills it on
//! drop; [`run_cli`] runs it to completion.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::time::Duration;

use rustix::process::{kill_process, Pid, Signal};
use testkit::Spawned;

use super::{cpu_time, fd_count, rss_kib, wait_for};

/// How long the server gets to print its `listening` lines.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);

/// A running echo-server, killed (SIGKILL) and reaped on drop.
#[derive(Debug)]
pub struct Server {
    process: Spawned,
    /// TCP listeners, in the order the server printed them.
    pub tcp: Vec<SocketAddr>,
    /// UDP sockets, in the order the server printed them.
    pub udp: Vec<SocketAddr>,
    /// Unix-domain listeners, in the order the server printed them.
    pub unix: Vec<PathBuf>,
    /// PROXY-protocol TCP listeners (`tcp+proxy`), in the order printed.
    pub proxy: Vec<SocketAddr>,
    /// The `--metrics` HTTP endpoint.
    pub metrics: Option<SocketAddr>,
    /// The `--control` HTTP endpoint.
    pub control: Option<SocketAddr>,
}

/// Options for starting a [`Server`].
#[derive(Debug, Default)]
pub struct Builder {
    args: Vec<String>,
    nofile: Option<u64>,
    envs: Vec<(String, String)>,
    wrapper: Vec<String>,
    listening: Option<usize>,
}

impl Builder {
    /// Appends command-line arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_string()));
        self
    }

    /// Runs the server under `prlimit --nofile=N:N` (see [`prlimit_available`]).
    pub fn nofile(mut self, n: u64) -> Self {
        self.nofile = Some(n);
        self
    }

    /// Runs the server as the last argument of `wrapper` (a launcher such
    /// as `systemd-socket-activate -l ADDR`), its own arguments after it.
    pub fn wrapped_in<I, S>(mut self, wrapper: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.wrapper = wrapper
            .into_iter()
            .map(|a| a.as_ref().to_string())
            .collect();
        self
    }

    /// Waits for `n` listening lines, and adds no `-l 127.0.0.1:0` when
    /// the arguments name no listener (for sockets that come from elsewhere).
    pub fn listening(mut self, n: usize) -> Self {
        self.listening = Some(n);
        self
    }

    /// Sets an environment variable for the server.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.envs.push((key.to_string(), value.to_string()));
        self
    }

    /// Starts the server and waits for its `listening` lines; panics with its stderr if it
    /// does not get that far.
    pub fn start(self) -> Server {
        match self.try_start() {
            Ok(server) => server,
            Err(e) => panic!("echo-server did not start: {e}"),
        }
    }

    /// Starts the server and waits for its `listening` lines.
    pub fn try_start(mut self) -> Result<Server, String> {
        let count = |names: &[&str]| {
            self.args
                .iter()
                .filter(|a| names.contains(&a.as_str()))
                .count()
        };
        let listeners = count(&["-l", "--listen", "-u", "--udp", "--unix", "--listen-proxy"]);
        let metrics = count(&["--metrics", "--control"]);
        let expected = if let Some(n) = self.listening {
            n
        } else if listeners == 0 {
            self.args.push("-l".into());
            self.args.push("127.0.0.1:0".into());
            1 + metrics
        } else {
            listeners + metrics
        };
        // ECHO_TEST_ZERO_COPY=always|off|auto runs every server of the suite on that path
        // (CI runs the suite with `always` as well as the default); empty means unset.
        if let Ok(mode) = std::env::var("ECHO_TEST_ZERO_COPY") {
            if !mode.is_empty() && !self.args.iter().any(|a| a == "--zero-copy") {
                self.args.push("--zero-copy".into());
                self.args.push(mode);
            }
        }
        let mut cmd = match (self.nofile, self.wrapper.split_first()) {
            (Some(n), _) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}")).arg(bin());
                c
            }
            (None, Some((program, args))) => {
                let mut c = Command::new(program);
                c.args(args).arg(bin());
                c
            }
            (None, None) => Command::new(bin()),
        };
        cmd.args(&self.args);
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        let mut process = Spawned::spawn(&mut cmd).map_err(|e| format!("spawn {}: {e}", bin()))?;
        let found = process.wait_listening(expected, STARTUP_TIMEOUT)?;
        Ok(Server {
            process,
            tcp: found.tcp,
            udp: found.udp,
            unix: found.unix,
            proxy: found.proxy,
            metrics: found.metrics,
            control: found.control,
        })
    }
}

/// Path of the server binary: the one Cargo built for these tests, or `ECHO_SERVER_BIN` to
/// hold another implementation to the same contract.
pub fn bin() -> String {
    std::env::var("ECHO_SERVER_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_echo-server").into())
}

impl Server {
    /// Starts a server with `args`, adding `-l 127.0.0.1:0` when no listener is given.
    pub fn start(args: &[&str]) -> Server {
        Builder::default().args(args).start()
    }

    /// A builder for servers that need more than arguments.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The first TCP listener.
    pub fn addr(&self) -> SocketAddr {
        *self.tcp.first().expect("server has a TCP listener")
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Sends `sig` to the server.
    pub fn signal(&self, sig: Signal) {
        let pid = Pid::from_raw(self.pid() as i32).expect("child pid is positive");
        kill_process(pid, sig).expect("kill echo-server");
    }

    /// Sends SIGTERM.
    pub fn term(&self) {
        self.signal(Signal::TERM);
    }

    /// Sends SIGINT.
    pub fn int(&self) {
        self.signal(Signal::INT);
    }

    /// The exit status if the server has exited, without waiting.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.process.try_wait()
    }

    /// Waits at most `timeout` for the server to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.process.wait_exit(timeout)
    }

    /// Everything the server wrote on stderr so far (colour sequences removed).
    pub fn stderr(&self) -> String {
        self.process.stderr()
    }

    /// Every stdout line so far, `listening` lines included.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.process.stdout_lines()
    }

    /// Waits at most `timeout` for a stderr line matching `pred`; returns it.
    pub fn wait_stderr_line(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&str) -> bool,
    ) -> Option<String> {
        wait_for(timeout, || {
            self.stderr().lines().find(|l| pred(l)).map(str::to_string)
        })
    }

    /// Waits at most `timeout` for a stdout line matching `pred`; returns it.
    pub fn wait_stdout_line(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&str) -> bool,
    ) -> Option<String> {
        wait_for(timeout, || {
            self.stdout_lines().into_iter().find(|l| pred(l))
        })
    }

    /// Waits at most `timeout` for the shutdown summary line and parses it.
    pub fn summary(&self, timeout: Duration) -> Summary {
        let line = self
            .wait_stdout_line(timeout, |l| l.starts_with("summary:"))
            .unwrap_or_else(|| {
                panic!(
                    "no summary line on stdout; stdout: {:?}; stderr:\n{}",
                    self.stdout_lines(),
                    self.stderr()
                )
            });
        Summary::parse(&line).unwrap_or_else(|| panic!("bad summary line {line:?}"))
    }

    /// The sum of the samples of its metrics (`--metrics`) whose line
    /// starts with `prefix`, from one scrape.
    pub fn metric(&self, prefix: &str) -> f64 {
        use std::io::{Read, Write};
        let addr = self.metrics.expect("the server runs with --metrics");
        let mut s = std::net::TcpStream::connect(addr).expect("connect to --metrics");
        s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n")
            .expect("send the scrape");
        let mut body = String::new();
        s.read_to_string(&mut body).expect("read the scrape");
        body.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    }

    /// Open file descriptors of the server.
    pub fn fd_count(&self) -> usize {
        fd_count(self.pid())
    }

    /// Resident set size of the server, in KiB.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid())
    }

    /// CPU time (user + system, every thread) the server has used so far.
    pub fn cpu_time(&self) -> Duration {
        cpu_time(self.pid())
    }

    /// Number of event-loop threads of the server (see [`super::is_loop_thread`]).
    pub fn threads(&self) -> usize {
        testkit::proc::loop_threads(self.pid())
    }
}

/// The shutdown line: `summary: connections N, bytes echoed B, datagrams echoed D`, numbers
/// with thousands separators (`17,700,160`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub connections: u64,
    pub bytes: u64,
    pub datagrams: u64,
}

impl Summary {
    /// Parses the summary line, `None` if any field is missing or a number is not grouped
    /// in threes (`1,234`, never `1234` or `12,34`).
    pub fn parse(line: &str) -> Option<Summary> {
        let rest = line.strip_prefix("summary:")?;
        // Fields are separated by ", "; the commas inside a number have no space after them.
        let field = |name: &str| -> Option<u64> {
            rest.split(", ")
                .map(str::trim)
                .find_map(|part| part.strip_prefix(name))
                .and_then(grouped)
        };
        Some(Summary {
            connections: field("connections ")?,
            bytes: field("bytes echoed ")?,
            datagrams: field("datagrams echoed ")?,
        })
    }
}

/// `17,700,160` as 17700160; `None` unless the digits are grouped in threes.
fn grouped(text: &str) -> Option<u64> {
    let groups: Vec<&str> = text.split(',').collect();
    let (first, rest) = groups.split_first()?;
    let well_formed = (1..=3).contains(&first.len())
        && rest.iter().all(|g| g.len() == 3)
        && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_digit()));
    if !well_formed {
        return None;
    }
    groups.concat().parse().ok()
}

/// Runs the server binary with `args` to completion, within `timeout`; returns its status,
/// stdout and stderr.
pub fn run_cli(args: &[&str], timeout: Duration) -> (ExitStatus, String, String) {
    testkit::run_to_end(Command::new(bin()).args(args), timeout)
}
