//! One chaos session: its state, how it starts, and how it advances on
//! readiness.

use super::{ChaosConfig, ChaosReport, Kind, Rng};
use crate::net::{self, describe};
use crate::pattern;
use selector::{Interest, Selector, Token};
use socket2::SockRef;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

pub(super) enum Link {
    Connecting(socket2::Socket),
    Open(TcpStream),
    Gone,
}

pub(super) struct Session {
    pub(super) link: Link,
    pub(super) kind: Kind,
    pub(super) id: u64,
    pub(super) total: u64,
    pub(super) sent: u64,
    pub(super) recvd: u64,
    pub(super) write_max: usize,
    pub(super) read_max: usize,
    /// Reading paused until then (ns since the start).
    pub(super) read_at: u64,
    /// Pause after each read (slow reader), until `slow_until`.
    pub(super) read_pause: u64,
    pub(super) slow_until: u64,
    /// Reset or vanish once this much is sent.
    pub(super) end_at: u64,
    pub(super) shut: bool,
    pub(super) interest: Option<Interest>,
    pub(super) last_progress: u64,
}

pub(super) enum End {
    Ok,
    Failed(Failure, String),
}

#[derive(Clone, Copy)]
pub(super) enum Failure {
    Mismatch,
    Connect,
    Lost,
}

pub(super) fn start(
    cfg: &ChaosConfig,
    kind: Kind,
    id: u64,
    rng: &mut Rng,
    now: u64,
    selector: &mut Selector,
    slot: usize,
) -> Result<Session, String> {
    let (socket, _) = net::start_connect(cfg.addr, None)?;
    selector
        .register(&socket, Token(slot), Interest::WRITABLE)
        .map_err(|e| format!("register: {}", describe(&e)))?;
    let ms = 1_000_000;
    let (total, write_max, read_max, read_at, read_pause) = match kind {
        Kind::Normal => (rng.range(1, 64 * 1024), 64 * 1024, 256 * 1024, 0, 0),
        Kind::Tiny => (rng.range(1, 300), 1, 1, 0, 0),
        Kind::Huge => (
            rng.range(1 << 20, cfg.max_bytes.max(1 << 20)),
            1 << 20,
            256 * 1024,
            0,
            0,
        ),
        Kind::Slow => (
            rng.range(4096, 256 * 1024),
            64 * 1024,
            rng.range(1, 512) as usize,
            0,
            rng.range(1, 5) * ms,
        ),
        Kind::Stalled => (
            rng.range(256 * 1024, 2 << 20),
            256 * 1024,
            256 * 1024,
            now + rng.range(100, 800) * ms,
            0,
        ),
        Kind::HalfClose => (rng.range(0, 128 * 1024), 64 * 1024, 256 * 1024, 0, 0),
        Kind::Reset => (rng.range(1024, 1 << 20), 64 * 1024, 256 * 1024, u64::MAX, 0),
        Kind::Vanish => (rng.range(0, 4096), 4096, 4096, u64::MAX, 0),
        Kind::Storm => (rng.range(1, 200), 64 * 1024, 256 * 1024, 0, 0),
    };
    let end_at = match kind {
        Kind::Reset => rng.range(1, total),
        Kind::Vanish => rng.range(0, total),
        _ => u64::MAX,
    };
    Ok(Session {
        link: Link::Connecting(socket),
        kind,
        id,
        total,
        sent: 0,
        recvd: 0,
        write_max,
        read_max,
        read_at,
        read_pause,
        slow_until: now + rng.range(200, 1500) * ms,
        end_at,
        shut: false,
        interest: Some(Interest::WRITABLE),
        last_progress: now,
    })
}

/// Keep the registration in line with what the session wants now; with
/// nothing wanted (a paused reader with nothing to write) it is dropped.
pub(super) fn set_interest(selector: &mut Selector, s: &mut Session, slot: usize, now: u64) {
    let Link::Open(stream) = &s.link else { return };
    let read = now >= s.read_at;
    let write = s.sent < s.total.min(s.end_at);
    let want = match (read, write) {
        (true, true) => Some(Interest::BOTH),
        (true, false) => Some(Interest::READABLE),
        (false, true) => Some(Interest::WRITABLE),
        (false, false) => None,
    };
    if want == s.interest {
        return;
    }
    let result = match (s.interest, want) {
        (Some(_), Some(w)) => selector.modify(stream, Token(slot), w),
        (None, Some(w)) => selector.register(stream, Token(slot), w),
        (Some(_), None) => selector.unregister(stream).map(drop),
        (None, None) => Ok(()),
    };
    if result.is_ok() {
        s.interest = want;
    }
}

pub(super) fn close(selector: &mut Selector, slot: &mut Option<Session>) {
    if let Some(s) = slot.take() {
        match &s.link {
            Link::Connecting(socket) => drop(selector.unregister(socket)),
            Link::Open(stream) if s.interest.is_some() => drop(selector.unregister(stream)),
            Link::Open(_) | Link::Gone => {}
        }
    }
}

/// Advance a session on readiness; `Some` when it has ended.
pub(super) fn step(
    cfg: &ChaosConfig,
    s: &mut Session,
    buf: &mut [u8],
    scratch: &mut [u8],
    report: &mut ChaosReport,
    now: u64,
    writable: bool,
) -> Option<End> {
    let tag = format!("session {} ({})", s.id, s.kind.name());
    if let Link::Connecting(socket) = &s.link {
        if let Err(msg) = net::finish_connect(socket, cfg.addr) {
            return Some(End::Failed(Failure::Connect, format!("{tag}: {msg}")));
        }
        let Link::Connecting(socket) = std::mem::replace(&mut s.link, Link::Gone) else {
            return None;
        };
        s.link = Link::Open(TcpStream::from(socket));
        s.last_progress = now;
        if s.kind == Kind::Vanish && s.end_at == 0 {
            return Some(End::Ok);
        }
    }
    let Link::Open(stream) = &mut s.link else {
        return None;
    };
    // Write.
    let limit = s.total.min(s.end_at);
    if writable && s.sent < limit {
        let len = ((limit - s.sent) as usize).min(s.write_max).min(buf.len());
        pattern::fill(pattern::seed(s.id, 0), s.sent as usize, &mut buf[..len]);
        match stream.write(&buf[..len]) {
            Ok(n) => {
                s.sent += n as u64;
                report.bytes_sent += n as u64;
                s.last_progress = now;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Some(lost(s, &tag, format!("write: {}", describe(&e)))),
        }
    }
    if s.sent >= s.end_at {
        // Reset and vanish end here, whatever is in flight.
        if s.kind == Kind::Reset {
            let _ = SockRef::from(&*stream).set_linger(Some(Duration::ZERO));
        }
        return Some(End::Ok);
    }
    if s.kind == Kind::HalfClose && s.sent == s.total && !s.shut {
        if let Err(e) = stream.shutdown(Shutdown::Write) {
            return Some(lost(s, &tag, format!("shutdown: {}", describe(&e))));
        }
        s.shut = true;
    }
    // Read.
    if now < s.read_at {
        return None;
    }
    let len = s.read_max.min(buf.len());
    match stream.read(&mut buf[..len]) {
        Ok(0) => {
            if s.recvd == s.total && s.shut {
                return Some(End::Ok);
            }
            let msg = format!("end of file after {} of {} bytes echoed", s.recvd, s.total);
            return Some(lost(s, &tag, msg));
        }
        Ok(n) => {
            if s.recvd + n as u64 > s.sent {
                let msg = format!(
                    "{tag}: {} more bytes echoed than sent",
                    s.recvd + n as u64 - s.sent
                );
                return Some(End::Failed(Failure::Mismatch, msg));
            }
            if !pattern::matches(pattern::seed(s.id, 0), s.recvd as usize, &buf[..n], scratch) {
                let msg = format!(
                    "{tag}: echoed bytes {}..{} differ from those sent",
                    s.recvd,
                    s.recvd + n as u64
                );
                return Some(End::Failed(Failure::Mismatch, msg));
            }
            s.recvd += n as u64;
            report.bytes_verified += n as u64;
            s.last_progress = now;
            if now < s.slow_until {
                s.read_at = now + s.read_pause;
            } else {
                s.read_max = buf.len();
            }
            if s.recvd == s.total && s.kind != Kind::HalfClose {
                return Some(End::Ok);
            }
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => return Some(lost(s, &tag, format!("read: {}", describe(&e)))),
    }
    None
}

fn lost(s: &Session, tag: &str, msg: String) -> End {
    if s.kind.completes() {
        End::Failed(Failure::Lost, format!("{tag}: {msg}"))
    } else {
        End::Ok
    }
}
