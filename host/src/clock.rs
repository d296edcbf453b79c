//! The gateway's monotonic clock in whole milliseconds, for the bookkeeping done on
//! every request (breaker windows, ejections, the retry budget): read straight from
//! the kernel's `CLOCK_MONOTONIC`, the clock `std::time::Instant` reads, because
//! turning an `Instant` into milliseconds (`duration_since`, then a division) costs
//! twice what reading the clock does (`bench/instructions.sh`, BENCHMARKS.md).

/// Milliseconds since a fixed point (the machine's boot); never goes back.
#[allow(unsafe_code)] // one libc call, below
pub fn monotonic_ms() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec for the call's duration, and
    // CLOCK_MONOTONIC is always available on Linux, so the call cannot fail (it is
    // glibc's, through the vDSO; rustix's own vDSO reader is not used because it
    // faults under valgrind, which `bench/instructions.sh` runs the gateway in).
    let status = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    debug_assert_eq!(status, 0);
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
