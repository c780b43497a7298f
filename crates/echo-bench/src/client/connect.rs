//! The connect phase: batches of non-blocking connects, each confirmed by
//! the echo of message 0.

use super::{Link, Worker, CONNECT_BATCH};
use crate::net::{self, describe};
use anyhow::{anyhow, Result};
use selector::{Interest, Token};
use std::net::TcpStream;
use std::time::{Duration, Instant};

impl Worker<'_> {
    /// Connect every connection, at most [`CONNECT_BATCH`] at a time. A
    /// connection counts as connected once message 0 has come back: a
    /// completed handshake alone may sit in a full accept queue, and its
    /// first message would then wait a retransmission timeout (a second or
    /// more) inside the measured window.
    pub(super) fn connect_all(&mut self) -> Result<()> {
        let addr = self.cfg.addr;
        let n = self.conns.len();
        let mut next = 0;
        let mut last_sweep = Instant::now();
        let timeout = self.cfg.connect_timeout;
        for c in &mut self.conns {
            c.due = 1;
        }
        loop {
            while next - self.settled < CONNECT_BATCH && next < n {
                self.start_connect(next);
                next += 1;
            }
            if next == n && self.settled == n {
                break;
            }
            self.selector
                .select(&mut self.events, Some(Duration::from_millis(100)))
                .map_err(|e| anyhow!("select: {}", describe(&e)))?;
            let events = std::mem::take(&mut self.events);
            for ev in &events {
                let i = ev.token().0;
                match self.conns.get(i).map(|c| &c.link) {
                    Some(Link::Connecting(socket)) => match net::finish_connect(socket, addr) {
                        Ok(()) => self.opened(i),
                        Err(msg) => self.connect_failed(i, msg),
                    },
                    Some(Link::Open(_)) => self.read(i),
                    _ => {}
                }
                self.check_ready(i);
            }
            self.events = events;
            if last_sweep.elapsed() >= Duration::from_millis(100) {
                last_sweep = Instant::now();
                for i in 0..next {
                    let c = &self.conns[i];
                    if c.ready || c.started.elapsed() <= timeout {
                        continue;
                    }
                    let secs = timeout.as_secs_f64();
                    match c.link {
                        Link::Connecting(_) => {
                            self.connect_failed(i, format!("connect {addr}: timed out"))
                        }
                        Link::Open(_) => self.connect_failed(
                            i,
                            format!("connect {addr}: no echo within {secs} s of connecting"),
                        ),
                        _ => {}
                    }
                }
            }
        }
        let due = if self.share.rate.is_none() {
            u64::MAX
        } else {
            1
        };
        for c in &mut self.conns {
            c.due = due;
        }
        Ok(())
    }

    fn start_connect(&mut self, i: usize) {
        let addr = self.cfg.addr;
        let source = net::source_for(addr, self.cfg.source_base, self.conns[i].id);
        self.conns[i].started = Instant::now();
        match net::start_connect(addr, source) {
            Ok((socket, done)) => {
                let interest = if done {
                    Interest::READABLE
                } else {
                    Interest::WRITABLE
                };
                if let Err(e) = self.selector.register(&socket, Token(i), interest) {
                    return self.connect_failed(i, format!("register: {}", describe(&e)));
                }
                self.conns[i].link = Link::Connecting(socket);
                if done {
                    self.opened(i);
                }
            }
            Err(msg) => self.connect_failed(i, msg),
        }
    }

    /// The handshake is done: send message 0.
    fn opened(&mut self, i: usize) {
        let Link::Connecting(socket) = std::mem::replace(&mut self.conns[i].link, Link::Idle)
        else {
            return;
        };
        let stream = TcpStream::from(socket);
        if let Err(e) = self.selector.modify(&stream, Token(i), Interest::READABLE) {
            self.conns[i].link = Link::Open(stream);
            return self.connect_failed(i, format!("modify: {}", describe(&e)));
        }
        self.conns[i].link = Link::Open(stream);
        self.write(i);
    }

    fn check_ready(&mut self, i: usize) {
        let size = self.cfg.size as u64;
        if let Some(c) = self.conns.get_mut(i) {
            if !c.ready && c.recvd >= size && matches!(c.link, Link::Open(_)) {
                c.ready = true;
                self.settled += 1;
                self.stats.connected += 1;
            }
        }
    }

    fn connect_failed(&mut self, i: usize, msg: String) {
        self.close(i);
        self.stats.errors.connect += 1;
        self.stats.note(|| msg);
    }
}
