//! The caller's name for a registration.

/// Caller-chosen data attached to a registration and handed back with each
/// event, like the `data` argument of Python's `selectors.register`.
///
/// A `usize` is enough to index a slab or a `Vec` of connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Token(pub usize);

impl From<Token> for usize {
    fn from(token: Token) -> usize {
        token.0
    }
}
