//! One HTTP/1.1 request as the endpoints take it (head parsed by
//! `httparse`, a body only with `Content-Length`), and the one response
//! each connection gets before it is closed.

use std::sync::Arc;

/// Bytes of request line and headers read at most.
pub const MAX_HEAD: usize = 8 * 1024;
/// Headers read at most.
pub const MAX_HEADERS: usize = 32;

/// A complete request.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    /// The target up to any `?`.
    pub path: String,
    /// Exactly `Content-Length` bytes (empty without one).
    pub body: Vec<u8>,
}

/// What the bytes read so far make.
#[derive(Debug)]
pub enum Parsed {
    /// More is needed; at most this many bytes in all.
    Incomplete(usize),
    Complete(Request),
    /// Refused before it was complete: the status and why.
    Refused(u16, String),
}

/// Parse everything read so far from one connection; a body longer than
/// `max_body` is refused (413) as soon as its length is known.
pub fn parse(buf: &[u8], max_body: usize) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let head_len = match request.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {
            return Parsed::Incomplete(MAX_HEAD)
        }
        Ok(httparse::Status::Partial) => {
            return Parsed::Refused(400, format!("request head over {MAX_HEAD} bytes"))
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Parsed::Refused(400, format!("more than {MAX_HEADERS} headers"))
        }
        Err(e) => return Parsed::Refused(400, format!("malformed request: {e}")),
    };
    let length = match body_length(request.headers) {
        Ok(n) => n,
        Err(why) => return Parsed::Refused(400, why),
    };
    if length > max_body {
        let why = match max_body {
            0 => "this endpoint takes no request body".to_string(),
            max => format!("request body of {length} bytes is over the {max}-byte limit"),
        };
        return Parsed::Refused(413, why);
    }
    let end = head_len + length;
    if buf.len() < end {
        return Parsed::Incomplete(end);
    }
    let target = request.path.unwrap_or_default();
    Parsed::Complete(Request {
        method: request.method.unwrap_or_default().to_string(),
        path: target.split('?').next().unwrap_or_default().to_string(),
        body: buf[head_len..end].to_vec(),
    })
}

/// The body's length from `Content-Length` (0 without one); chunked and
/// other transfer codings are refused, as is a length given twice.
fn body_length(headers: &[httparse::Header<'_>]) -> Result<usize, String> {
    let mut length = None;
    for h in headers {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err("Transfer-Encoding is not supported: send Content-Length".into());
        }
        if !h.name.eq_ignore_ascii_case("content-length") {
            continue;
        }
        let text = std::str::from_utf8(h.value).unwrap_or_default().trim();
        let n = Some(text)
            .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|t| t.parse::<usize>().ok())
            .ok_or_else(|| format!("invalid Content-Length {text:?}"))?;
        if length.replace(n).is_some() {
            return Err("Content-Length is given twice".into());
        }
    }
    Ok(length.unwrap_or(0))
}

/// The answer to one request.
#[derive(Debug, Clone)]
pub struct Response {
    status: u16,
    content_type: &'static str,
    body: Arc<str>,
    allow: Option<&'static str>,
    head_only: bool,
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Arc<str>>) -> Response {
        Response {
            status,
            content_type,
            body: body.into(),
            allow: None,
            head_only: false,
        }
    }

    /// A plain-text answer; the body ends with a newline.
    pub fn text(status: u16, body: &str) -> Response {
        Response::new(status, "text/plain; charset=utf-8", format!("{body}\n"))
    }

    /// A JSON answer; the body ends with a newline.
    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        Response::new(status, "application/json", format!("{value}\n"))
    }

    /// With an `Allow` header (for 405).
    pub fn allow(mut self, methods: &'static str) -> Response {
        self.allow = Some(methods);
        self
    }

    /// The answer to HEAD: the same head, no body.
    pub fn head_only(mut self, yes: bool) -> Response {
        self.head_only = yes;
        self
    }

    /// The bytes on the wire.
    pub fn into_bytes(self) -> Vec<u8> {
        let allow = self
            .allow
            .map(|a| format!("Allow: {a}\r\n"))
            .unwrap_or_default();
        let head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{allow}\
             Connection: close\r\n\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        let mut out = Vec::with_capacity(head.len() + self.body.len());
        out.extend_from_slice(head.as_bytes());
        if !self.head_only {
            out.extend_from_slice(self.body.as_bytes());
        }
        out
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        503 => "Service Unavailable",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(raw: &[u8], max_body: usize) -> (u16, String) {
        match parse(raw, max_body) {
            Parsed::Refused(status, why) => (status, why),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_body_is_read_to_its_length() {
        let raw = b"PUT /faults?x=1 HTTP/1.1\r\nContent-Length: 4\r\n\r\n[1,2]";
        match parse(&raw[..raw.len() - 2], 64) {
            Parsed::Incomplete(n) => assert_eq!(n, raw.len() - 1),
            other => panic!("{other:?}"),
        }
        let Parsed::Complete(r) = parse(raw, 64) else {
            panic!("incomplete")
        };
        assert_eq!((r.method.as_str(), r.path.as_str()), ("PUT", "/faults"));
        assert_eq!(r.body, b"[1,2");
    }

    #[test]
    fn bad_lengths_are_named() {
        let (s, why) = refused(b"PUT / HTTP/1.1\r\nContent-Length: 99\r\n\r\n", 64);
        assert_eq!(s, 413);
        assert!(why.contains("99") && why.contains("64"), "{why}");
        let (s, why) = refused(b"PUT / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 64);
        assert_eq!(s, 400);
        assert!(why.contains("Content-Length"), "{why}");
        let twice = b"PUT / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n";
        assert!(refused(twice, 64).1.contains("twice"));
        let chunked = b"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(refused(chunked, 64).1.contains("Transfer-Encoding"));
        let (s, why) = refused(b"GET / HTTP/1.1\r\nContent-Length: 1\r\n\r\nx", 0);
        assert_eq!(s, 413);
        assert!(why.contains("no request body"), "{why}");
    }

    #[test]
    fn a_405_names_what_is_allowed() {
        let r = Response::text(405, "no").allow("GET, PUT").into_bytes();
        let text = String::from_utf8(r).unwrap();
        assert!(text.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert!(text.contains("\r\nAllow: GET, PUT\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\nno\n"));
    }
}
