//! `selector::select()`, the `select.select(rlist, wlist, xlist, timeout)`
//! shape: what it finds ready, and that it hands back the caller's objects.

mod util;

use selector::select;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

const ZERO: Option<Duration> = Some(Duration::ZERO);
const NONE: [&File; 0] = [];

/// The caller's own type: a name beside a descriptor.
struct Named {
    name: &'static str,
    file: File,
}

impl AsFd for Named {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

fn names<T: std::ops::Deref<Target = Named>>(ready: &[&T]) -> Vec<&'static str> {
    ready.iter().map(|n| n.name).collect()
}

#[test]
fn pipes_readable_and_writable() {
    let (r1, mut w1) = util::pipe();
    let (r2, w2) = util::pipe();
    w1.write_all(b"data").unwrap();
    let (rlist, wlist) = ([&r1, &r2], [&w1, &w2]);
    let ready = select(&rlist, &wlist, &NONE, ZERO).unwrap();
    assert_eq!(ready.readable.len(), 1);
    assert!(std::ptr::eq(*ready.readable[0], &r1));
    assert_eq!(ready.writable.len(), 2);
    assert!(ready.exceptional.is_empty());
    assert!(!ready.is_empty());
}

#[test]
fn hands_back_the_callers_objects_in_order() {
    let pipes: Vec<(File, File)> = (0..4).map(|_| util::pipe()).collect();
    let named: Vec<Named> = ["zero", "one", "two", "three"]
        .into_iter()
        .zip(&pipes)
        .map(|(name, (r, _))| Named {
            name,
            file: r.try_clone().unwrap(),
        })
        .collect();
    (&pipes[3].1).write_all(b"3").unwrap();
    (&pipes[1].1).write_all(b"1").unwrap();
    let ready = select(&named, &NONE, &NONE, ZERO).unwrap();
    let got: Vec<&str> = ready.readable.iter().map(|n| n.name).collect();
    assert_eq!(got, ["one", "three"]);
    assert!(std::ptr::eq(ready.readable[0], &named[1]));
    assert!(std::ptr::eq(ready.readable[1], &named[3]));
}

#[test]
fn shared_pointers_work_as_entries() {
    let (r, mut w) = util::pipe();
    w.write_all(b"x").unwrap();
    let rc = [Rc::new(Named {
        name: "rc",
        file: r,
    })];
    let arc = [Arc::new(Named {
        name: "arc",
        file: w,
    })];
    let ready = select(&rc, &arc, &rc, ZERO).unwrap();
    assert_eq!(names(&ready.readable), ["rc"]);
    assert_eq!(names(&ready.writable), ["arc"]);
    assert!(ready.exceptional.is_empty());
}

#[test]
fn regular_files_are_always_ready() {
    let file = util::regular_file();
    let files = [&file];
    let ready = select(&files, &files, &files, None).unwrap();
    assert_eq!(ready.readable.len(), 1);
    assert_eq!(ready.writable.len(), 1);
    assert!(ready.exceptional.is_empty());
}

#[test]
fn child_stdout() {
    let mut child = Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let ready = select(&[&stdout], &NONE, &NONE, Some(Duration::from_millis(50)))
        .unwrap()
        .is_empty();
    assert!(ready, "cat has said nothing yet");

    stdin.write_all(b"echo\n").unwrap();
    let readable = select(&[&stdout], &NONE, &NONE, Some(Duration::from_secs(5)))
        .unwrap()
        .readable
        .len();
    assert_eq!(readable, 1);
    let mut line = [0; 5];
    stdout.read_exact(&mut line).unwrap();
    assert_eq!(&line, b"echo\n");

    // End of input: cat exits, its stdout reaches end of file.
    drop(stdin);
    let outs = [&stdout];
    let ready = select(&outs, &NONE, &outs, Some(Duration::from_secs(5))).unwrap();
    assert_eq!(ready.readable.len(), 1);
    assert_eq!(ready.exceptional.len(), 1, "a hangup is exceptional");
    drop(ready);
    assert_eq!(stdout.read(&mut line).unwrap(), 0);
    assert!(child.wait().unwrap().success());
}

#[test]
fn closed_fd_is_invalid_input_naming_it() {
    let (r, _w) = util::pipe();
    let raw = util::closed_fd();
    // SAFETY: `raw` was closed by closed_fd and no other test reopens that
    // number; select only hands it to poll(2), which reports it invalid.
    let closed = unsafe { BorrowedFd::borrow_raw(raw) };
    let err = select(&[r.as_fd(), closed], &NONE, &NONE, ZERO).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains(&format!("fd {raw}")), "{err}");
    // The same in the other lists.
    let err = select(&NONE, &[closed], &NONE, None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let err = select(&NONE, &NONE, &[closed], None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
}

#[test]
fn fds_above_1023() {
    let limit = util::raise_fd_limit();
    if limit < 2100 {
        eprintln!("skipped: RLIMIT_NOFILE hard limit {limit} leaves no room above 1023");
        return;
    }
    let (r, mut w) = util::pipe();
    let (idle, _idle_w) = util::pipe();
    let high: OwnedFd = util::dup_at_least(&r, 1024);
    let higher: OwnedFd = util::dup_at_least(&idle, 2000);
    w.write_all(b"x").unwrap();
    let rlist = [&high, &higher];
    let ready = select(&rlist, &NONE, &rlist, ZERO).unwrap();
    assert_eq!(ready.readable.len(), 1);
    assert_eq!(ready.readable[0].as_raw_fd(), high.as_raw_fd());
    assert!(ready.exceptional.is_empty());
}

#[test]
fn timeouts_zero_finite_and_none() {
    let (r, mut w) = util::pipe();
    let rlist = [&r];
    let (ready, elapsed) = util::timed(|| select(&rlist, &NONE, &NONE, ZERO).unwrap());
    assert!(ready.is_empty());
    assert!(
        elapsed < Duration::from_millis(500),
        "zero took {elapsed:?}"
    );

    let timeout = Some(Duration::from_millis(100));
    let (ready, elapsed) = util::timed(|| select(&rlist, &NONE, &NONE, timeout).unwrap());
    assert!(ready.is_empty());
    assert!(
        elapsed >= Duration::from_millis(80) && elapsed < Duration::from_secs(2),
        "100 ms took {elapsed:?}"
    );

    // Nothing to wait for but the time, as Python's select([], [], [], t).
    let (ready, elapsed) = util::timed(|| select(&NONE, &NONE, &NONE, timeout).unwrap());
    assert!(ready.is_empty());
    assert!(elapsed >= Duration::from_millis(80), "{elapsed:?}");

    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        w.write_all(b"late").unwrap();
        w
    });
    let ready = select(&rlist, &NONE, &NONE, None).unwrap();
    assert_eq!(ready.readable.len(), 1);
    drop(writer.join().unwrap());
}

#[test]
fn tcp_urgent_data_is_exceptional() {
    let (client, server) = util::tcp_pair();
    let client = socket2::Socket::from(client);
    let inputs = [&server];
    let ready = select(&inputs, &NONE, &inputs, ZERO).unwrap();
    assert!(ready.is_empty());
    client.send_out_of_band(b"!").unwrap();
    let ready = select(&inputs, &NONE, &inputs, Some(Duration::from_secs(2))).unwrap();
    assert_eq!(ready.exceptional.len(), 1, "{ready:?}");
}

/// The tutorial passes `inputs` as both rlist and xlist: a reset connection
/// then shows in both, which its loop has to survive.
#[test]
fn tcp_reset_is_readable_and_exceptional() {
    let (client, server) = util::tcp_pair();
    let (quiet, _quiet_peer) = util::tcp_pair();
    let client = socket2::Socket::from(client);
    client.set_linger(Some(Duration::ZERO)).unwrap();
    drop(client);
    let inputs = [&server, &quiet];
    // `quiet` is writable, so each select returns at once: wait for the
    // reset by the clock, not by a count of selects.
    let mut ready = select(&inputs, &inputs, &inputs, Some(Duration::from_secs(2))).unwrap();
    util::retry(|| {
        if ready.exceptional.is_empty() {
            ready = select(&inputs, &inputs, &inputs, Some(Duration::from_millis(100))).unwrap();
        }
        !ready.exceptional.is_empty()
    });
    assert_eq!(ready.exceptional.len(), 1, "{ready:?}");
    assert!(std::ptr::eq(*ready.exceptional[0], &server));
    assert_eq!(ready.readable.len(), 1);
    assert_eq!(ready.writable.len(), 2);
}

#[test]
fn unix_stream_peer_closed() {
    let (a, b) = UnixStream::pair().unwrap();
    drop(b);
    let inputs = [&a];
    let ready = select(&inputs, &NONE, &inputs, ZERO).unwrap();
    assert_eq!(ready.readable.len(), 1);
    assert_eq!(ready.exceptional.len(), 1);
}
