//! The HTTP endpoints' loop (`--metrics`, `--control`): one event loop on a
//! thread of its own per endpoint, serving every open connection at once,
//! each to its own deadline. What a request gets is the endpoint's
//! [`Routes`]; the limits are the same for all.
//!
//! - At most [`MAX_OPEN`] connections are open; a new one past that closes
//!   the oldest (the one nearest its deadline) without an answer, so a
//!   crowd of silent or dripping clients cannot keep a fresh request out:
//!   it only ever waits behind requests that are complete.
//! - A request (head, then a body of `Content-Length` bytes where the
//!   endpoint takes one) must arrive within [`REQUEST_TIMEOUT`] of the
//!   accept: past it the client gets 400 `request timeout` and the
//!   connection is closed. The answer must be taken within the same time
//!   again, or the connection is closed.
//! - A request refused before it was read whole (400, 413) is answered at
//!   once; what the client still sends is read and thrown away (at most
//!   [`MAX_DRAIN`] bytes, within the same deadline) so that closing does
//!   not reset the connection before the client has read the answer.
//! - The thread runs [`NICENESS`] steps nicer than the process: a flood of
//!   requests takes only what CPU the echo loops leave, while a health
//!   check still gets its answer in milliseconds.

use std::io::{self, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rustix::io::Errno;
use selector::{Events, Interest, Selector, Token};
use slab::Slab;
use socket2::{Domain, Protocol, Socket, Type};
use tracing::{debug, warn};

use crate::idle::Recency;
use crate::udp::RateLimited;

mod message;
mod wire;

use wire::{accept_nonblocking, drain, read_request, write_out, Next};

use message::Parsed;
pub use message::{Request, Response};

/// How long a client has to send its request, and then to take the answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Endpoint connections open at once; a new one past this closes the oldest.
pub const MAX_OPEN: usize = 128;
/// Bytes read and thrown away after a refusal, at most.
pub const MAX_DRAIN: usize = 1 << 20;
/// Connections taken from the accept queue per wakeup: half of
/// [`MAX_OPEN`], so a connection accepted in one round is still open when
/// the next round reads its request, however many arrive behind it.
const ACCEPTS_PER_ROUND: usize = MAX_OPEN / 2;
/// After an accept error (no descriptors left), the listener rests this long.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// The listener's accept queue: a burst of connections waits there while
/// the loop takes them.
const BACKLOG: i32 = 1024;

/// How much nicer (setpriority(2), per thread on Linux) an endpoint's
/// thread is than the process.
pub const NICENESS: i32 = 10;

const LISTENER: Token = Token(usize::MAX);

/// What one endpoint answers.
pub trait Routes: Send + 'static {
    /// The endpoint's name: its flag without dashes, in logs and the
    /// thread's name.
    const NAME: &'static str;
    /// The longest request body taken; a longer one gets 413.
    const MAX_BODY: usize;

    /// The answer to a complete request.
    fn answer(&mut self, request: Request, now: Instant) -> Response;

    /// The answer to a request refused before it was complete (400, 413).
    fn refusal(&self, status: u16, why: &str) -> Response {
        Response::text(status, why)
    }
}

/// Bind an endpoint's listener (`what` names it in the error), with room in
/// its accept queue for a crowd.
pub fn bind(addr: &netaddr::SocketAddrs, what: &str) -> Result<TcpListener> {
    let addr = addr.first();
    let listen = || -> io::Result<TcpListener> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        if addr.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        socket.bind(&addr.into())?;
        socket.listen(BACKLOG)?;
        Ok(socket.into())
    };
    listen().with_context(|| format!("cannot listen on {what} {addr}"))
}

/// Serve `routes` on `listener` from a thread of its own until the process
/// exits.
pub fn serve<R: Routes>(listener: TcpListener, routes: R) -> Result<()> {
    let endpoint = Endpoint::new(listener, routes)
        .with_context(|| format!("cannot start the {} endpoint", R::NAME))?;
    std::thread::Builder::new()
        .name(R::NAME.into())
        .spawn(move || endpoint.run())
        .with_context(|| format!("cannot start the {} thread", R::NAME))?;
    Ok(())
}

#[derive(Debug)]
enum Phase {
    /// Reading the request: the bytes so far.
    Reading(Vec<u8>),
    /// Sending the answer: all of it, how much is sent, and whether to
    /// drain what the client still sends once it is.
    Writing(Vec<u8>, usize, bool),
    /// Answered after a refusal: reading until the client's FIN.
    Draining(usize),
}

#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    phase: Phase,
    /// What the selector watches it for: nothing until a read or a write
    /// finds the socket not ready (most requests are answered at once).
    watched: Option<Interest>,
}

/// An endpoint's loop and everything it owns.
#[derive(Debug)]
struct Endpoint<R> {
    selector: Selector,
    listener: TcpListener,
    routes: R,
    conns: Slab<Conn>,
    /// Open connections by when their current deadline started.
    started: Recency<Instant>,
    /// When the listener, resting after an accept error, is watched again.
    paused_until: Option<Instant>,
    log: RateLimited,
    now: Instant,
}

impl<R: Routes> Endpoint<R> {
    fn new(listener: TcpListener, routes: R) -> io::Result<Endpoint<R>> {
        listener.set_nonblocking(true)?;
        let mut selector = Selector::new()?;
        selector.register(&listener, LISTENER, Interest::READABLE)?;
        Ok(Endpoint {
            selector,
            listener,
            routes,
            conns: Slab::new(),
            started: Recency::default(),
            paused_until: None,
            log: RateLimited::default(),
            now: Instant::now(),
        })
    }

    /// Serve until the process exits.
    fn run(mut self) {
        be_nicer(R::NAME);
        let mut events = Events::with_capacity(256);
        loop {
            let timeout = self
                .next_deadline()
                .map(|t| t.saturating_duration_since(self.now));
            if let Err(e) = self.selector.select(&mut events, timeout) {
                warn!(error = %e, "{}: wait failed", R::NAME);
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
                    debug!(
                        "{}: {MAX_OPEN} connections open, closing the oldest",
                        R::NAME
                    );
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
            warn!(error = %e, suppressed = more, "{}: accept failed", R::NAME);
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
                warn!(error = %e, "{}: cannot watch the listener again", R::NAME);
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
                let why = format!(
                    "request timeout: the request did not arrive within {} s",
                    REQUEST_TIMEOUT.as_secs()
                );
                let answer = self.routes.refusal(400, &why).into_bytes();
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
            Phase::Writing(out, sent, drain) => {
                let drain = *drain;
                let next = write_out(&mut conn.stream, out, sent, R::NAME);
                self.after_writing(key, next, drain)
            }
            Phase::Draining(read) => drain(&mut conn.stream, read),
            Phase::Reading(buf) => match read_request(&mut conn.stream, buf, R::MAX_BODY) {
                Ok(Parsed::Incomplete(_)) => Next::Read,
                Ok(Parsed::Complete(request)) => {
                    let answer = self.routes.answer(request, self.now);
                    self.start_writing(key, answer, false)
                }
                Ok(Parsed::Refused(status, why)) => {
                    debug!(status, why, "{}: request refused", R::NAME);
                    let answer = self.routes.refusal(status, &why);
                    self.start_writing(key, answer, true)
                }
                Err(e) => {
                    debug!(error = %e, "{}: request not read", R::NAME);
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
            debug!(error = %e, "{}: cannot watch a connection", R::NAME);
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
    /// The answer gets a deadline of its own.
    fn start_writing(&mut self, key: usize, answer: Response, drain: bool) -> Next {
        self.started.insert(key, self.now);
        let Some(conn) = self.conns.get_mut(key) else {
            return Next::Close;
        };
        let out = answer.into_bytes();
        let mut sent = 0;
        let next = write_out(&mut conn.stream, &out, &mut sent, R::NAME);
        conn.phase = Phase::Writing(out, sent, drain);
        self.after_writing(key, next, drain)
    }

    /// An answer sent whole ends the connection, or after a refusal starts
    /// draining it.
    fn after_writing(&mut self, key: usize, next: Next, drain: bool) -> Next {
        match (next, drain, self.conns.get_mut(key)) {
            (Next::Close, true, Some(conn)) => {
                let mut read = 0;
                let next = wire::drain(&mut conn.stream, &mut read);
                conn.phase = Phase::Draining(read);
                next
            }
            (next, _, _) => next,
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
}

/// Lower this thread's priority by [`NICENESS`]: on Linux `setpriority`
/// with no pid changes the calling thread alone.
fn be_nicer(name: &str) {
    use rustix::process::{getpriority_process, setpriority_process};
    let lowered = getpriority_process(None)
        .and_then(|now| setpriority_process(None, (now + NICENESS).min(19)));
    if let Err(e) = lowered {
        debug!(error = %e, "{name}: cannot lower the thread's priority");
    }
}
