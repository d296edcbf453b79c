//! A route's retry policy: which failed tries are tried again, for which methods, after
//! what back-off, and the budget that keeps retries a bounded share of the route's
//! requests. The loop that uses it is `pipeline::forward`.

use std::sync::Mutex;
use std::time::Duration;

use http::Method;

use super::resilience::{Window, now_ms};
use crate::config::RetryConfig;

/// How a try failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryFailure {
    /// No connection could be made: the upstream saw nothing.
    Connect,
    /// The connection failed after the request was sent, before a response.
    Reset,
    /// No response headers within the try's time.
    Timeout,
    /// A 5xx response.
    Status5xx,
}

impl TryFailure {
    /// The word used in config and metrics: `connect`, `reset`, `timeout`, `5xx`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Reset => "reset",
            Self::Timeout => "timeout",
            Self::Status5xx => "5xx",
        }
    }

    /// Parses a word of `on`.
    pub fn parse(word: &str) -> Option<Self> {
        [Self::Connect, Self::Reset, Self::Timeout, Self::Status5xx]
            .into_iter()
            .find(|f| f.as_str() == word)
    }
}

/// The most tries a route may make for one request (`[routes.retry] attempts`).
pub const MAX_ATTEMPTS: u32 = 10;

/// The window the budget is counted over.
const BUDGET_WINDOW_MS: u64 = 10_000;

/// A route's retry policy and budget.
#[derive(Debug)]
pub struct RetryPolicy {
    attempts: u32,
    on: Vec<TryFailure>,
    methods: Vec<Method>,
    backoff_ms: u64,
    max_backoff_ms: u64,
    per_try: Option<Duration>,
    budget_percent: u64,
    budget_min: u64,
    /// Requests (all) and retries (marked) over the last 10 seconds.
    budget: Mutex<Window>,
}

impl RetryPolicy {
    /// The policy of `[routes.retry]` (validated: known words and methods).
    pub fn new(config: &RetryConfig) -> Self {
        Self {
            attempts: config.attempts.clamp(1, MAX_ATTEMPTS),
            on: config
                .on
                .iter()
                .filter_map(|w| TryFailure::parse(w))
                .collect(),
            methods: config
                .methods
                .iter()
                .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
                .collect(),
            backoff_ms: config.backoff_ms,
            max_backoff_ms: config.max_backoff_ms.max(config.backoff_ms),
            per_try: (config.per_try_timeout_ms > 0)
                .then(|| Duration::from_millis(config.per_try_timeout_ms)),
            budget_percent: u64::from(config.budget_percent),
            budget_min: u64::from(config.budget_min),
            budget: Mutex::new(Window::new(BUDGET_WINDOW_MS)),
        }
    }

    /// Tries in all for a request with `method` (1: no retries), and counts the request
    /// into the budget.
    pub fn attempts_for(&self, method: &Method) -> u32 {
        if self.attempts == 1 {
            return 1;
        }
        self.budget.lock().expect("budget lock").add(now_ms(), 1, 0);
        if self.methods.contains(method) {
            self.attempts
        } else {
            1
        }
    }

    /// Whether this kind of failure is retried.
    pub fn retries(&self, failure: TryFailure) -> bool {
        self.on.contains(&failure)
    }

    /// Takes one retry from the budget: false when retries already are the budget's
    /// share of the window's requests (and over its minimum).
    pub fn take_budget(&self) -> bool {
        let now = now_ms();
        let mut window = self.budget.lock().expect("budget lock");
        let (requests, retries) = window.sums(now);
        let allowed = (requests * self.budget_percent / 100).max(self.budget_min);
        if retries >= allowed {
            return false;
        }
        window.add(now, 0, 1);
        true
    }

    /// The wait before retry number `retry` (1 for the first): drawn at random below
    /// `backoff_ms × 2^(retry-1)`, capped at `max_backoff_ms`.
    pub fn backoff(&self, retry: u32) -> Duration {
        let ceiling = self
            .backoff_ms
            .saturating_mul(1 << retry.saturating_sub(1).min(20))
            .min(self.max_backoff_ms);
        Duration::from_millis(fastrand::u64(0..=ceiling))
    }

    /// Time allowed for each try, if shorter than the route's.
    pub fn per_try(&self) -> Option<Duration> {
        self.per_try
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(edit: impl FnOnce(&mut RetryConfig)) -> RetryPolicy {
        let mut config = RetryConfig::default();
        edit(&mut config);
        RetryPolicy::new(&config)
    }

    #[test]
    fn only_listed_methods_and_failures_are_retried() {
        let p = policy(|_| {});
        assert_eq!(p.attempts_for(&Method::GET), 2);
        assert_eq!(p.attempts_for(&Method::PUT), 2);
        assert_eq!(
            p.attempts_for(&Method::POST),
            1,
            "POST is not retried by default"
        );
        assert_eq!(p.attempts_for(&Method::PATCH), 1);
        assert!(p.retries(TryFailure::Connect) && p.retries(TryFailure::Reset));
        assert!(!p.retries(TryFailure::Timeout) && !p.retries(TryFailure::Status5xx));
        let p = policy(|c| {
            c.methods.push("POST".into());
            c.on = vec!["5xx".into()];
        });
        assert_eq!(p.attempts_for(&Method::POST), 2);
        assert!(p.retries(TryFailure::Status5xx) && !p.retries(TryFailure::Connect));
        assert_eq!(policy(|c| c.attempts = 1).attempts_for(&Method::GET), 1);
    }

    #[test]
    fn the_budget_bounds_retries_to_a_share_of_requests() {
        let p = policy(|c| {
            c.budget_percent = 10;
            c.budget_min = 2;
        });
        for _ in 0..50 {
            p.attempts_for(&Method::GET);
        }
        // 10% of 50 is 5.
        let granted = (0..20).filter(|_| p.take_budget()).count();
        assert_eq!(granted, 5);
        let quiet = policy(|c| {
            c.budget_percent = 10;
            c.budget_min = 2;
        });
        quiet.attempts_for(&Method::GET);
        assert_eq!(
            (0..5).filter(|_| quiet.take_budget()).count(),
            2,
            "the minimum"
        );
    }

    #[test]
    fn backoff_grows_with_jitter_under_a_cap() {
        let p = policy(|c| {
            c.backoff_ms = 10;
            c.max_backoff_ms = 25;
        });
        for _ in 0..100 {
            assert!(p.backoff(1) <= Duration::from_millis(10));
            assert!(p.backoff(2) <= Duration::from_millis(20));
            assert!(p.backoff(9) <= Duration::from_millis(25));
        }
        let draws: std::collections::HashSet<Duration> = (0..100).map(|_| p.backoff(3)).collect();
        assert!(draws.len() > 5, "jittered, not fixed");
    }
}
