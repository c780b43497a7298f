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
    ExitCode::SUCCESS
}

fn parse(name: &str, value: &str) -> u64 {
    value
        .parse()
        .unwrap_or_else(|_| panic!("{name}={value:?}: expected a whole number"))
}
