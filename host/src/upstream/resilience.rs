//! What a service knows about its endpoints' health between requests: the active
//! probes' verdict, requests in flight, passive outlier detection (ejection after
//! failures in a row, for a back-off that doubles) and circuit breakers (closed / open
//! / half-open, judged on the failure ratio over a sliding window).
//!
//! The state lives in `Arc`s that a new snapshot takes over from the old one (by
//! service name and endpoint URL), so a reload neither forgets an ejection nor closes
//! an open breaker. Policies (thresholds) are the serving snapshot's and are passed in.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};

use crate::config::{BreakerConfig, OutlierConfig};

/// Milliseconds on the gateway's monotonic clock.
pub fn now_ms() -> u64 {
    crate::clock::monotonic_ms()
}

/// Counts of events, and of those marked (failed, retried), over a sliding window kept
/// in ten buckets.
#[derive(Debug)]
pub struct Window {
    bucket_ms: u64,
    buckets: [Bucket; 10],
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    slot: u64,
    total: u64,
    marked: u64,
}

impl Window {
    /// A window `span_ms` long.
    pub fn new(span_ms: u64) -> Self {
        Self {
            bucket_ms: (span_ms / 10).max(1),
            buckets: [Bucket::default(); 10],
        }
    }

    /// Adds `total` events, `marked` of them marked, at `now_ms`.
    pub fn add(&mut self, now_ms: u64, total: u64, marked: u64) {
        let slot = now_ms / self.bucket_ms + 1;
        let bucket = &mut self.buckets[(slot % 10) as usize];
        if bucket.slot != slot {
            *bucket = Bucket {
                slot,
                ..Bucket::default()
            };
        }
        bucket.total += total;
        bucket.marked += marked;
    }

    /// The events and marked events within the window ending at `now_ms`.
    pub fn sums(&self, now_ms: u64) -> (u64, u64) {
        let slot = now_ms / self.bucket_ms + 1;
        self.buckets
            .iter()
            .filter(|b| b.slot + 10 > slot && b.slot <= slot)
            .fold((0, 0), |(t, m), b| (t + b.total, m + b.marked))
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.buckets = [Bucket::default(); 10];
    }
}

/// A breaker's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Requests pass; failures are counted.
    Closed,
    /// Requests are refused at once.
    Open,
    /// A few requests pass to probe; the rest are refused.
    HalfOpen,
}

impl Phase {
    /// `closed`, `open` or `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }

    /// The metric's value: 0 closed, 1 half-open, 2 open.
    pub fn gauge(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::HalfOpen => 1,
            Self::Open => 2,
        }
    }
}

/// What a breaker said to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Closed (or no breaker): pass, and count the outcome.
    Pass,
    /// Half-open: pass as one of the probes.
    Probe,
    /// Refused; the breaker may let requests through again in this many ms.
    Refused(u64),
}

/// A change of phase, for the caller to log and count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The phase before.
    pub from: Phase,
    /// The phase now.
    pub to: Phase,
}

/// A circuit breaker's state.
#[derive(Debug)]
pub struct Breaker {
    phase: AtomicU8,
    inner: Mutex<BreakerInner>,
}

#[derive(Debug)]
struct BreakerInner {
    window: Window,
    window_ms: u64,
    opened_at: u64,
    probes: u32,
    successes: u32,
}

impl Default for Breaker {
    fn default() -> Self {
        Self {
            phase: AtomicU8::new(0),
            inner: Mutex::new(BreakerInner {
                window: Window::new(10_000),
                window_ms: 10_000,
                opened_at: 0,
                probes: 0,
                successes: 0,
            }),
        }
    }
}

impl Breaker {
    /// The current phase (an open breaker whose time is up reads as half-open).
    pub fn phase(&self, policy: &BreakerConfig, now: u64) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Closed,
            2 => Phase::HalfOpen,
            _ => {
                let inner = self.inner.lock().expect("breaker lock");
                if now >= inner.opened_at + policy.open_ms {
                    Phase::HalfOpen
                } else {
                    Phase::Open
                }
            }
        }
    }

    fn set(&self, phase: Phase) {
        let value = match phase {
            Phase::Closed => 0,
            Phase::Open => 1,
            Phase::HalfOpen => 2,
        };
        self.phase.store(value, Ordering::Release);
    }

    /// Whether a request may pass now; a `Probe` must be followed by [`Breaker::record`]
    /// or [`Breaker::release`].
    pub fn admit(&self, policy: &BreakerConfig, now: u64) -> (Admission, Option<Transition>) {
        if self.phase.load(Ordering::Acquire) == 0 {
            return (Admission::Pass, None);
        }
        let mut inner = self.inner.lock().expect("breaker lock");
        let mut transition = None;
        if self.phase.load(Ordering::Acquire) == 1 {
            let reopens = inner.opened_at + policy.open_ms;
            if now < reopens {
                return (Admission::Refused(reopens - now), None);
            }
            inner.probes = 0;
            inner.successes = 0;
            self.set(Phase::HalfOpen);
            transition = Some(Transition {
                from: Phase::Open,
                to: Phase::HalfOpen,
            });
        }
        match self.phase.load(Ordering::Acquire) {
            0 => (Admission::Pass, transition),
            _ if inner.probes + inner.successes < policy.half_open_requests => {
                inner.probes += 1;
                (Admission::Probe, transition)
            }
            // The probes are out: wait for their verdict.
            _ => (Admission::Refused(policy.open_ms.min(1_000)), transition),
        }
    }

    /// Counts the outcome of a request `admission` let through.
    pub fn record(
        &self,
        policy: &BreakerConfig,
        now: u64,
        admission: Admission,
        failed: bool,
    ) -> Option<Transition> {
        let mut inner = self.inner.lock().expect("breaker lock");
        match admission {
            Admission::Refused(_) => None,
            Admission::Pass => {
                if self.phase.load(Ordering::Acquire) != 0 {
                    return None;
                }
                if inner.window_ms != policy.window_ms {
                    inner.window = Window::new(policy.window_ms);
                    inner.window_ms = policy.window_ms;
                }
                inner.window.add(now, 1, u64::from(failed));
                if !failed {
                    return None;
                }
                let (total, failures) = inner.window.sums(now);
                let ratio = failures as f64 / total as f64;
                if total >= u64::from(policy.min_requests) && ratio >= policy.failure_ratio {
                    inner.opened_at = now;
                    inner.window.clear();
                    self.set(Phase::Open);
                    return Some(Transition {
                        from: Phase::Closed,
                        to: Phase::Open,
                    });
                }
                None
            }
            Admission::Probe => {
                inner.probes = inner.probes.saturating_sub(1);
                if self.phase.load(Ordering::Acquire) != 2 {
                    return None;
                }
                if failed {
                    inner.opened_at = now;
                    self.set(Phase::Open);
                    return Some(Transition {
                        from: Phase::HalfOpen,
                        to: Phase::Open,
                    });
                }
                inner.successes += 1;
                if inner.successes >= policy.half_open_requests {
                    inner.window.clear();
                    self.set(Phase::Closed);
                    return Some(Transition {
                        from: Phase::HalfOpen,
                        to: Phase::Closed,
                    });
                }
                None
            }
        }
    }

    /// Gives back a probe whose request ended without a verdict (the client left).
    pub fn release(&self, admission: Admission) {
        if admission == Admission::Probe {
            let mut inner = self.inner.lock().expect("breaker lock");
            inner.probes = inner.probes.saturating_sub(1);
        }
    }
}

/// One endpoint's state: probes, load, outlier detection and its breaker.
#[derive(Debug, Default)]
pub struct EndpointState {
    probe_down: AtomicBool,
    /// Requests sent and not yet answered in full.
    pub active: AtomicU32,
    failures: AtomicU32,
    ejected: AtomicBool,
    ejected_until: AtomicU64,
    ejections: AtomicU32,
    /// The endpoint's own breaker (used when the service has one).
    pub breaker: Breaker,
}

/// What an outcome did to an endpoint's ejection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ejection {
    /// It was ejected, for this many ms.
    Ejected(u64),
    /// It came back (its back-off ended, or a probe found it up).
    Returned,
}

impl EndpointState {
    /// Whether the latest active probe found it down.
    pub fn probe_down(&self) -> bool {
        self.probe_down.load(Ordering::Relaxed)
    }

    /// Records an active probe's verdict; a probe that finds an ejected endpoint up
    /// brings it back.
    pub fn set_probe(&self, up: bool) -> Option<Ejection> {
        self.probe_down.store(!up, Ordering::Relaxed);
        if up && self.ejected.swap(false, Ordering::AcqRel) {
            self.failures.store(0, Ordering::Relaxed);
            return Some(Ejection::Returned);
        }
        None
    }

    /// Whether it is ejected at `now`; the first caller to see a back-off end brings it
    /// back and is told so.
    pub fn ejected(&self, now: u64) -> (bool, Option<Ejection>) {
        if !self.ejected.load(Ordering::Acquire) {
            return (false, None);
        }
        if now < self.ejected_until.load(Ordering::Acquire) {
            return (true, None);
        }
        if self.ejected.swap(false, Ordering::AcqRel) {
            self.failures.store(0, Ordering::Relaxed);
            return (false, Some(Ejection::Returned));
        }
        (false, None)
    }

    /// Ms left of its ejection, if ejected.
    pub fn ejected_for(&self, now: u64) -> Option<u64> {
        let until = self.ejected_until.load(Ordering::Acquire);
        (self.ejected.load(Ordering::Acquire) && now < until).then(|| until - now)
    }

    /// Failures in a row so far.
    pub fn consecutive_failures(&self) -> u32 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Counts one outcome; ejects the endpoint when `policy` says so and `may_eject`
    /// (the service's share of ejected endpoints allows one more).
    pub fn record(
        &self,
        policy: &OutlierConfig,
        now: u64,
        failed: bool,
        may_eject: impl FnOnce() -> bool,
    ) -> Option<Ejection> {
        if !failed {
            self.failures.store(0, Ordering::Relaxed);
            if !self.ejected.load(Ordering::Relaxed) {
                self.ejections.store(0, Ordering::Relaxed);
            }
            return None;
        }
        let failures = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        if policy.consecutive_failures == 0
            || failures < policy.consecutive_failures
            || self.ejected.load(Ordering::Acquire)
            || !may_eject()
        {
            return None;
        }
        if self.ejected.swap(true, Ordering::AcqRel) {
            return None;
        }
        let times = self.ejections.fetch_add(1, Ordering::AcqRel).min(20);
        let length = policy
            .base_ejection_ms
            .saturating_mul(1 << times)
            .min(policy.max_ejection_ms.max(policy.base_ejection_ms));
        self.ejected_until.store(now + length, Ordering::Release);
        self.failures.store(0, Ordering::Relaxed);
        Some(Ejection::Ejected(length))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker_policy() -> BreakerConfig {
        BreakerConfig {
            failure_ratio: 0.5,
            min_requests: 4,
            window_ms: 1_000,
            open_ms: 100,
            half_open_requests: 2,
        }
    }

    #[test]
    fn window_forgets_what_slid_out() {
        let mut window = Window::new(1_000);
        window.add(0, 3, 1);
        window.add(950, 1, 1);
        assert_eq!(window.sums(990), (4, 2));
        assert_eq!(window.sums(1_050), (1, 1), "the first bucket slid out");
        assert_eq!(window.sums(5_000), (0, 0));
        window.add(5_000, 2, 0);
        assert_eq!(window.sums(5_000), (2, 0), "a reused bucket starts empty");
    }

    #[test]
    fn breaker_opens_half_opens_and_closes() {
        let policy = breaker_policy();
        let breaker = Breaker::default();
        let pass = |now| breaker.admit(&policy, now).0;
        // Three failures of three: under min_requests, stays closed.
        for now in 0..3 {
            assert_eq!(pass(now), Admission::Pass);
            assert_eq!(breaker.record(&policy, now, Admission::Pass, true), None);
        }
        let opened = breaker.record(&policy, 3, Admission::Pass, true);
        assert_eq!(opened.map(|t| t.to), Some(Phase::Open));
        assert_eq!(pass(50), Admission::Refused(53));
        assert_eq!(breaker.phase(&policy, 50), Phase::Open);
        // Time up: two probes pass, the third waits for their verdict.
        let (first, transition) = breaker.admit(&policy, 103);
        assert_eq!(first, Admission::Probe);
        assert_eq!(transition.map(|t| t.to), Some(Phase::HalfOpen));
        assert_eq!(pass(104), Admission::Probe);
        assert!(matches!(pass(104), Admission::Refused(_)));
        assert_eq!(breaker.record(&policy, 105, Admission::Probe, false), None);
        let closed = breaker.record(&policy, 106, Admission::Probe, false);
        assert_eq!(closed.map(|t| t.to), Some(Phase::Closed));
        assert_eq!(pass(107), Admission::Pass);
    }

    #[test]
    fn a_failed_probe_opens_again_and_a_released_one_frees_its_place() {
        let policy = breaker_policy();
        let breaker = Breaker::default();
        for now in 0..4 {
            breaker.record(&policy, now, Admission::Pass, true);
        }
        assert_eq!(breaker.admit(&policy, 200).0, Admission::Probe);
        assert_eq!(breaker.admit(&policy, 200).0, Admission::Probe);
        breaker.release(Admission::Probe);
        assert_eq!(breaker.admit(&policy, 201).0, Admission::Probe);
        let reopened = breaker.record(&policy, 202, Admission::Probe, true);
        assert_eq!(
            reopened.map(|t| (t.from, t.to)),
            Some((Phase::HalfOpen, Phase::Open))
        );
        assert!(matches!(
            breaker.admit(&policy, 250).0,
            Admission::Refused(_)
        ));
    }

    #[test]
    fn successes_keep_the_ratio_under_the_threshold() {
        let policy = breaker_policy();
        let breaker = Breaker::default();
        for now in 0..10 {
            breaker.record(&policy, now, Admission::Pass, now % 3 == 2);
        }
        assert_eq!(breaker.phase(&policy, 10), Phase::Closed);
    }

    #[test]
    fn outliers_are_ejected_for_a_growing_back_off_and_return() {
        let policy = OutlierConfig {
            consecutive_failures: 3,
            base_ejection_ms: 100,
            max_ejection_ms: 250,
            max_ejected_percent: 50,
        };
        let state = EndpointState::default();
        assert_eq!(state.record(&policy, 0, true, || true), None);
        assert_eq!(state.record(&policy, 0, true, || true), None);
        assert_eq!(
            state.record(&policy, 0, true, || true),
            Some(Ejection::Ejected(100))
        );
        assert_eq!(state.ejected(50), (true, None));
        assert_eq!(state.ejected_for(50), Some(50));
        assert_eq!(state.ejected(100), (false, Some(Ejection::Returned)));
        assert_eq!(state.ejected(101), (false, None), "told once");
        // Failing again at once: twice as long.
        for _ in 0..2 {
            state.record(&policy, 100, true, || true);
        }
        assert_eq!(
            state.record(&policy, 100, true, || true),
            Some(Ejection::Ejected(200))
        );
        // A probe that finds it up brings it back early.
        assert_eq!(state.set_probe(true), Some(Ejection::Returned));
        for _ in 0..3 {
            state.record(&policy, 150, true, || true);
        }
        assert_eq!(state.ejected_for(150), Some(250), "capped at the maximum");
        // A success resets the back-off once it is back.
        state.ejected(1_000);
        state.record(&policy, 1_000, false, || true);
        for _ in 0..3 {
            state.record(&policy, 1_000, true, || true);
        }
        assert_eq!(state.ejected_for(1_000), Some(100));
    }

    #[test]
    fn the_share_of_ejected_endpoints_is_respected() {
        let policy = OutlierConfig {
            consecutive_failures: 1,
            ..OutlierConfig::default()
        };
        let state = EndpointState::default();
        assert_eq!(state.record(&policy, 0, true, || false), None);
        assert_eq!(state.ejected(0), (false, None));
        let off = OutlierConfig {
            consecutive_failures: 0,
            ..OutlierConfig::default()
        };
        for _ in 0..100 {
            assert_eq!(state.record(&off, 0, true, || true), None);
        }
    }
}
