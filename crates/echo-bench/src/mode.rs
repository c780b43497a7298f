//! The modes, one module each: a single run, sweep, search, merge and
//! chaos. Each holds its flags and its `run`; they share the flag groups of
//! [`crate::cli`] and the measurement of [`crate::run`].

pub mod chaos;
pub mod merge;
pub mod search;
pub mod single;
pub mod sweep;
