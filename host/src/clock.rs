//! The gateway's monotonic clock in whole milliseconds, for the bookkeeping done on
//! every request (breaker windows, ejections, the retry budget): read straight from
//! the kernel's `CLOCK_MONOTONIC`, the clock `std::time::Instant` reads, because
//! turning an `Instant` into milliseconds (`duration_since`, then a division) costs
//! twice what reading the clock does (`bench/instructions.sh`, BENCHMARKS.md).

use rustix::time::{ClockId, clock_gettime};

/// Milliseconds since a fixed point (the machine's boot); never goes back.
pub fn monotonic_ms() -> u64 {
    let now = clock_gettime(ClockId::Monotonic);
    // Both fields are non-negative for the monotonic clock.
    now.tv_sec as u64 * 1_000 + now.tv_nsec as u64 / 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_advance_with_instant() {
        let (first, started) = (monotonic_ms(), std::time::Instant::now());
        std::thread::sleep(std::time::Duration::from_millis(20));
        let (second, elapsed) = (monotonic_ms(), started.elapsed());
        let advanced = second - first;
        // The same clock: what it advanced is what `Instant` saw, to the millisecond
        // either side (the two reads are not simultaneous).
        assert!(advanced >= 19, "{advanced} ms");
        assert!(
            advanced <= elapsed.as_millis() as u64 + 1,
            "{advanced} ms in {elapsed:?}"
        );
    }
}
