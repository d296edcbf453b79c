//! Limits on failed logins, per account and per client, kept in `kv`.
//!
//! Keys (not durable: a crash forgets them, which costs an attacker's target a few
//! guesses at most): `login-failures:<scope>:<subject>` counts failures within the
//! window (the count's TTL is the window, from its first failure) and
//! `login-lock:<scope>:<subject>` holds, until it expires, the Unix milliseconds at
//! which a lock ends. The scope is `account` (the subject is the canonical name or
//! address the client typed, whether or not an account has it, so a lock says
//! nothing about who exists) or `client` (the client's IPv4 address or IPv6 /64).
//!
//! An attempt is counted *before* its password is checked ([`LoginLimits::charge`])
//! and given back if it succeeds, so concurrent guesses cannot slip past the limit
//! while the hashes run. A login that reaches a lock is refused without checking the
//! password, right or wrong, for known and unknown names alike.
//!
//! This module must not decide what the client is told; `lib.rs` does.

use std::time::Duration;

use wasmgate_plugin_sdk::{clock, kv, metrics};

use crate::config::LoginLimitsConfig;

/// What is counted: one account or one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Account,
    Client,
}

impl Scope {
    fn name(self) -> &'static str {
        match self {
            Self::Account => "account",
            Self::Client => "client",
        }
    }
}

/// One limit: a scope and its number of failures (0: off).
#[derive(Debug, Clone, Copy)]
struct Limit {
    scope: Scope,
    max: u32,
}

/// The login limits of one route.
#[derive(Debug, Clone)]
pub struct LoginLimits {
    account: Limit,
    client: Limit,
    window: Duration,
    lock: Duration,
}

/// One login attempt as counted: the subjects it was charged to and their counts.
#[derive(Debug)]
pub struct Attempt {
    charged: Vec<(Limit, String, i64)>,
}

/// Why an attempt is refused before its password is checked.
#[derive(Debug, PartialEq, Eq)]
pub struct Locked {
    /// Until the last of the locks that apply ends, rounded up to whole seconds (at
    /// least 1): the `Retry-After`.
    pub retry_after_seconds: u64,
    /// The scopes locked (`account`, `client`), for the log; never for the client.
    pub scopes: Vec<&'static str>,
}

fn failures_key(scope: Scope, subject: &str) -> String {
    format!("login-failures:{}:{subject}", scope.name())
}

fn lock_key(scope: Scope, subject: &str) -> String {
    format!("login-lock:{}:{subject}", scope.name())
}

fn store(error: kv::Error) -> String {
    format!("login limits: {error}")
}

impl LoginLimits {
    /// The limits of a checked config.
    pub fn new(config: &LoginLimitsConfig) -> Self {
        Self {
            account: Limit {
                scope: Scope::Account,
                max: config.account_failures,
            },
            client: Limit {
                scope: Scope::Client,
                max: config.client_failures,
            },
            window: Duration::from_secs(config.window_seconds),
            lock: Duration::from_secs(config.lock_seconds),
        }
    }

    /// The limits that are on, each with its subject.
    fn subjects<'s>(&self, account: &'s str, client: &'s str) -> Vec<(Limit, &'s str)> {
        [(self.account, account), (self.client, client)]
            .into_iter()
            .filter(|(limit, _)| limit.max > 0)
            .collect()
    }

    /// Counts an attempt at `account` from `client` (see [`wasmgate_plugin_sdk::identity::client_subject`]) before
    /// its password is checked: `Err(Locked)` when a lock applies, or when this
    /// attempt is one more than a limit allows (several raced past the check), in
    /// which case that lock starts now.
    pub fn charge(&self, account: &str, client: &str) -> Result<Result<Attempt, Locked>, String> {
        let now = clock::now_unix_ms();
        let subjects = self.subjects(account, client);
        let mut locked = Locked {
            retry_after_seconds: 0,
            scopes: Vec::new(),
        };
        for (limit, subject) in &subjects {
            if let Some(until) = kv::get(&lock_key(limit.scope, subject)).map_err(store)? {
                let until = std::str::from_utf8(&until)
                    .ok()
                    .and_then(|text| text.parse::<u64>().ok())
                    .unwrap_or(now + self.lock.as_millis() as u64);
                locked.add(limit.scope, until.saturating_sub(now));
            }
        }
        if !locked.scopes.is_empty() {
            return Ok(Err(locked));
        }
        let mut attempt = Attempt {
            charged: Vec::new(),
        };
        for (limit, subject) in subjects {
            let count = kv::incr(&failures_key(limit.scope, subject), 1, Some(self.window))
                .map_err(store)?;
            if count > i64::from(limit.max) {
                self.lock(limit.scope, subject, now)?;
                locked.add(limit.scope, self.lock.as_millis() as u64);
            }
            attempt.charged.push((limit, subject.to_string(), count));
        }
        if locked.scopes.is_empty() {
            Ok(Ok(attempt))
        } else {
            Ok(Err(locked))
        }
    }

    /// The attempt failed: a subject whose count reached its limit is locked now.
    /// The scopes locked by this failure.
    pub fn failed(&self, attempt: Attempt) -> Result<Vec<&'static str>, String> {
        let now = clock::now_unix_ms();
        let mut scopes = Vec::new();
        for (limit, subject, count) in attempt.charged {
            if count >= i64::from(limit.max) {
                self.lock(limit.scope, &subject, now)?;
                scopes.push(limit.scope.name());
            }
        }
        Ok(scopes)
    }

    /// The attempt succeeded: the failures of every name of the account (`accounts`:
    /// its canonical username and address) are forgotten, and the client gets its
    /// attempt back.
    pub fn succeeded(&self, attempt: Attempt, accounts: &[String]) -> Result<(), String> {
        if self.account.max > 0 {
            for account in accounts {
                kv::delete(&failures_key(Scope::Account, account)).map_err(store)?;
            }
        }
        for (limit, subject, _) in attempt.charged {
            let key = failures_key(limit.scope, &subject);
            match limit.scope {
                Scope::Account => {
                    kv::delete(&key).map_err(store)?;
                }
                Scope::Client => {
                    // A count that expired meanwhile comes back as -1: none is left.
                    if kv::incr(&key, -1, Some(self.window)).map_err(store)? <= 0 {
                        kv::delete(&key).map_err(store)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Locks `subject` for the lock duration from `now`; its count starts again
    /// after.
    fn lock(&self, scope: Scope, subject: &str, now: u64) -> Result<(), String> {
        let until = now + self.lock.as_millis() as u64;
        kv::set(
            &lock_key(scope, subject),
            until.to_string().as_bytes(),
            Some(self.lock),
        )
        .map_err(store)?;
        kv::delete(&failures_key(scope, subject)).map_err(store)?;
        // A refused metric is the host's business, never a failed login.
        let _ = metrics::counter_add("login_locks_total", &[("scope", scope.name())], 1);
        Ok(())
    }
}

impl Locked {
    fn add(&mut self, scope: Scope, remaining_ms: u64) {
        let seconds = remaining_ms.div_ceil(1000).max(1);
        self.retry_after_seconds = self.retry_after_seconds.max(seconds);
        self.scopes.push(scope.name());
    }
}
