//! [`ShortIo`]: the simulation's side of reading and writing, for a test
//! that runs its event loop on [`FaultPlan::simulation`](crate::FaultPlan::simulation).

use crate::Rng;
use std::io::{self, Read, Write};

/// Reads and writes through `S`, cut short as a seed says: each call may
/// fail with `Interrupted` or a spurious `WouldBlock`, or move fewer bytes
/// than asked (at least one). What a kernel does only under load, on every
/// run.
#[derive(Debug)]
pub struct ShortIo<S> {
    inner: S,
    rng: Rng,
}

impl<S> ShortIo<S> {
    /// `inner`, with calls cut short by a generator seeded with `seed`.
    pub fn new(inner: S, seed: u64) -> ShortIo<S> {
        ShortIo {
            inner,
            rng: Rng::new(seed),
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// How much of `len` bytes this call may move, or the error it fails
    /// with instead.
    fn cut(&mut self, len: usize) -> io::Result<usize> {
        match self.rng.below(10) {
            0 => Err(io::ErrorKind::Interrupted.into()),
            1 => Err(io::ErrorKind::WouldBlock.into()),
            _ if len == 0 => Ok(0),
            _ => Ok(1 + self.rng.below(len)),
        }
    }
}

impl<S: Read> Read for ShortIo<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.cut(buf.len())?;
        self.inner.read(&mut buf[..n])
    }
}

impl<S: Write> Write for ShortIo<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.cut(buf.len())?;
        self.inner.write(&buf[..n])
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
