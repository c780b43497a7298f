//! What the benchmarks share: the backend list and the order statistics.

#![allow(dead_code)] // each bench binary uses its own part

use selector::BackendKind;
use std::time::Duration;

/// Every concrete backend this OS has, from the library's own list.
pub fn backends() -> Vec<BackendKind> {
    BackendKind::CONCRETE.to_vec()
}

/// The median of `samples` (sorted in place); zero for none.
pub fn median(samples: &mut [Duration]) -> Duration {
    percentile(samples, 50.0)
}

/// The `p`th percentile of `samples` (sorted in place), nearest rank; zero
/// for none.
pub fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort_unstable();
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}
