//! The three algorithms, over `kv`, so that every gateway instance (and, with a shared
//! store, every replica) counts against the same numbers.
//!
//! - **Sliding window** (default): a counter per fixed window (`KEY|INDEX`, windows
//!   aligned to the Unix epoch) and the estimate `previous × (share of the previous
//!   window still inside the sliding one) + current`, compared exactly (integers, no
//!   rounding in the client's favour). A request is counted with `incr` *before* it is
//!   judged and given back if refused: the counter can only over-count, never let one
//!   through, so with a limit of 50 exactly 50 concurrent requests pass.
//! - **Fixed window**: the current window's counter alone; resets at the window's end.
//! - **Token bucket** (GCRA): one value per key, the theoretical arrival time (µs), moved
//!   forward by one emission interval per request with `compare-and-swap`; `burst`
//!   requests may come at once, then one per `per / requests`.
//!
//! Counters expire shortly after their windows (the gateway's sweep reclaims them), so
//! a key that stops sending stops taking space.
//!
//! This module decides; it does not answer clients (`lib.rs` does).

use std::time::Duration;

use wasmgate_plugin_sdk::kv;

/// How requests are counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// Weighted previous window plus the current one (the default).
    #[default]
    SlidingWindow,
    /// The current window's count; resets at its end.
    FixedWindow,
    /// GCRA: a smooth rate with bursts of `burst`.
    TokenBucket,
}

impl Algorithm {
    /// The name used in counter keys.
    pub fn name(self) -> &'static str {
        match self {
            Self::SlidingWindow => "sw",
            Self::FixedWindow => "fw",
            Self::TokenBucket => "tb",
        }
    }
}

/// One limit: `requests` per `per_ms` milliseconds and, for the token bucket, how many
/// may come at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Requests allowed per window (the token bucket's refill per window).
    pub requests: u64,
    /// The window, in milliseconds.
    pub per_ms: u64,
    /// The token bucket's capacity.
    pub burst: u64,
}

/// What the limiter decided about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may pass.
    pub allowed: bool,
    /// The limit to advertise (`X-RateLimit-Limit`): `requests`, or `burst` for the
    /// token bucket.
    pub limit: u64,
    /// Requests left now (`X-RateLimit-Remaining`).
    pub remaining: u64,
    /// Unix milliseconds when the quota resets (the window's end, or when the bucket
    /// is full again); for a refused request, when the next one can pass.
    pub reset_ms: u64,
    /// For a refused request, how long until the next one can pass.
    pub retry_after_ms: u64,
}

/// Most `compare-and-swap` rounds one token-bucket request may take before the store
/// is reported as failing (only under extreme contention on one key).
const MAX_SWAPS: usize = 32;

/// Kept past a window's end so a slightly late clock still finds the count.
const GRACE_MS: u64 = 1_000;

/// Counts one request against `limit` under `key` at `now_ms` (Unix milliseconds).
pub fn check(
    algorithm: Algorithm,
    limit: Limit,
    key: &str,
    now_ms: u64,
) -> Result<Decision, kv::Error> {
    match algorithm {
        Algorithm::SlidingWindow => sliding_window(limit, key, now_ms),
        Algorithm::FixedWindow => fixed_window(limit, key, now_ms),
        Algorithm::TokenBucket => token_bucket(limit, key, now_ms),
    }
}

fn parse_count(value: Option<Vec<u8>>) -> u64 {
    value
        .and_then(|v| std::str::from_utf8(&v).ok()?.parse::<i64>().ok())
        .map_or(0, |n| n.max(0) as u64)
}

fn fixed_window(limit: Limit, key: &str, now: u64) -> Result<Decision, kv::Error> {
    let w = limit.per_ms;
    let index = now / w;
    let end = (index + 1) * w;
    let ttl = Duration::from_millis(end - now + GRACE_MS);
    let count = kv::incr(&format!("{key}|{index}"), 1, Some(ttl))?.max(0) as u64;
    let allowed = count <= limit.requests;
    Ok(Decision {
        allowed,
        limit: limit.requests,
        remaining: limit.requests.saturating_sub(count),
        reset_ms: end,
        retry_after_ms: if allowed { 0 } else { end - now },
    })
}

fn sliding_window(limit: Limit, key: &str, now: u64) -> Result<Decision, kv::Error> {
    let (n, w) = (u128::from(limit.requests), u128::from(limit.per_ms));
    let index = now / limit.per_ms;
    let start = index * limit.per_ms;
    let end = start + limit.per_ms;
    let elapsed = u128::from(now - start);
    let previous = match index.checked_sub(1) {
        Some(p) => u128::from(parse_count(kv::get(&format!("{key}|{p}"))?)),
        None => 0,
    };
    let current_key = format!("{key}|{index}");
    // The current count lives through the next window, where it is the previous one.
    let ttl = Duration::from_millis(end - now + limit.per_ms + GRACE_MS);
    let counted = u128::from(kv::incr(&current_key, 1, Some(ttl))?.max(0) as u64);
    // The estimate, in units of 1/w requests: previous × (w − elapsed) / w + current.
    let estimate = previous * (w - elapsed) + counted * w;
    if estimate <= n * w {
        return Ok(Decision {
            allowed: true,
            limit: limit.requests,
            remaining: ((n * w - estimate) / w) as u64,
            reset_ms: end,
            retry_after_ms: 0,
        });
    }
    // Refused: give the count back, so refused requests do not hold the window shut.
    let _ = kv::incr(&current_key, -1, None);
    let current = counted - 1;
    // The first moment one more request fits, if no other comes meanwhile.
    let next = if current < n {
        // Later in this window, once enough of the previous one has slid out:
        // previous × (w − e) ≤ (n − current − 1) × w.
        let e = w.saturating_sub(((n - current - 1) * w).checked_div(previous).unwrap_or(w));
        u128::from(start) + e.max(elapsed)
    } else {
        // In the next window, where this one's count is the previous one.
        let e = w.saturating_sub(((n - 1) * w).checked_div(current).unwrap_or(w));
        u128::from(end) + e
    };
    let next = next as u64;
    Ok(Decision {
        allowed: false,
        limit: limit.requests,
        remaining: 0,
        reset_ms: next,
        retry_after_ms: next.saturating_sub(now),
    })
}

fn token_bucket(limit: Limit, key: &str, now_ms: u64) -> Result<Decision, kv::Error> {
    // Microseconds, so 1000 requests per second still have a whole emission interval.
    let interval = (u128::from(limit.per_ms) * 1000 / u128::from(limit.requests)).max(1);
    let tolerance = interval * u128::from(limit.burst);
    let now = u128::from(now_ms) * 1000;
    for _ in 0..MAX_SWAPS {
        let seen = kv::get(key)?;
        let arrival = u128::from(parse_count(seen.clone())).max(now);
        let next_arrival = arrival + interval;
        let allowed_at = next_arrival.saturating_sub(tolerance);
        if now < allowed_at {
            let at_ms = allowed_at.div_ceil(1000) as u64;
            return Ok(Decision {
                allowed: false,
                limit: limit.burst,
                remaining: 0,
                reset_ms: at_ms,
                retry_after_ms: at_ms.saturating_sub(now_ms),
            });
        }
        let ttl = Duration::from_millis(((next_arrival - now) / 1000) as u64 + GRACE_MS);
        if kv::compare_and_swap(
            key,
            seen.as_deref(),
            next_arrival.to_string().as_bytes(),
            Some(ttl),
        )? {
            return Ok(Decision {
                allowed: true,
                limit: limit.burst,
                remaining: ((now + tolerance - next_arrival) / interval) as u64,
                reset_ms: next_arrival.div_ceil(1000) as u64,
                retry_after_ms: 0,
            });
        }
    }
    Err(kv::Error::Store(format!(
        "{key}: the bucket changed {MAX_SWAPS} times in a row under this request"
    )))
}
