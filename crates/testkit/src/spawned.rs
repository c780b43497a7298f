//! A server process under test: started with its output piped, every stdout line and all of
//! stderr kept in memory by reader threads, killed and reaped on drop.

use std::io::{self, BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::listening::{self, Listeners};

/// A running child process whose output is collected as it comes.
#[derive(Debug)]
pub struct Spawned {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
    status: Option<ExitStatus>,
}

impl Spawned {
    /// Starts `cmd` with stdin from /dev/null and stdout and stderr piped to reader threads;
    /// stderr is kept without terminal colour sequences (see [`strip_ansi`]).
    pub fn spawn(cmd: &mut Command) -> io::Result<Spawned> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(pipe) = child.stdout.take() {
            let stdout = stdout.clone();
            collect_lines(pipe, move |line| lock(&stdout).push(line));
        }
        if let Some(pipe) = child.stderr.take() {
            let stderr = stderr.clone();
            collect_lines(pipe, move |line| {
                let mut s = lock(&stderr);
                s.push_str(&strip_ansi(&line));
                s.push('\n');
            });
        }
        Ok(Spawned {
            child,
            stdout,
            stderr,
            status: None,
        })
    }

    /// Waits at most `timeout` for `expected` distinct `listening` lines and parses them. The
    /// error says why (the process exited, a line did not parse, or time ran out) with what
    /// the process printed.
    pub fn wait_listening(
        &mut self,
        expected: usize,
        timeout: Duration,
    ) -> Result<Listeners, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let lines = listening::lines(&self.stdout_lines());
            if lines.len() >= expected {
                let mut found = Listeners::default();
                for line in lines {
                    found.add(&line)?;
                }
                return Ok(found);
            }
            if let Some(status) = self.try_wait() {
                // Give the readers a moment to collect the last words.
                thread::sleep(Duration::from_millis(100));
                return Err(format!(
                    "exited with {status} before listening; stderr:\n{}",
                    self.stderr()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no {expected} listening lines within {timeout:?}; stdout: {:?}; stderr:\n{}",
                    self.stdout_lines(),
                    self.stderr()
                ));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every stdout line so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        lock(&self.stdout).clone()
    }

    /// Everything written on stderr so far.
    pub fn stderr(&self) -> String {
        lock(&self.stderr).clone()
    }

    /// The exit status if the process has exited, without waiting.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait on a child process");
        }
        self.status
    }

    /// Waits at most `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGKILL, unless it has exited, and reap it.
    pub fn kill(&mut self) {
        if self.try_wait().is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A poisoned lock only means a reader thread panicked; the lines it kept are still good.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Removes terminal colour sequences (`ESC [ ... letter`), so assertions see plain words.
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn collect_lines<R: Read + Send + 'static>(
    pipe: R,
    mut sink: impl FnMut(String) + Send + 'static,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let reader = BufReader::new(pipe);
        for line in reader.split(b'\n') {
            match line {
                Ok(bytes) => sink(String::from_utf8_lossy(&bytes).into_owned()),
                Err(_) => break,
            }
        }
    })
}

/// Runs `cmd` to completion within `timeout` (stdin from /dev/null); returns its status,
/// stdout and stderr, each its lines joined by `\n`. Panics, after killing it, if it is
/// still running at the deadline.
pub fn run_to_end(cmd: &mut Command, timeout: Duration) -> (ExitStatus, String, String) {
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {shown}: {e}"));
    let out = Arc::new(Mutex::new(Vec::new()));
    let err = Arc::new(Mutex::new(Vec::new()));
    let mut readers = Vec::new();
    if let Some(pipe) = child.stdout.take() {
        let out = out.clone();
        readers.push(collect_lines(pipe, move |l| lock(&out).push(l)));
    }
    if let Some(pipe) = child.stderr.take() {
        let err = err.clone();
        readers.push(collect_lines(pipe, move |l| lock(&err).push(l)));
    }
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait on a child process") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{shown} still running after {timeout:?}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    // The pipes close with the process, so the readers end.
    for r in readers {
        let _ = r.join();
    }
    let out = lock(&out).join("\n");
    let err = lock(&err).join("\n");
    (status, out, err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_lines_are_read_and_output_kept() {
        let mut p = Spawned::spawn(Command::new("sh").args([
            "-c",
            "echo 'listening tcp 127.0.0.1:7'; echo 'listening udp 127.0.0.1:8'; \
             printf '\\033[31mred\\033[0m\\n' >&2; exec sleep 30",
        ]))
        .unwrap();
        let l = p.wait_listening(2, Duration::from_secs(10)).unwrap();
        assert_eq!(l.tcp, ["127.0.0.1:7".parse().unwrap()]);
        assert_eq!(l.udp, ["127.0.0.1:8".parse().unwrap()]);
        assert!(crate::wait_until(Duration::from_secs(10), || p.stderr() == "red\n"));
        p.kill();
        assert!(p.try_wait().is_some());
    }

    #[test]
    fn an_early_exit_is_reported_with_stderr() {
        let mut p =
            Spawned::spawn(Command::new("sh").args(["-c", "echo nope >&2; exit 3"])).unwrap();
        let err = p.wait_listening(1, Duration::from_secs(10)).unwrap_err();
        assert!(err.contains("exited") && err.contains("nope"), "{err}");
    }

    #[test]
    fn run_to_end_collects_both_streams() {
        let (status, out, err) = run_to_end(
            Command::new("sh").args(["-c", "echo a; echo b; echo c >&2; exit 4"]),
            Duration::from_secs(10),
        );
        assert_eq!(status.code(), Some(4));
        assert_eq!((out.as_str(), err.as_str()), ("a\nb", "c"));
    }
}
