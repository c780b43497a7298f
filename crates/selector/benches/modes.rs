//! Level, oneshot and edge selects against mio and polling at 10,000
//! registered and 100 freshly ready, and the register / modify costs of
//! each mode, in interleaved rounds (medians, ratios from one run).
//!
//! ```text
//! cargo bench -p fdselector --bench modes
//! ```

mod common;

use common::*;
use mio::unix::SourceFd;
use selector::{BackendKind, Events, Interest, Mode, Selector, Token};
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Level, oneshot and edge selects against mio and polling, at 10,000
/// registered and 100 freshly ready; then register / modify per mode.
fn paired_modes() {
    raise_fd_limit();
    let work = Workload::new(10_000);
    let ready: Vec<usize> = (0..work.sockets.len())
        .step_by(100)
        .take(work.ready)
        .collect();
    let mut events = Events::with_capacity(EVENTS);
    let mut mio_events = mio::Events::with_capacity(EVENTS);
    let capacity = std::num::NonZeroUsize::new(EVENTS).expect("not zero");
    let mut polling_events = polling::Events::with_capacity(capacity);
    let print = |title: &str, names: &[&str], medians: &[f64], base: usize| {
        println!("\nmodes: {title}, 10,000 registered, 100 freshly ready, median ns per select");
        for (name, ns) in names.iter().zip(medians) {
            println!(
                "  {name:<18} {ns:>10.0}   x{:.3} of {}",
                ns / medians[base],
                names[base]
            );
        }
    };
    let nothing = || Box::new(|| {}) as Box<dyn FnMut()>;

    // Level: ours on epoll against polling's level mode (mio has none).
    {
        let mut ours = selector_in(BackendKind::Epoll, Mode::Level, &work);
        let theirs = polling_with(polling::PollMode::Level, &work);
        let mut c: Vec<Contender<'_>> = vec![
            (
                "ours epoll",
                Box::new(|| select_once(&mut ours, &mut events)),
                nothing(),
            ),
            (
                "polling",
                Box::new(|| wait_once(&theirs, &mut polling_events)),
                nothing(),
            ),
        ];
        let m = paired_rounds(&work, 2_000, &mut c);
        let names: Vec<&str> = c.iter().map(|c| c.0).collect();
        print("level", &names, &m, 1);
    }
    // Oneshot: each ready registration re-armed after its select.
    {
        let mut ours = selector_in(BackendKind::Epoll, Mode::Oneshot, &work);
        let ours_cell = std::cell::RefCell::new(&mut ours);
        let theirs = polling_with(polling::PollMode::Oneshot, &work);
        let mut c: Vec<Contender<'_>> = vec![
            (
                "ours epoll",
                Box::new(|| select_once(&mut ours_cell.borrow_mut(), &mut events)),
                Box::new(|| {
                    for &i in &ready {
                        let socket = &work.sockets[i];
                        ours_cell
                            .borrow_mut()
                            .modify(socket, Token(i), Interest::READABLE)
                            .unwrap();
                    }
                }),
            ),
            (
                "polling",
                Box::new(|| wait_once(&theirs, &mut polling_events)),
                Box::new(|| {
                    for &i in &ready {
                        theirs
                            .modify(&work.sockets[i], polling::Event::readable(i))
                            .unwrap();
                    }
                }),
            ),
        ];
        let m = paired_rounds(&work, 2_000, &mut c);
        let names: Vec<&str> = c.iter().map(|c| c.0).collect();
        print("oneshot", &names, &m, 1);
    }
    // Edge: ours on epoll against mio (edge only) and polling's edge mode.
    {
        let mut ours = selector_in(BackendKind::Epoll, Mode::Edge, &work);
        let mut poll = mio_with(&work);
        let theirs = polling_with(polling::PollMode::Edge, &work);
        let mut c: Vec<Contender<'_>> = vec![
            (
                "ours epoll",
                Box::new(|| select_once(&mut ours, &mut events)),
                nothing(),
            ),
            (
                "mio",
                Box::new(|| poll_once(&mut poll, &mut mio_events)),
                nothing(),
            ),
            (
                "polling",
                Box::new(|| wait_once(&theirs, &mut polling_events)),
                nothing(),
            ),
        ];
        let m = paired_rounds(&work, 2_000, &mut c);
        let names: Vec<&str> = c.iter().map(|c| c.0).collect();
        print("edge", &names, &m, 1);
    }
    // poll and select have no counterpart on Linux (polling uses epoll):
    // ours alone, level and emulated oneshot, fewer rounds (ms a call).
    for kind in [BackendKind::Poll, BackendKind::Select] {
        let mut level = selector_in(kind, Mode::Level, &work);
        let mut oneshot = selector_in(kind, Mode::Oneshot, &work);
        let oneshot_cell = std::cell::RefCell::new(&mut oneshot);
        let mut level_events = Events::with_capacity(EVENTS);
        let mut c: Vec<Contender<'_>> = vec![
            (
                "level",
                Box::new(|| select_once(&mut level, &mut level_events)),
                nothing(),
            ),
            (
                "oneshot",
                Box::new(|| select_once(&mut oneshot_cell.borrow_mut(), &mut events)),
                Box::new(|| {
                    for &i in &ready {
                        let socket = &work.sockets[i];
                        oneshot_cell
                            .borrow_mut()
                            .modify(socket, Token(i), Interest::READABLE)
                            .unwrap();
                    }
                }),
            ),
        ];
        let m = paired_rounds(&work, 100, &mut c);
        let names: Vec<&str> = c.iter().map(|c| c.0).collect();
        print(&format!("{kind}"), &names, &m, 0);
    }
    paired_registration(&work);
}

/// register + unregister and modify, ns per operation (median of rounds of
/// 200, interleaved), beside the workload's 10,000 registrations.
fn paired_registration(work: &Workload) {
    const OPS: u32 = 200;
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let fd = socket.as_raw_fd();
    let token = 20_000;
    let mut ours: Vec<(String, Selector, Mode)> = Vec::new();
    for kind in backends() {
        for mode in [Mode::Level, Mode::Oneshot, Mode::Edge] {
            if kind.supports(mode) {
                ours.push((
                    format!("ours {kind} {mode}"),
                    selector_in(kind, mode, work),
                    mode,
                ));
            }
        }
    }
    let poll = mio_with(work);
    let theirs = polling_with(polling::PollMode::Oneshot, work);
    let rounds = 200;
    let n = ours.len() + 2;
    let mut reg: Vec<Vec<Duration>> = vec![Vec::new(); n];
    let mut modify: Vec<Vec<Duration>> = vec![Vec::new(); n];
    for round in 0..rounds {
        for k in 0..n {
            let which = (round + k) % n;
            let (r, m) = if which < ours.len() {
                let (_, selector, mode) = &mut ours[which];
                let mode = *mode;
                let start = Instant::now();
                for _ in 0..OPS {
                    selector
                        .register_with(&socket, Token(token), Interest::READABLE, mode)
                        .unwrap();
                    selector.unregister(&socket).unwrap();
                }
                let r = start.elapsed();
                selector
                    .register_with(&socket, Token(token), Interest::READABLE, mode)
                    .unwrap();
                let start = Instant::now();
                for i in 0..OPS {
                    let interest = if i % 2 == 0 {
                        Interest::WRITABLE
                    } else {
                        Interest::READABLE
                    };
                    selector.modify(&socket, Token(token), interest).unwrap();
                }
                let m = start.elapsed();
                selector.unregister(&socket).unwrap();
                (r, m)
            } else if which == ours.len() {
                let registry = poll.registry();
                let start = Instant::now();
                for _ in 0..OPS {
                    registry
                        .register(
                            &mut SourceFd(&fd),
                            mio::Token(token),
                            mio::Interest::READABLE,
                        )
                        .unwrap();
                    registry.deregister(&mut SourceFd(&fd)).unwrap();
                }
                let r = start.elapsed();
                registry
                    .register(
                        &mut SourceFd(&fd),
                        mio::Token(token),
                        mio::Interest::READABLE,
                    )
                    .unwrap();
                let start = Instant::now();
                for i in 0..OPS {
                    let interest = if i % 2 == 0 {
                        mio::Interest::WRITABLE
                    } else {
                        mio::Interest::READABLE
                    };
                    registry
                        .reregister(&mut SourceFd(&fd), mio::Token(token), interest)
                        .unwrap();
                }
                let m = start.elapsed();
                registry.deregister(&mut SourceFd(&fd)).unwrap();
                (r, m)
            } else {
                let start = Instant::now();
                for _ in 0..OPS {
                    // SAFETY: `socket` outlives the registration, deleted
                    // on the next line.
                    unsafe { theirs.add(&socket, polling::Event::readable(token)) }.unwrap();
                    theirs.delete(&socket).unwrap();
                }
                let r = start.elapsed();
                // SAFETY: as above; deleted after the modify loop.
                unsafe { theirs.add(&socket, polling::Event::readable(token)) }.unwrap();
                let start = Instant::now();
                for i in 0..OPS {
                    let event = if i % 2 == 0 {
                        polling::Event::writable(token)
                    } else {
                        polling::Event::readable(token)
                    };
                    theirs.modify(&socket, event).unwrap();
                }
                let m = start.elapsed();
                theirs.delete(&socket).unwrap();
                (r, m)
            };
            reg[which].push(r / OPS);
            modify[which].push(m / OPS);
        }
    }
    let mut names: Vec<String> = ours.iter().map(|o| o.0.clone()).collect();
    names.push("mio (edge)".into());
    names.push("polling (oneshot)".into());
    println!("\nregistration beside 10,000 others, median ns per operation");
    println!("  {:<24} {:>12} {:>12}", "", "reg+unreg", "modify");
    for (i, name) in names.iter().enumerate() {
        let r = median(&mut reg[i]).as_secs_f64() * 1e9;
        let m = median(&mut modify[i]).as_secs_f64() * 1e9;
        println!("  {name:<24} {r:>12.0} {m:>12.0}");
    }
}

fn main() {
    // Only in a real benchmark run (cargo passes --bench).
    if std::env::args().any(|a| a == "--bench") {
        paired_modes();
    }
}
