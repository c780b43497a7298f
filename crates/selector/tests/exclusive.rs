//! Exclusive wakeups (`Selector::register_exclusive`, epoll's
//! `EPOLLEXCLUSIVE`): a typed refusal on backends without them, epoll's
//! rules enforced with clear errors, and one waiter woken instead of all.

mod util;

use selector::{BackendKind, Events, Interest, Mode, Selector, Token, Unsupported};
use std::io::ErrorKind;
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

fn listener() -> TcpListener {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    listener
}

#[test]
fn other_backends_refuse_it_with_a_typed_error() {
    for kind in BackendKind::CONCRETE {
        let mut selector = Selector::with_backend(kind).unwrap();
        let listener = listener();
        let result =
            selector.register_exclusive(&listener, Token(1), Interest::READABLE, Mode::Level);
        let through_registry = selector.registry().unwrap().register_exclusive(
            &listener,
            Token(1),
            Interest::READABLE,
            Mode::Level,
        );
        if kind.supports_exclusive() {
            result.unwrap();
            assert_eq!(
                through_registry.unwrap_err().kind(),
                ErrorKind::AlreadyExists
            );
            continue;
        }
        for err in [result.unwrap_err(), through_registry.unwrap_err()] {
            assert_eq!(err.kind(), ErrorKind::Unsupported, "{kind}: {err}");
            let why = err.get_ref().and_then(|e| e.downcast_ref::<Unsupported>());
            assert_eq!(why, Some(&Unsupported::Exclusive(kind)), "{kind}");
        }
        assert!(selector.is_empty(), "{kind}");
    }
}

#[cfg(target_os = "linux")]
mod epoll {
    use super::*;

    fn epoll() -> Selector {
        Selector::with_backend(BackendKind::Epoll).unwrap()
    }

    #[test]
    fn oneshot_and_priority_are_refused_before_the_kernel() {
        let mut selector = epoll();
        let listener = listener();
        let err = selector
            .register_exclusive(&listener, Token(1), Interest::READABLE, Mode::Oneshot)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().contains("oneshot"), "{err}");
        let err = selector
            .register_exclusive(&listener, Token(1), Interest::PRIORITY, Mode::Level)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().contains("priority"), "{err}");
        assert!(selector.is_empty());
    }

    #[test]
    fn modify_is_refused_and_the_registration_stays() {
        let mut selector = epoll();
        let listener = listener();
        selector
            .register_exclusive(&listener, Token(1), Interest::READABLE, Mode::Edge)
            .unwrap();
        for result in [
            selector.modify(&listener, Token(2), Interest::READABLE),
            selector.modify_with(&listener, Token(1), Interest::READABLE, Mode::Level),
            selector
                .registry()
                .unwrap()
                .modify(&listener, Token(3), Interest::BOTH),
        ] {
            let err = result.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput);
            assert!(err.to_string().contains("exclusive"), "{err}");
        }
        let registration = selector.registration(&listener).unwrap();
        assert_eq!(
            (registration.token, registration.interest),
            (Token(1), Interest::READABLE)
        );
        assert_eq!(selector.mode(&listener), Some(Mode::Edge));
        // Still watched: a connection is reported under the first token.
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let mut events = Events::with_capacity(8);
        selector
            .select(&mut events, Some(util::WAIT_LIMIT))
            .unwrap();
        let tokens: Vec<Token> = events.iter().map(|e| e.token()).collect();
        assert_eq!(tokens, [Token(1)]);
        // Unregister and register again is the way to change it.
        selector.unregister(&listener).unwrap();
        selector
            .register(&listener, Token(4), Interest::READABLE)
            .unwrap();
    }

    /// How many of `waiters` selectors, each on its own thread and blocked
    /// in `select`, report one connection to a listener they all watch.
    fn woken_by_one_connection(waiters: usize, exclusive: bool) -> usize {
        let listener = listener();
        let (tids, blocked) = mpsc::channel();
        let threads: Vec<_> = (0..waiters)
            .map(|_| {
                let listener = listener.try_clone().unwrap();
                let tids = tids.clone();
                thread::spawn(move || {
                    let mut selector = epoll();
                    let (token, interest, mode) = (Token(0), Interest::READABLE, Mode::Level);
                    if exclusive {
                        selector
                            .register_exclusive(&listener, token, interest, mode)
                            .unwrap();
                    } else {
                        selector
                            .register_with(&listener, token, interest, mode)
                            .unwrap();
                    }
                    let mut events = Events::with_capacity(8);
                    tids.send(rustix::thread::gettid().as_raw_nonzero().get())
                        .unwrap();
                    selector
                        .select(&mut events, Some(Duration::from_secs(2)))
                        .unwrap();
                    !events.is_empty()
                })
            })
            .collect();
        // Connect only once every thread sleeps in its wait, the one place
        // it can sleep.
        let deadline = Instant::now() + util::WAIT_LIMIT;
        for tid in blocked.iter().take(waiters) {
            let stat = format!("/proc/self/task/{tid}/stat");
            while !std::fs::read_to_string(&stat).unwrap().contains(") S ") {
                assert!(Instant::now() < deadline, "thread {tid} never blocked");
                thread::sleep(Duration::from_millis(1));
            }
        }
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .filter(|&w| w)
            .count()
    }

    #[test]
    fn one_connection_wakes_one_waiter_not_all() {
        assert_eq!(woken_by_one_connection(4, false), 4, "shared: every waiter");
        assert_eq!(woken_by_one_connection(4, true), 1, "exclusive: one waiter");
    }
}
