//! A signal storm (SIGUSR1 about every millisecond) while a select waits:
//! each `EINTR` is retried with the time that remains, so a 200 ms timeout
//! still returns after about 200 ms, empty, and not early with an error.
//!
//! This binary has no test harness (see Cargo.toml): the kernel delivers a
//! process-directed signal to the main thread when that thread does not
//! block it, so the selecting code must run on the main thread for the
//! signals to interrupt it. A handler records which thread each signal hit,
//! and every case checks that its waits really were interrupted.

use selector::{BackendKind, Events, Interest, Selector, Token, Waker};
use signal_hook::consts::SIGUSR1;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// The main thread's id, for the handler to compare against.
static MAIN_TID: AtomicI32 = AtomicI32::new(0);
/// Signals that landed on the main thread.
static MAIN_HITS: AtomicUsize = AtomicUsize::new(0);
/// Signals that hit the main thread during the last case.
static LAST_HITS: AtomicUsize = AtomicUsize::new(0);

const TIMEOUT: Duration = Duration::from_millis(200);

/// Sends SIGUSR1 to this process about every millisecond until dropped.
struct Storm {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<usize>>,
}

impl Storm {
    fn start() -> Storm {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let pid = rustix::process::getpid();
            let mut sent = 0;
            while !flag.load(Ordering::Relaxed) {
                rustix::process::kill_process(pid, rustix::process::Signal::USR1).unwrap();
                sent += 1;
                thread::sleep(Duration::from_millis(1));
            }
            sent
        });
        Storm {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the storm and returns how many signals it sent.
    fn stop(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().map_or(0, |t| t.join().unwrap())
    }
}

impl Drop for Storm {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Runs `wait` under a storm and checks that the main thread was hit.
fn under_storm<T>(name: &str, wait: impl FnOnce() -> T) -> (T, Duration) {
    let before = MAIN_HITS.load(Ordering::Relaxed);
    let storm = Storm::start();
    // Let the storm get going before the wait starts.
    thread::sleep(Duration::from_millis(5));
    let start = Instant::now();
    let value = wait();
    let elapsed = start.elapsed();
    let sent = storm.stop();
    let hits = MAIN_HITS.load(Ordering::Relaxed) - before;
    LAST_HITS.store(hits, Ordering::Relaxed);
    assert!(
        hits >= 10,
        "{name}: only {hits} of {sent} signals interrupted the selecting thread"
    );
    (value, elapsed)
}

fn check_elapsed(name: &str, elapsed: Duration) {
    assert!(
        elapsed >= TIMEOUT - Duration::from_millis(10) && elapsed < Duration::from_secs(2),
        "{name}: a {TIMEOUT:?} timeout under a signal storm took {elapsed:?}"
    );
}

fn selector_timeout(kind: BackendKind) {
    let name = format!("{kind}::selector_timeout");
    let (r, _w) = rustix::pipe::pipe().unwrap();
    let mut selector = Selector::with_backend(kind).unwrap();
    selector.register(&r, Token(1), Interest::READABLE).unwrap();
    let mut events = Events::with_capacity(8);
    let (result, elapsed) = under_storm(&name, || selector.select(&mut events, Some(TIMEOUT)));
    if let Err(e) = result {
        panic!("{name}: select failed under a signal storm: {e}");
    }
    assert!(events.is_empty(), "{name}: {events:?}");
    check_elapsed(&name, elapsed);
}

fn selector_no_timeout_woken(kind: BackendKind) {
    let name = format!("{kind}::selector_no_timeout_woken");
    let mut selector = Selector::with_backend(kind).unwrap();
    let waker = Waker::new(&mut selector, Token(9)).unwrap();
    let mut events = Events::with_capacity(8);
    let waking = thread::spawn(move || {
        thread::sleep(TIMEOUT);
        let sent = Instant::now();
        waker.wake().unwrap();
        sent
    });
    let ((result, returned), _) = under_storm(&name, || {
        let result = selector.select(&mut events, None);
        (result, Instant::now())
    });
    let sent = waking.join().unwrap();
    if let Err(e) = result {
        panic!("{name}: select failed under a signal storm: {e}");
    }
    let tokens: Vec<Token> = events.iter().map(|e| e.token()).collect();
    assert_eq!(tokens, [Token(9)], "{name}");
    // The waker's thread started its sleep before the storm did, so time the
    // wait against the wake itself: no return before it, however the signals
    // and the scheduler fell.
    assert!(
        returned >= sent,
        "{name}: returned {:?} before the wake was sent",
        sent - returned
    );
}

fn select_fn_timeout() {
    let name = "select_fn::timeout";
    let (r, _w) = rustix::pipe::pipe().unwrap();
    let (rlist, xlist) = ([&r], [&r]);
    let none: [&std::os::fd::OwnedFd; 0] = [];
    let (result, elapsed) = under_storm(name, || {
        selector::select(&rlist, &none, &xlist, Some(TIMEOUT)).map(|ready| ready.is_empty())
    });
    match result {
        Ok(empty) => assert!(empty, "{name}: something was ready"),
        Err(e) => panic!("{name}: select failed under a signal storm: {e}"),
    }
    check_elapsed(name, elapsed);
}

fn main() {
    MAIN_TID.store(
        rustix::thread::gettid().as_raw_nonzero().get(),
        Ordering::Relaxed,
    );
    // SAFETY: the handler only calls gettid(2) and touches atomics, both
    // async-signal-safe; it allocates nothing and takes no lock.
    unsafe {
        signal_hook::low_level::register(SIGUSR1, || {
            let tid = rustix::thread::gettid().as_raw_nonzero().get();
            if tid == MAIN_TID.load(Ordering::Relaxed) {
                MAIN_HITS.fetch_add(1, Ordering::Relaxed);
            }
        })
    }
    .unwrap();

    let mut cases: Vec<(String, Box<dyn Fn()>)> = Vec::new();
    for kind in BackendKind::CONCRETE {
        cases.push((
            format!("{kind}::selector_timeout"),
            Box::new(move || selector_timeout(kind)),
        ));
        cases.push((
            format!("{kind}::selector_no_timeout_woken"),
            Box::new(move || selector_no_timeout_woken(kind)),
        ));
    }
    cases.push((
        "select_fn::timeout".to_string(),
        Box::new(select_fn_timeout),
    ));

    // `cargo test -- NAME` runs only the cases whose name contains NAME.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    println!(
        "\nrunning {} signal-storm cases on the main thread",
        cases.len()
    );
    let mut ran = 0;
    for (name, case) in &cases {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        case();
        let hits = LAST_HITS.load(Ordering::Relaxed);
        println!("test {name} ... ok ({hits} signals interrupted it)");
        ran += 1;
    }
    println!("\ntest result: ok. {ran} passed\n");
}
