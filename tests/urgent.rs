//! Urgent data (`MSG_OOB`, issue 22 bug 1) is echoed inline, as an ordinary byte in its place
//! in the stream, on every backend and `--zero-copy` mode: a bulk flow (which `auto` and
//! `always` move to splice), then one urgent byte, then more bytes. The urgent byte comes
//! back in its place, the bytes after it echo, the server uses next to no CPU while the
//! connection waits, and a FIN ends the connection with a clean end of file.

mod util;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::Duration;

use util::{connect, read_n, read_to_eof, Pattern, Server, TempDir};

/// Bulk writes: 256 KiB reads on the server's side, so `auto` moves to splice.
const BULK: usize = 256 * 1024;
const BULK_ROUNDS: usize = 8;
/// The window over which the server's CPU time is read, and the most it may use in it: an
/// idle server uses next to none; a spinning loop uses the whole window.
const CPU_WINDOW: Duration = Duration::from_secs(1);
const CPU_MAX: Duration = Duration::from_millis(300);

fn urgent_byte_is_echoed_inline(backend: &str, zero_copy: &str) {
    let server = Server::start(&["--backend", backend, "--zero-copy", zero_copy]);
    let stream = connect(server.addr());
    let what = format!("--backend {backend} --zero-copy {zero_copy}");
    bulk_then_urgent(&server, &stream, &what);
    stream.shutdown(Shutdown::Write).unwrap();
    ends_cleanly(&stream, &what);
}

/// The same over a Unix-domain socket (Linux takes `MSG_OOB` there since 5.15).
#[test]
fn urgent_byte_on_a_unix_socket_issue_22() {
    let (probe, _peer) = UnixStream::pair().expect("socketpair");
    if let Err(e) = socket2::SockRef::from(&probe).send_out_of_band(b"?") {
        skip!("this kernel takes no MSG_OOB on Unix-domain sockets: {e}");
    }
    let dir = TempDir::new("urgent");
    let path = dir.path().join("echo.sock");
    for zero_copy in ["off", "auto", "always"] {
        let server = Server::start(&["--unix", path.to_str().unwrap(), "--zero-copy", zero_copy]);
        let stream = UnixStream::connect(&server.unix[0]).expect("connect");
        stream.set_read_timeout(Some(util::IO_TIMEOUT)).unwrap();
        let what = format!("unix socket, --zero-copy {zero_copy}");
        bulk_then_urgent(&server, &stream, &what);
        stream.shutdown(Shutdown::Write).unwrap();
        ends_cleanly(&stream, &what);
    }
}

/// A bulk flow, then one urgent byte and ordinary bytes behind it: the echo is all of them,
/// in order, and the server stays idle meanwhile.
fn bulk_then_urgent<S: AsFd>(server: &Server, stream: &S, what: &str)
where
    for<'a> &'a S: Read + Write,
{
    let pattern = Pattern::new(22);
    for round in 0..BULK_ROUNDS {
        let offset = (round * BULK) as u64;
        (&*stream).write_all(pattern.at(offset, BULK)).unwrap();
        let back = read_n(stream, BULK);
        assert!(
            back == pattern.at(offset, BULK),
            "{what}: bulk echo differs in round {round}"
        );
    }

    socket2::SockRef::from(stream)
        .send_out_of_band(b"!")
        .expect("send an urgent byte");
    let after = b"the bytes after the urgent one";
    (&*stream).write_all(after).unwrap();

    let before = server.cpu_time();
    // A measurement window, not a wait for an event.
    thread::sleep(CPU_WINDOW);
    let used = server.cpu_time().saturating_sub(before);
    assert!(
        used < CPU_MAX,
        "{what}: the server used {used:?} of CPU in {CPU_WINDOW:?} after an urgent byte"
    );
    let mut want = b"!".to_vec();
    want.extend_from_slice(after);
    let back = read_n(stream, want.len());
    assert!(
        back == want,
        "{what}: after the bulk flow, {:?} came back instead of {:?} (the urgent byte, then \
         those after it)",
        String::from_utf8_lossy(&back),
        String::from_utf8_lossy(&want),
    );
}

/// After the client's FIN: nothing more, then a clean end of file (no reset).
fn ends_cleanly<S>(stream: &S, what: &str)
where
    for<'a> &'a S: Read,
{
    let (rest, eof) = read_to_eof(stream, 1 << 20);
    assert!(
        rest.is_empty() && eof,
        "{what}: after FIN: {} more bytes, clean end of file: {eof}",
        rest.len()
    );
}

macro_rules! every_path {
    ($($backend:ident: $($mode:ident),*;)*) => {$(
        mod $backend {
            $(
                mod $mode {
                    #[test]
                    fn urgent_byte_issue_22() {
                        super::super::urgent_byte_is_echoed_inline(
                            stringify!($backend),
                            stringify!($mode),
                        );
                    }
                }
            )*
        }
    )*};
}

every_path! {
    epoll: off, auto, always;
    poll: off, auto, always;
    select: off, auto, always;
}
