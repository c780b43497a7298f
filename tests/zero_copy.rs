//! `--zero-copy`: connections that switch between copying and splice keep byte order, pipes
//! go back when connections close, and a full pipe stops reading like a full queue does.

mod util;

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use util::{connect, read_n, Pattern, Server};

/// A stream of small messages, then bulk writes, then small ones again, through one
/// connection under `--zero-copy auto`: the connection moves to splice and back, and every
/// byte comes back once, in order.
#[test]
fn a_flow_that_switches_path_keeps_byte_order() {
    let server = Server::start(&["--zero-copy", "auto", "--trace"]);
    let stream = connect(server.addr());
    let pattern = Pattern::new(8);
    let mut offset = 0u64;
    let mut exchange = |len: usize, rounds: usize| {
        for _ in 0..rounds {
            (&stream).write_all(pattern.at(offset, len)).unwrap();
            let back = read_n(&stream, len);
            assert!(
                back == pattern.at(offset, len),
                "echo differs at stream offset {offset} ({len}-byte messages)"
            );
            offset += len as u64;
        }
    };
    exchange(100, 20);
    exchange(256 * 1024, 8);
    exchange(100, 20);
    exchange(512 * 1024, 4);
    exchange(10, 20);
    let trace = util::wait_for(Duration::from_secs(5), || {
        let err = server.stderr();
        (err.contains("moves to zero-copy") && err.contains("moves back to copying")).then_some(err)
    });
    assert!(
        trace.is_some(),
        "the trace never showed both switches:\n{}",
        server.stderr()
    );
}

/// 10,000 connections that each move a bulk message through a pipe, opened and closed in
/// batches: the server's descriptors return to their baseline, so no pipe outlives its
/// connection (the pool keeps at most a few empty ones, opened before the baseline).
#[test]
fn ten_thousand_bulk_connections_leave_fds_at_baseline() {
    const CONNECTIONS: usize = 10_000;
    const BATCH: usize = 250;
    const EACH: usize = 16 * 1024;
    let limit = util::raise_nofile();
    if limit < 2 * BATCH as u64 + 200 {
        skip!("RLIMIT_NOFILE hard limit {limit} is too low for {BATCH} clients at once");
    }
    let server = Server::start(&["--zero-copy", "always"]);
    let pattern = Pattern::new(9);
    // Warm the pool to its kept size, so the baseline includes the pipes it keeps.
    let warm: Vec<TcpStream> = (0..BATCH).map(|_| connect(server.addr())).collect();
    for (i, c) in warm.iter().enumerate() {
        (&*c).write_all(pattern.at(i as u64, EACH)).unwrap();
    }
    for (i, c) in warm.iter().enumerate() {
        assert!(read_n(c, EACH) == pattern.at(i as u64, EACH));
    }
    drop(warm);
    let idle = |server: &Server, want: usize| {
        util::wait_until(Duration::from_secs(10), || server.fd_count() <= want)
    };
    thread::sleep(Duration::from_millis(200));
    let baseline = server.fd_count();
    for batch in 0..CONNECTIONS / BATCH {
        let clients: Vec<TcpStream> = (0..BATCH).map(|_| connect(server.addr())).collect();
        for (i, c) in clients.iter().enumerate() {
            (&*c)
                .write_all(pattern.at((batch * BATCH + i) as u64, EACH))
                .unwrap();
        }
        for (i, c) in clients.iter().enumerate() {
            let back = read_n(c, EACH);
            assert!(
                back == pattern.at((batch * BATCH + i) as u64, EACH),
                "batch {batch}, client {i}: echo differs"
            );
        }
    }
    assert!(
        idle(&server, baseline),
        "server holds {} descriptors after 10,000 bulk connections closed (baseline {baseline})",
        server.fd_count()
    );
}

/// A client that writes without reading, on the splice path with a small `--max-pending`:
/// reading stops (the stats line shows it paused and spliced) and nothing is lost once it
/// reads.
#[test]
fn a_full_pipe_under_a_slow_reader_stops_reading() {
    const TOTAL: u64 = 16 << 20;
    let server = Server::start(&[
        "--zero-copy",
        "always",
        "--max-pending",
        "65536",
        "--stats-interval",
        "0.2",
    ]);
    let stream = connect(server.addr());
    let pattern = Pattern::new(10);
    let progress = AtomicUsize::new(0);
    thread::scope(|s| {
        let writer = s.spawn(|| pattern.write(&stream, TOTAL, 64 * 1024, &progress));
        let paused = util::wait_for(Duration::from_secs(10), || {
            let err = server.stderr();
            err.lines()
                .rev()
                .find(|l| l.contains("paused=1") && l.contains("spliced=1"))
                .map(str::to_string)
        });
        assert!(
            paused.is_some(),
            "no stats line showed the spliced connection paused:\n{}",
            server.stderr()
        );
        let written = progress.load(Ordering::Relaxed) as u64;
        assert!(
            written < TOTAL,
            "the client wrote all {TOTAL} bytes although nobody read"
        );
        assert_eq!(
            pattern.verify(&stream, TOTAL),
            TOTAL,
            "bytes echoed in order"
        );
        assert_eq!(writer.join().unwrap(), TOTAL);
    });
}
