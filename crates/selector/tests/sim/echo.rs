//! One simulated run: an echo server's connections and their clients, in
//! one loop on `Selector::with_faults(FaultPlan::simulation(seed))`, every
//! read and write through `ShortIo`.

use selector::{Event, Events, FaultPlan, Interest, Rng, Selector, ShortIo, Token, Waker};
use std::fmt;
use std::io::{self, ErrorKind, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// Client tokens start here; server connections count from zero.
const CLIENTS: usize = 1 << 20;
const WAKER: Token = Token(1 << 30);
/// A wait with nothing at all ready means the loop is stuck.
const STUCK: Duration = Duration::from_secs(2);

/// What one run did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub runs: usize,
    pub bytes: usize,
    pub waits: usize,
    pub wakes: usize,
    pub stale: usize,
}

impl Totals {
    pub fn add(&mut self, run: &Totals) {
        self.runs += run.runs;
        self.bytes += run.bytes;
        self.waits += run.waits;
        self.wakes += run.wakes;
        self.stale += run.stale;
    }
}

impl fmt::Display for Totals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} bytes echoed, {} waits, {} waker wakes, {} events for no connection",
            self.bytes, self.waits, self.wakes, self.stale
        )
    }
}

/// What a connection asks of the loop after handling an event.
enum Step {
    Keep(Interest),
    Close,
}

/// The server side: echoes what it reads, closes after the peer's end of
/// file once everything is written back.
struct Conn {
    io: ShortIo<UnixStream>,
    pending: Vec<u8>,
    eof: bool,
}

impl Conn {
    fn on_event(&mut self, event: &Event, moved: &mut usize) -> io::Result<Step> {
        if event.is_readable() && !self.eof {
            self.eof = read_all(&mut self.io, &mut self.pending, moved)?;
        }
        write_some(&mut self.io, &mut self.pending, moved)?;
        Ok(match (self.pending.is_empty(), self.eof) {
            (true, true) => Step::Close,
            (true, false) => Step::Keep(Interest::READABLE),
            (false, true) => Step::Keep(Interest::WRITABLE),
            (false, false) => Step::Keep(Interest::BOTH),
        })
    }
}

/// The client side: sends its payload, shuts down writing, reads the echo
/// to end of file and checks it is the payload, byte for byte.
struct Client {
    io: ShortIo<UnixStream>,
    unsent: Vec<u8>,
    payload: Vec<u8>,
    echoed: Vec<u8>,
    /// Whether writing is shut down (after the whole payload).
    shut: bool,
}

impl Client {
    fn on_event(&mut self, event: &Event, moved: &mut usize) -> io::Result<Step> {
        if event.is_writable() && !self.shut {
            write_some(&mut self.io, &mut self.unsent, moved)?;
            // Also for an empty payload, which has nothing to write first.
            if self.unsent.is_empty() {
                self.io.get_ref().shutdown(Shutdown::Write)?;
                self.shut = true;
            }
        }
        if event.is_readable() && read_all(&mut self.io, &mut self.echoed, moved)? {
            assert!(self.shut, "end of file before the whole payload was sent");
            assert!(
                self.echoed == self.payload,
                "echo differs from what was sent"
            );
            return Ok(Step::Close);
        }
        assert!(
            self.payload.starts_with(&self.echoed),
            "echo differs from what was sent"
        );
        Ok(Step::Keep(if self.shut {
            Interest::READABLE
        } else {
            Interest::BOTH
        }))
    }
}

/// Reads until it would block; whether the peer's end of file came.
fn read_all(io: &mut impl Read, into: &mut Vec<u8>, moved: &mut usize) -> io::Result<bool> {
    let mut buf = [0; 512];
    loop {
        match io.read(&mut buf) {
            Ok(0) => return Ok(true),
            Ok(n) => {
                into.extend_from_slice(&buf[..n]);
                *moved += 1;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        }
    }
}

/// Writes from the front of `from` until it is empty or would block.
fn write_some(io: &mut impl Write, from: &mut Vec<u8>, moved: &mut usize) -> io::Result<()> {
    while !from.is_empty() {
        match io.write(from) {
            Ok(n) => {
                from.drain(..n);
                *moved += 1;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A slab: the lowest free slot is reused, so a stale event's token may
/// name a newer connection, as in a real server.
fn insert<T>(slab: &mut Vec<Option<T>>, value: T) -> usize {
    match slab.iter().position(Option::is_none) {
        Some(i) => {
            slab[i] = Some(value);
            i
        }
        None => {
            slab.push(Some(value));
            slab.len() - 1
        }
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// The whole world of one run.
struct World {
    selector: Selector,
    rng: Rng,
    conns: Vec<Option<Conn>>,
    clients: Vec<Option<Client>>,
    /// Clients not started yet.
    to_start: usize,
    seed: u64,
    totals: Totals,
}

impl World {
    /// A connected pair: the server end and a client with a payload.
    fn start_client(&mut self) -> io::Result<()> {
        let (server, client) = UnixStream::pair()?;
        server.set_nonblocking(true)?;
        client.set_nonblocking(true)?;
        let size = self.rng.below(20_000);
        let payload: Vec<u8> = (0..size).map(|_| self.rng.below(256) as u8).collect();
        let io_seed = self.rng.next_u64();
        let conn = Conn {
            io: ShortIo::new(server, io_seed),
            pending: Vec::new(),
            eof: false,
        };
        let c = insert(&mut self.conns, conn);
        let io = ShortIo::new(client, io_seed ^ self.seed);
        let token = Token(c);
        self.selector
            .register(io_ref(&self.conns, c), token, Interest::READABLE)?;
        let client = Client {
            io,
            unsent: payload.clone(),
            payload,
            echoed: Vec::new(),
            shut: false,
        };
        let k = insert(&mut self.clients, client);
        let fd = self.clients[k]
            .as_ref()
            .map(|c| c.io.get_ref())
            .expect("just inserted");
        self.selector
            .register(fd, Token(CLIENTS + k), Interest::BOTH)?;
        self.to_start -= 1;
        Ok(())
    }

    fn handle(&mut self, event: &Event, moved: &mut usize) -> io::Result<()> {
        let t = event.token().0;
        if event.token() == WAKER {
            self.totals.wakes += 1;
            return Ok(());
        }
        let (step, stream) = if t >= CLIENTS {
            match self.clients.get_mut(t - CLIENTS).and_then(Option::as_mut) {
                Some(client) => (client.on_event(event, moved)?, client.io.get_ref()),
                None => {
                    self.totals.stale += 1;
                    return Ok(());
                }
            }
        } else {
            match self.conns.get_mut(t).and_then(Option::as_mut) {
                Some(conn) => (conn.on_event(event, moved)?, conn.io.get_ref()),
                None => {
                    self.totals.stale += 1;
                    return Ok(());
                }
            }
        };
        match step {
            Step::Keep(interest) => self.selector.modify(stream, event.token(), interest),
            Step::Close => {
                // Unregister, then drop: one place.
                self.selector.unregister(stream)?;
                if t >= CLIENTS {
                    self.totals.bytes += self.clients[t - CLIENTS]
                        .take()
                        .map_or(0, |c| c.payload.len());
                    // A new client now and then, so descriptor numbers are reused.
                    if self.to_start > 0 {
                        self.start_client()?;
                    }
                } else {
                    self.conns[t] = None;
                }
                Ok(())
            }
        }
    }

    fn done(&self) -> bool {
        self.to_start == 0
            && self.clients.iter().all(Option::is_none)
            && self.conns.iter().all(Option::is_none)
    }
}

fn io_ref(conns: &[Option<Conn>], c: usize) -> &UnixStream {
    conns[c]
        .as_ref()
        .map(|c| c.io.get_ref())
        .expect("just inserted")
}

/// One run for `seed`; panics on any broken promise.
pub fn run(seed: u64) -> Totals {
    let fds_before = open_fds();
    let totals = {
        let plan = FaultPlan::simulation(seed);
        let mut selector = Selector::with_faults(plan.clone()).expect("simulated selector");
        let waker = Waker::new(&mut selector, WAKER).expect("waker");
        plan.on_change(move || waker.wake().expect("wake"));
        let mut rng = Rng::new(seed);
        let to_start = 2 + rng.below(12);
        let mut world = World {
            selector,
            rng,
            conns: Vec::new(),
            clients: Vec::new(),
            to_start,
            seed,
            totals: Totals {
                runs: 1,
                ..Totals::default()
            },
        };
        for _ in 0..1 + world.rng.below(to_start) {
            world.start_client().expect("start a client");
        }
        event_loop(&mut world);
        assert_eq!(
            world.selector.len(),
            1,
            "only the waker is still registered"
        );
        world.totals
    };
    assert_eq!(open_fds(), fds_before, "every descriptor closed");
    totals
}

fn event_loop(world: &mut World) {
    let mut events = Events::with_capacity(16);
    let mut moved = 0;
    while !world.done() {
        world
            .selector
            .select(&mut events, Some(STUCK))
            .expect("select");
        world.totals.waits += 1;
        assert!(
            !events.is_empty(),
            "stuck: a wait of {STUCK:?} with nothing ready"
        );
        for event in &events {
            world
                .handle(&event, &mut moved)
                .expect("a connection's I/O");
        }
        // No busy loop: each wait must pay for itself in I/O calls that moved
        // bytes (faults add waits that move nothing, hence the slack).
        assert!(
            world.totals.waits <= 3 * moved + 200,
            "busy loop: {} waits for {moved} I/O calls that moved bytes",
            world.totals.waits
        );
    }
}
