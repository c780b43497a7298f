//! The PROXY protocol (HAProxy's, versions 1 and 2) on `--listen-proxy`
//! listeners: every connection starts with a header naming the client the
//! proxy accepted, and that address stands for the connection from then on.
//!
//! The parsing is `ppp`'s; this module decides what a stream's first bytes
//! amount to (a complete header, not yet, or never) and bounds them. A
//! connection still reading its header is a [`Greeting`], which echoes
//! nothing; once the header is in, the loop promotes it to an echoing
//! [`crate::conn::Connection`]. It peeks, so bytes after the header stay in
//! the kernel for the echo path and are never taken for header bytes.
//!
//! A pre-echo phase is a type of its own with its own table and timeout in
//! the loop (`server/opening.rs`); another one (a TLS handshake) would be
//! another such type, and the table would then hold either.

use std::io::{self, Read};
use std::net::SocketAddr;
use std::time::Duration;

use ppp::{v1, v2, PartialResult};
use tracing::{debug, info};

use crate::stats::Counters;
use crate::stream::{would_block, Peer, Stream};

/// The most header bytes accepted. A v1 header is at most 107 bytes; a v2
/// header is 16 bytes, the addresses (at most 216) and TLVs, which proxies
/// keep far below this.
pub const MAX_HEADER: usize = 1024;

/// How long a connection on a proxy listener has to send its header.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(3);

/// A complete header: its length and the client it names (`None` for v2
/// `LOCAL`, v1 `UNKNOWN` and non-IP addresses: the proxy speaks for itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub len: usize,
    pub client: Option<SocketAddr>,
}

/// Why a stream's first bytes can never be a header we accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    Malformed,
    Oversized,
}

impl Refused {
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::Malformed => "malformed PROXY header",
            Refused::Oversized => "PROXY header too long",
        }
    }
}

/// What a [`Greeting`] came to after a read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// The header is not complete yet.
    Wait,
    /// The header is in: admit the client it names (under `--max-per-ip`)
    /// and echo from now on.
    Admit(Peer),
    /// No header can come (malformed, oversized, closed) or the socket
    /// failed: close it.
    Close,
}

/// A connection on a `--listen-proxy` listener that is still reading its
/// PROXY header: it echoes nothing and is not counted under
/// `--max-per-ip` yet.
#[derive(Debug)]
pub struct Greeting {
    stream: Stream,
    /// The proxy, until the header names the client.
    peer: Peer,
    /// The start of a header that arrived cut short (read, so that a
    /// level-triggered selector does not report the same bytes again).
    kept: Vec<u8>,
}

impl Greeting {
    pub fn new(stream: Stream, peer: Peer) -> Greeting {
        Greeting {
            stream,
            peer,
            kept: Vec::new(),
        }
    }

    pub fn stream(&self) -> &Stream {
        &self.stream
    }

    pub fn peer(&self) -> Peer {
        self.peer
    }

    /// Memory it holds, as the budget counts it.
    pub fn footprint(&self) -> usize {
        size_of::<Greeting>() + self.kept.capacity()
    }

    /// The stream, to echo on once [`Step::Admit`] said so.
    pub fn into_stream(self) -> Stream {
        self.stream
    }

    /// Take the PROXY header off the stream and nothing after it: the
    /// bytes are peeked and only the header's are read. A malformed,
    /// oversized or missing header is counted in `refused_proxy`.
    pub fn read(&mut self, buf: &mut [u8], counters: &mut Counters, trace: bool) -> Step {
        let peer = self.peer;
        match self.take_header(buf) {
            Ok(Some(header)) => {
                let client = header.client.map_or(peer, Peer::Ip);
                if trace {
                    info!(target: "trace", peer = %client, "PROXY header from {peer}: client {client}");
                }
                Step::Admit(client)
            }
            Ok(None) => Step::Wait,
            Err(Some(why)) => {
                counters.refused_proxy += 1;
                debug!(%peer, "closing: {why}");
                if trace {
                    info!(target: "trace", %peer, "closing {peer}: {why}");
                }
                Step::Close
            }
            Err(None) => Step::Close,
        }
    }

    /// `Ok(Some(header))` once it is in, `Ok(None)` while it is not; `Err`
    /// with the reason a header can never come, or `Err(None)` when the
    /// socket failed.
    fn take_header(&mut self, buf: &mut [u8]) -> Result<Option<Header>, Option<&'static str>> {
        const CLOSED: &str = "closed before sending a PROXY header";
        let Stream::Tcp(tcp) = &mut self.stream else {
            return Err(None); // proxy listeners are TCP
        };
        let kept = self.kept.len();
        buf[..kept].copy_from_slice(&self.kept);
        let failed = |e: io::Error| {
            debug!(peer = %self.peer, error = %e, "read failed");
            None
        };
        let peeked = match tcp.peek(&mut buf[kept..MAX_HEADER]) {
            Ok(0) => return Err(Some(CLOSED)),
            Ok(n) => n,
            Err(e) if would_block(&e) => return Ok(None),
            Err(e) => return Err(failed(e)),
        };
        let header = parse(&buf[..kept + peeked]).map_err(|why| Some(why.as_str()))?;
        // Take exactly the header's bytes (or, cut short, all that came).
        let take = header.map_or(peeked, |h| h.len - kept);
        let start = kept + peeked;
        let mut got = 0;
        while got < take {
            match tcp.read(&mut buf[start + got..start + take]) {
                Ok(0) => return Err(Some(CLOSED)),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(failed(e)),
            }
        }
        if header.is_none() {
            self.kept.extend_from_slice(&buf[start..start + take]);
        }
        Ok(header)
    }
}

/// What the first bytes of a stream amount to: `Ok(Some(header))` when they
/// start with a complete header, `Ok(None)` while more bytes could still
/// complete one, `Err` when no more bytes can.
pub fn parse(input: &[u8]) -> Result<Option<Header>, Refused> {
    const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
    const V1_START: &[u8] = b"PROXY ";
    /// A v1 header is one line of at most 107 bytes, CRLF included.
    const V1_MAX: usize = 107;
    if input.starts_with(V2_SIGNATURE) || V2_SIGNATURE.starts_with(input) {
        return parse_v2(input);
    }
    if !input.starts_with(V1_START) {
        // Not a v2 header, and not a v1 one unless it is still arriving.
        return match V1_START.starts_with(input) {
            true => Ok(None),
            false => Err(Refused::Malformed),
        };
    }
    // v1 is complete at its first CRLF; ppp judges the line. (Its own idea of
    // a partial line is unreliable for lines cut mid-field.)
    let Some(end) = input.windows(2).position(|w| w == b"\r\n") else {
        return match input.len() < V1_MAX {
            true => Ok(None),
            false => Err(Refused::Oversized),
        };
    };
    let line = &input[..end + 2];
    if line.len() > V1_MAX {
        return Err(Refused::Oversized);
    }
    match v1::Header::try_from(line) {
        Ok(header) => Ok(Some(Header {
            len: line.len(),
            client: match header.addresses {
                v1::Addresses::Tcp4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
                v1::Addresses::Tcp6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
                v1::Addresses::Unknown => None,
            },
        })),
        Err(_) => Err(Refused::Malformed),
    }
}

/// A v2 header: its length is stated up front, so an oversized one is
/// refused as soon as the first 16 bytes are in.
fn parse_v2(input: &[u8]) -> Result<Option<Header>, Refused> {
    match v2::Header::try_from(input) {
        Ok(header) if header.len() > MAX_HEADER => Err(Refused::Oversized),
        Ok(header) => Ok(Some(Header {
            len: header.len(),
            client: match (header.command, header.addresses) {
                (v2::Command::Local, _) => None,
                (v2::Command::Proxy, v2::Addresses::IPv4(a)) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                (v2::Command::Proxy, v2::Addresses::IPv6(a)) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                (v2::Command::Proxy, _) => None,
            },
        })),
        Err(v2::ParseError::Partial(_, declared)) if 16 + declared > MAX_HEADER => {
            Err(Refused::Oversized)
        }
        Err(e) if e.is_incomplete() => Ok(None),
        Err(_) => Err(Refused::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v2_header(command: v2::Command, src: &str, dst: &str) -> Vec<u8> {
        let addresses: v2::Addresses = (
            src.parse::<SocketAddr>().unwrap(),
            dst.parse::<SocketAddr>().unwrap(),
        )
            .into();
        v2::Builder::with_addresses(v2::Version::Two | command, v2::Protocol::Stream, addresses)
            .build()
            .unwrap()
    }

    #[test]
    fn v1_headers_name_the_client_and_their_length() {
        let text = b"PROXY TCP4 192.0.2.1 198.51.100.2 5000 80\r\nhello";
        let want = Header {
            len: text.len() - 5,
            client: Some("192.0.2.1:5000".parse().unwrap()),
        };
        assert_eq!(parse(text), Ok(Some(want)));
        let v6 = b"PROXY TCP6 2001:db8::1 2001:db8::2 4000 7\r\n";
        assert_eq!(
            parse(v6).unwrap().unwrap().client,
            Some("[2001:db8::1]:4000".parse().unwrap())
        );
        let unknown = b"PROXY UNKNOWN\r\n";
        assert_eq!(
            parse(unknown),
            Ok(Some(Header {
                len: 15,
                client: None
            }))
        );
    }

    #[test]
    fn every_cut_of_a_header_waits_for_more() {
        let v1 = b"PROXY TCP4 192.0.2.1 198.51.100.2 5000 80\r\n".to_vec();
        let v2 = v2_header(v2::Command::Proxy, "192.0.2.1:5000", "198.51.100.2:80");
        for header in [v1, v2] {
            for cut in 0..header.len() {
                assert_eq!(parse(&header[..cut]), Ok(None), "cut at {cut}");
            }
            assert_eq!(parse(&header).unwrap().unwrap().len, header.len());
        }
    }

    #[test]
    fn v2_proxy_names_the_client_and_local_speaks_for_the_proxy() {
        let proxy = v2_header(v2::Command::Proxy, "[2001:db8::7]:6000", "[2001:db8::8]:7");
        let mut with_data = proxy.clone();
        with_data.extend_from_slice(b"payload");
        assert_eq!(
            parse(&with_data),
            Ok(Some(Header {
                len: proxy.len(),
                client: Some("[2001:db8::7]:6000".parse().unwrap()),
            }))
        );
        let local = v2_header(v2::Command::Local, "127.0.0.1:1", "127.0.0.1:2");
        assert_eq!(parse(&local).unwrap().unwrap().client, None);
    }

    #[test]
    fn garbage_and_oversized_headers_are_refused() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Err(Refused::Malformed));
        assert_eq!(parse(b"hello world"), Err(Refused::Malformed));
        assert_eq!(parse(b"PROXY TCP4 1.2.3.4\r\n"), Err(Refused::Malformed));
        let long = [b"PROXY TCP4 ".as_slice(), &[b'1'; 120]].concat();
        assert_eq!(parse(&long), Err(Refused::Oversized));
        // A v2 header that declares 2,000 bytes of addresses and TLVs.
        let mut big = v2_header(v2::Command::Proxy, "192.0.2.1:5000", "198.51.100.2:80");
        big[14..16].copy_from_slice(&2000u16.to_be_bytes());
        assert_eq!(parse(&big[..16]), Err(Refused::Oversized));
    }

    proptest! {
        /// Arbitrary bytes: never a panic; a complete header never claims
        /// more bytes than were given or than the limit; and anything with
        /// room left that is still "incomplete" stays under the limit.
        #[test]
        fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..1500)) {
            match parse(&input) {
                Ok(Some(h)) => prop_assert!(h.len <= input.len() && h.len <= MAX_HEADER),
                Ok(None) => prop_assert!(input.len() < MAX_HEADER),
                Err(_) => {}
            }
        }

        /// Real headers followed by arbitrary bytes: the header's length is
        /// found exactly, whatever follows.
        #[test]
        fn headers_followed_by_anything(tail in proptest::collection::vec(any::<u8>(), 0..200),
                                        v2_first in any::<bool>(), port in 1u16..) {
            let src = format!("10.1.2.3:{port}");
            let header = if v2_first {
                v2_header(v2::Command::Proxy, &src, "10.0.0.1:7")
            } else {
                format!("PROXY TCP4 10.1.2.3 10.0.0.1 {port} 7\r\n").into_bytes()
            };
            let input = [header.as_slice(), &tail].concat();
            let got = parse(&input).unwrap().unwrap();
            prop_assert_eq!(got.len, header.len());
            prop_assert_eq!(got.client, Some(src.parse().unwrap()));
        }
    }
}
