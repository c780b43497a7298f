//! The seeded simulation (`FaultPlan::simulation`, `ShortIo`): an echo
//! server's connection state machine and its clients, all in one event loop
//! on the simulated backend, over many seeds. Each run asserts every byte
//! echoed exactly once and in order, no panic, no busy loop (a bound on waits
//! per I/O call that moved bytes), and every descriptor closed at the end.
//!
//! ```text
//! cargo test -p fdselector --features faults --test sim             # 200 seeds
//! SIM_SEEDS=5000 cargo test -p fdselector --features faults --test sim
//! SIM_SEED=1234 cargo test -p fdselector --features faults --test sim  # one seed, exactly
//! ```
//!
//! Runs without the test harness: one thread, so counting this process's
//! descriptors before and after a run is exact.

#[path = "sim/echo.rs"]
mod echo;
#[path = "sim/tutorial.rs"]
mod tutorial;

use std::fs::File;
use std::os::fd::AsFd;
use std::panic;
use std::process::ExitCode;

fn main() -> ExitCode {
    let seeds: Vec<u64> = match (std::env::var("SIM_SEED"), std::env::var("SIM_SEEDS")) {
        (Ok(one), _) => vec![parse("SIM_SEED", &one)],
        (_, Ok(count)) => (0..parse("SIM_SEEDS", &count)).collect(),
        _ => (0..200).collect(),
    };
    // The same seed, the same run: the first one twice, compared whole.
    let first = seeds[0];
    let (a, b) = (echo::run(first), echo::run(first));
    assert_eq!(a, b, "seed {first} ran differently the second time");
    let mut totals = echo::Totals::default();
    for &seed in &seeds {
        match panic::catch_unwind(|| echo::run(seed)) {
            Ok(run) => totals.add(&run),
            Err(_) => {
                eprintln!("sim: seed {seed} failed; rerun it alone with SIM_SEED={seed}");
                return ExitCode::FAILURE;
            }
        }
    }
    println!("sim: {} seeds passed: {totals}", seeds.len());
    // The selectors_echo example's loop, its logging silenced unless one
    // seed is being rerun.
    let quiet = std::env::var("SIM_SEED").is_err();
    let (mut bytes, mut rounds) = (0, 0);
    for &seed in &seeds {
        match silenced(quiet, || counting_fds(|| tutorial::run(seed))) {
            Ok((b, r)) => (bytes, rounds) = (bytes + b, rounds + r),
            Err(_) => {
                eprintln!(
                    "sim: the selectors_echo example failed with seed {seed}; \
                     rerun it alone with SIM_SEED={seed}"
                );
                return ExitCode::FAILURE;
            }
        }
    }
    println!(
        "sim: the selectors_echo example passed {} seeds: {bytes} bytes echoed in {rounds} rounds",
        seeds.len()
    );
    ExitCode::SUCCESS
}

/// `f`, asserting it leaves as many descriptors open as it found.
fn counting_fds<R>(f: impl FnOnce() -> R) -> R {
    let count = || std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
    let before = count();
    let result = f();
    assert_eq!(count(), before, "every descriptor closed");
    result
}

/// `f` with standard error sent to /dev/null when `quiet`, caught if it
/// panics; standard error comes back either way.
fn silenced<R>(quiet: bool, f: impl FnOnce() -> R + panic::UnwindSafe) -> std::thread::Result<R> {
    if !quiet {
        return panic::catch_unwind(f);
    }
    let saved = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .expect("dup stderr");
    let null = File::create("/dev/null").expect("open /dev/null");
    rustix::stdio::dup2_stderr(&null).expect("silence stderr");
    let result = panic::catch_unwind(f);
    rustix::stdio::dup2_stderr(&saved).expect("restore stderr");
    result
}

fn parse(name: &str, value: &str) -> u64 {
    value
        .parse()
        .unwrap_or_else(|_| panic!("{name}={value:?}: expected a whole number"))
}
