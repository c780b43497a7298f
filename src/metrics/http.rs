//! The endpoint's HTTP side: one event loop on a thread of its own, serving
//! every open connection at once, each to its own deadline.
//!
//! - At most [`MAX_OPEN`] connections are open; a new one past that closes
//!   the oldest (the one nearest its deadline) without an answer, so a
//!   crowd of silent or dripping clients cannot keep a fresh health check
//!   out: it only ever waits behind requests that are complete.
//! - A request head must arrive within [`REQUEST_TIMEOUT`] of the accept:
//!   past it the client gets 400 `request timeout` and the connection is
//!   closed. The answer must be taken within the same time again, or the
//!   connection is closed.
//! - `/metrics` is rendered at most once per [`RENDER_EVERY`]; requests in
//!   between get the same text. `/healthz` is answered live.
//! - The thread runs [`NICENESS`] steps nicer than the process: a flood of
//!   requests takes only what CPU the echo loops leave (on a core they keep
//!   busy, about a tenth), while a health check still gets its answer in
//!   milliseconds.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::io::Errno;
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
use rustix::net::SocketFlags;
use selector::{Events, Interest, Selector, Token};
use slab::Slab;
use tracing::{debug, warn};

use super::exposition;
use crate::idle::Recency;
use crate::server::Shared;
use crate::udp::RateLimited;

/// Bytes of request line and headers read at most.
const MAX_HEAD: usize = 8 * 1024;
const MAX_HEADERS: usize = 32;
/// How long a client has to send its request, and then to take the answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Endpoint connections open at once; a new one past this closes the oldest.
pub const MAX_OPEN: usize = 128;
/// How long a rendered `/metrics` text is served again before a new one.
pub const RENDER_EVERY: Duration = Duration::from_millis(100);
/// Connections taken from the accept queue per wakeup: half of
/// [`MAX_OPEN`], so a connection accepted in one round is still open when
/// the next round reads its request, however many arrive behind it.
const ACCEPTS_PER_ROUND: usize = MAX_OPEN / 2;
/// After an accept error (no descriptors left), the listener rests this long.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// How much nicer (setpriority(2), per thread on Linux) the endpoint's
/// thread is than the process.
pub const NICENESS: i32 = 10;

const LISTENER: Token = Token(usize::MAX);

#[derive(Debug)]
enum Phase {
    /// Reading the request head: the bytes so far.
    Reading(Vec<u8>),
    /// Sending the answer: all of it, and how much is sent.
    Writing(Vec<u8>, usize),
}

#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    phase: Phase,
    /// What the selector watches it for: nothing until a read or a write
    /// finds the socket not ready (most requests are answered at once).
    watched: Option<Interest>,
}

/// What an event on a connection leaves it needing.
enum Next {
    Read,
    Write,
    Close,
}

/// The endpoint's loop and everything it owns.
#[derive(Debug)]
pub struct Endpoint {
    selector: Selector,
    listener: TcpListener,
    shared: Arc<Shared>,
    conns: Slab<Conn>,
    /// Open connections by when their current deadline started.
    started: Recency<Instant>,
    /// The last `/metrics` text and when it was rendered.
    rendered: Option<(Instant, Arc<str>)>,
    /// When the listener, resting after an accept error, is watched again.
    paused_until: Option<Instant>,
    log: RateLimited,
    now: Instant,
}

impl Endpoint {
    pub fn new(listener: TcpListener, shared: Arc<Shared>) -> io::Result<Endpoint> {
        listener.set_nonblocking(true)?;
        let mut selector = Selector::new()?;
        selector.register(&listener, LISTENER, Interest::READABLE)?;
        Ok(Endpoint {
            selector,
            listener,
            shared,
            conns: Slab::new(),
            started: Recency::default(),
            rendered: None,
            paused_until: None,
            log: RateLimited::default(),
            now: Instant::now(),
        })
    }

    /// Serve until the process exits.
    pub fn run(mut self) {
        be_nicer();
        let mut events = Events::with_capacity(256);
        loop {
            let timeout = self
                .next_deadline()
                .map(|t| t.saturating_duration_since(self.now));
            if let Err(e) = self.selector.select(&mut events, timeout) {
                warn!(error = %e, "metrics: wait failed");
                std::thread::sleep(ACCEPT_PAUSE);
            }
            self.now = Instant::now();
            for event in &events {
                match event.token() {
                    LISTENER => self.accept(),
                    Token(key) => self.on_ready(key),
                }
            }
            self.on_timers();
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let expiry = self.started.oldest().map(|(_, &at)| at + REQUEST_TIMEOUT);
        match (expiry, self.paused_until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn accept(&mut self) {
        for _ in 0..ACCEPTS_PER_ROUND {
            let stream = match accept_nonblocking(&self.listener) {
                Ok(stream) => stream,
                Err(Errno::AGAIN | Errno::INTR) => return,
                Err(Errno::CONNABORTED) => continue, // gone before it was taken
                Err(e) => return self.pause_accepting(&e.into()),
            };
            if self.conns.len() >= MAX_OPEN {
                if let Some((oldest, _)) = self.started.oldest() {
                    debug!("metrics: {MAX_OPEN} connections open, closing the oldest");
                    self.close(oldest);
                }
            }
            let key = self.conns.insert(Conn {
                stream,
                phase: Phase::Reading(Vec::new()),
                watched: None,
            });
            self.started.insert(key, self.now);
            // The request has usually arrived with the connection.
            self.on_ready(key);
        }
    }

    /// EMFILE and the like: stop watching the listener for a while rather
    /// than spin on a connection that cannot be taken.
    fn pause_accepting(&mut self, e: &io::Error) {
        if let Some(more) = self.log.ready(self.now) {
            warn!(error = %e, suppressed = more, "metrics: accept failed");
        }
        if self.selector.unregister(&self.listener).is_ok() {
            self.paused_until = Some(self.now + ACCEPT_PAUSE);
        }
    }

    fn on_timers(&mut self) {
        if self.paused_until.is_some_and(|t| t <= self.now) {
            self.paused_until = None;
            if let Err(e) = self
                .selector
                .register(&self.listener, LISTENER, Interest::READABLE)
            {
                warn!(error = %e, "metrics: cannot watch the listener again");
            }
        }
        while let Some((key, &at)) = self.started.oldest() {
            if at + REQUEST_TIMEOUT > self.now {
                break;
            }
            self.expire(key);
        }
    }

    /// Past its deadline: a request still being read gets 400 (one
    /// non-blocking write of a small answer into an empty send buffer); an
    /// answer still being sent is given up.
    fn expire(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key) {
            if let Phase::Reading(_) = conn.phase {
                let answer = response(400, "text/plain", "request timeout\n", false);
                let _ = conn.stream.write(&answer);
                let _ = conn.stream.shutdown(Shutdown::Write);
            }
        }
        self.close(key);
    }

    fn on_ready(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return; // closed earlier in this round
        };
        let next = match &mut conn.phase {
            Phase::Writing(out, sent) => write_out(&mut conn.stream, out, sent),
            Phase::Reading(buf) => match read_head(&mut conn.stream, buf) {
                Ok(Head::Incomplete) => Next::Read,
                Ok(request) => {
                    let answer = self.answer(request);
                    self.started.insert(key, self.now);
                    self.start_writing(key, answer)
                }
                Err(e) => {
                    debug!(error = %e, "metrics: request not read");
                    Next::Close
                }
            },
        };
        let interest = match next {
            Next::Read => Interest::READABLE,
            Next::Write => Interest::WRITABLE,
            Next::Close => return self.close(key),
        };
        if let Err(e) = self.watch(key, interest) {
            debug!(error = %e, "metrics: cannot watch a connection");
            self.close(key);
        }
    }

    /// Have the selector watch `key` for `interest`.
    fn watch(&mut self, key: usize, interest: Interest) -> io::Result<()> {
        let Some(conn) = self.conns.get_mut(key) else {
            return Ok(());
        };
        match conn.watched {
            Some(now) if now == interest => return Ok(()),
            Some(_) => self.selector.modify(&conn.stream, Token(key), interest)?,
            None => self.selector.register(&conn.stream, Token(key), interest)?,
        }
        conn.watched = Some(interest);
        Ok(())
    }

    /// Send what can be sent now; the rest when the socket is writable.
    fn start_writing(&mut self, key: usize, answer: Vec<u8>) -> Next {
        let Some(conn) = self.conns.get_mut(key) else {
            return Next::Close;
        };
        conn.phase = Phase::Writing(answer, 0);
        match &mut conn.phase {
            Phase::Writing(out, sent) => write_out(&mut conn.stream, out, sent),
            Phase::Reading(_) => Next::Close,
        }
    }

    fn close(&mut self, key: usize) {
        self.started.remove(key);
        if let Some(conn) = self.conns.try_remove(key) {
            if conn.watched.is_some() {
                let _ = self.selector.unregister(&conn.stream);
            }
        }
        if self.conns.is_empty() {
            self.started.shrink();
            self.conns.shrink_to_fit();
        }
    }

    /// The whole answer to a request: `None` for a malformed one.
    fn answer(&mut self, request: Head) -> Vec<u8> {
        let Head::Complete(method, target) = request else {
            return response(400, "text/plain", "bad request\n", false);
        };
        let head_only = method == "HEAD";
        let path = target.split('?').next().unwrap_or_default();
        let known = matches!(path, "/metrics" | "/healthz");
        if known && !matches!(method.as_str(), "GET" | "HEAD") {
            return response(405, "text/plain", "only GET and HEAD\n", head_only);
        }
        match path {
            "/metrics" => {
                let text = self.metrics_text();
                let kind = "application/openmetrics-text; version=1.0.0; charset=utf-8";
                response(200, kind, &text, head_only)
            }
            "/healthz" if self.shared.shutdown.load(Relaxed) => {
                response(503, "text/plain", "draining\n", head_only)
            }
            "/healthz" => response(200, "text/plain", "serving\n", head_only),
            _ => response(404, "text/plain", "not found\n", head_only),
        }
    }

    /// The `/metrics` text, rendered again when the last is older than
    /// [`RENDER_EVERY`].
    fn metrics_text(&mut self) -> Arc<str> {
        match &self.rendered {
            Some((at, text)) if self.now.duration_since(*at) < RENDER_EVERY => Arc::clone(text),
            _ => {
                let text: Arc<str> = exposition(&self.shared).into();
                self.rendered = Some((self.now, Arc::clone(&text)));
                text
            }
        }
    }
}

/// Lower this thread's priority by [`NICENESS`]: on Linux `setpriority`
/// with no pid changes the calling thread alone.
fn be_nicer() {
    use rustix::process::{getpriority_process, setpriority_process};
    let lowered = getpriority_process(None)
        .and_then(|now| setpriority_process(None, (now + NICENESS).min(19)));
    if let Err(e) = lowered {
        debug!(error = %e, "metrics: cannot lower the thread's priority");
    }
}

/// A request head, as far as it has arrived.
enum Head {
    Incomplete,
    /// Method and target.
    Complete(String, String),
    /// Malformed, or over the limits.
    Bad,
}

/// Read what has arrived into `buf` and parse it; an error when the client
/// left.
fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<Head> {
    let mut chunk = [0u8; 1024];
    loop {
        let room = (MAX_HEAD - buf.len()).min(chunk.len());
        let n = match stream.read(&mut chunk[..room]) {
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Head::Incomplete),
            Err(e) => return Err(e),
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(buf) {
            Ok(httparse::Status::Complete(_)) => {
                let method = request.method.unwrap_or_default().to_string();
                let path = request.path.unwrap_or_default().to_string();
                return Ok(Head::Complete(method, path));
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
            Ok(httparse::Status::Partial) | Err(_) => return Ok(Head::Bad),
        }
    }
}

/// Write until done (then shut the write side) or until the socket is full.
fn write_out(stream: &mut TcpStream, out: &[u8], sent: &mut usize) -> Next {
    while *sent < out.len() {
        match stream.write(&out[*sent..]) {
            Ok(n) => *sent += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Next::Write,
            Err(e) => {
                debug!(error = %e, "metrics: response not sent");
                return Next::Close;
            }
        }
    }
    let _ = stream.shutdown(Shutdown::Write);
    Next::Close
}

fn response(status: u16, content_type: &str, body: &str, head_only: bool) -> Vec<u8> {
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        reason(status),
        body.len()
    );
    let mut out = Vec::with_capacity(head.len() + body.len());
    out.extend_from_slice(head.as_bytes());
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// One connection from the listener, already non-blocking and close-on-exec:
/// one `accept4` where the system has it.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
fn accept_nonblocking(listener: &TcpListener) -> Result<TcpStream, Errno> {
    let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
    rustix::net::accept_with(listener, flags).map(TcpStream::from)
}

/// One connection from the listener, made non-blocking (std's accept sets
/// close-on-exec).
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
fn accept_nonblocking(listener: &TcpListener) -> Result<TcpStream, Errno> {
    let errno = |e: io::Error| Errno::from_io_error(&e).unwrap_or(Errno::IO);
    let (stream, _) = listener.accept().map_err(errno)?;
    stream.set_nonblocking(true).map_err(errno)?;
    Ok(stream)
}
