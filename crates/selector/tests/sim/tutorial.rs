//! The `selectors_echo` example's loop (`listen`, `round`) on a simulated
//! selector, with clients driven from the same thread between rounds.

// Its `main`, `serve` and tests are the example's own (a test built
// without the harness drops `#[test]` functions, not their imports).
#[allow(dead_code, unused_imports)]
#[path = "../../examples/selectors_echo.rs"]
mod selectors_echo;

use selector::{FaultPlan, KeySelector, Rng, Selector};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// One client: sends its payload, reads the whole echo back, then closes
/// (the tutorial closes a connection as soon as it reads end of file, so a
/// client that shut down writing first could lose its echo).
struct Client {
    stream: TcpStream,
    payload: Vec<u8>,
    sent: usize,
    echoed: Vec<u8>,
}

impl Client {
    /// Moves what it can without blocking; how many calls moved bytes.
    fn step(&mut self) -> usize {
        let mut moved = 0;
        while self.sent < self.payload.len() {
            match self.stream.write(&self.payload[self.sent..]) {
                Ok(n) => {
                    self.sent += n;
                    moved += 1;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("client write: {e}"),
            }
        }
        let mut buf = [0; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => panic!("the server closed before echoing everything"),
                Ok(n) => {
                    self.echoed.extend_from_slice(&buf[..n]);
                    moved += 1;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("client read: {e}"),
            }
        }
        assert!(
            self.payload.starts_with(&self.echoed),
            "echo differs from what was sent"
        );
        moved
    }

    fn done(&self) -> bool {
        self.echoed.len() == self.payload.len()
    }
}

/// One run of the example's loop for `seed`: bytes echoed and rounds.
pub fn run(seed: u64) -> (usize, usize) {
    let mut rng = Rng::new(seed ^ 0x7u64.rotate_right(3));
    let selector = Selector::with_faults(FaultPlan::simulation(seed)).expect("simulated selector");
    let mut selector = KeySelector::from_selector(selector).expect("empty selector");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("address");
    selectors_echo::listen(&mut selector, listener).expect("listen");
    let mut clients: Vec<Client> = Vec::new();
    let (mut to_start, mut rounds, mut moved, mut bytes) = (1 + rng.below(4), 0, 0, 0);
    while to_start > 0 || !clients.is_empty() {
        if to_start > 0 && (clients.is_empty() || rng.one_in(3)) {
            let stream = TcpStream::connect(addr).expect("connect");
            stream.set_nonblocking(true).expect("nonblocking");
            let payload = (0..1 + rng.below(8_000))
                .map(|_| rng.below(256) as u8)
                .collect();
            clients.push(Client {
                stream,
                payload,
                sent: 0,
                echoed: Vec::new(),
            });
            to_start -= 1;
        }
        selectors_echo::round(&mut selector, Some(Duration::from_millis(5))).expect("round");
        rounds += 1;
        for client in &mut clients {
            moved += client.step();
        }
        clients.retain(|c| {
            bytes += if c.done() { c.payload.len() } else { 0 };
            !c.done()
        });
        assert!(
            rounds <= 4 * moved + 400,
            "busy loop: {rounds} rounds for {moved} client calls that moved bytes"
        );
    }
    // The server closes each connection once its client closed.
    for _ in 0..400 {
        if selector.len() == 1 {
            break;
        }
        selectors_echo::round(&mut selector, Some(Duration::from_millis(5))).expect("round");
    }
    assert_eq!(selector.len(), 1, "only the listener is left registered");
    (bytes, rounds)
}
