//! Choosing one of a service's endpoints: weighted round-robin (a smooth schedule
//! walked by an atomic counter), least request (power of two choices, by weight) and
//! consistent hashing (weighted rendezvous hashing, so a key keeps its endpoint while
//! that endpoint is up and only the keys of an endpoint that leaves move).
//!
//! The balancer knows weights, not health: the caller says which endpoints may be
//! chosen now (probes, ejection, breakers) and which this request already tried.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::{HeaderMap, HeaderName, header};

use crate::config::Balance;

/// The key of `consistent_hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashOn {
    /// The client's address.
    Client,
    /// A request header's value.
    Header(HeaderName),
    /// A cookie's value.
    Cookie(String),
}

impl HashOn {
    /// Parses `client`, `header:NAME` or `cookie:NAME`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text == "client" {
            return Ok(Self::Client);
        }
        if let Some(name) = text.strip_prefix("header:") {
            return HeaderName::from_bytes(name.as_bytes())
                .map(Self::Header)
                .map_err(|_| format!("{name:?} is not a header name"));
        }
        if let Some(name) = text.strip_prefix("cookie:")
            && !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"=;,".contains(&b))
        {
            return Ok(Self::Cookie(name.to_string()));
        }
        Err(format!(
            "hash_on = {text:?}: expected \"client\", \"header:NAME\" or \"cookie:NAME\""
        ))
    }

    /// The request's key: the header's or cookie's value, else the client's address.
    pub fn key(&self, headers: &HeaderMap, client: IpAddr) -> u64 {
        let mut hasher = DefaultHasher::new();
        let found = match self {
            Self::Client => None,
            Self::Header(name) => headers.get(name).map(|v| v.as_bytes().to_vec()),
            Self::Cookie(name) => cookie(headers, name).map(|v| v.as_bytes().to_vec()),
        };
        match found {
            Some(value) => value.hash(&mut hasher),
            None => client.hash(&mut hasher),
        }
        hasher.finish()
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.trim_matches('"'))
}

/// How one service chooses among its endpoints.
#[derive(Debug)]
pub struct Balancer {
    policy: Balance,
    weights: Vec<u32>,
    /// Endpoint indexes in smooth weighted round-robin order (nginx's), one turn.
    schedule: Vec<usize>,
    /// Each endpoint's hash seed (from its URL), for rendezvous hashing.
    seeds: Vec<u64>,
    next: AtomicUsize,
}

impl Balancer {
    /// A balancer over endpoints with these `weights` (at least 1 each) and URLs.
    pub fn new(policy: Balance, weights: Vec<u32>, urls: &[&str]) -> Self {
        let seeds = urls
            .iter()
            .map(|url| {
                let mut hasher = DefaultHasher::new();
                url.hash(&mut hasher);
                hasher.finish()
            })
            .collect();
        Self {
            policy,
            schedule: smooth_schedule(&weights),
            weights,
            seeds,
            next: AtomicUsize::new(0),
        }
    }

    /// The same endpoints, balanced by `policy`.
    pub fn with_policy(mut self, policy: Balance) -> Self {
        self.policy = policy;
        self
    }

    /// The policy.
    pub fn policy(&self) -> Balance {
        self.policy
    }

    /// The weight of endpoint `index`.
    pub fn weight(&self, index: usize) -> u32 {
        self.weights[index]
    }

    /// Chooses an endpoint among those `usable` says may take a request, preferring
    /// ones not in `tried`; `active` tells an endpoint's requests in flight, `key` is
    /// the request's hash key (for `consistent_hash`).
    pub fn pick(
        &self,
        key: Option<u64>,
        tried: &[usize],
        usable: impl Fn(usize) -> bool,
        active: impl Fn(usize) -> u32,
    ) -> Option<usize> {
        let fresh = |i: usize| usable(i) && !tried.contains(&i);
        self.pick_among(key, &fresh, &active)
            .or_else(|| self.pick_among(key, &usable, &active))
    }

    fn pick_among(
        &self,
        key: Option<u64>,
        usable: &dyn Fn(usize) -> bool,
        active: &dyn Fn(usize) -> u32,
    ) -> Option<usize> {
        let n = self.weights.len();
        match (self.policy, key) {
            (Balance::ConsistentHash, Some(key)) => (0..n)
                .filter(|&i| usable(i))
                .map(|i| (self.rendezvous(key, i), i))
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, i)| i),
            (Balance::LeastRequest, _) => {
                // Two different usable endpoints at random, drawn in one pass without
                // a list (a reservoir of two: the k-th usable one takes a place with
                // probability 2/k), so no request allocates for its choice.
                let mut pair: [Option<usize>; 2] = [None, None];
                let mut seen = 0usize;
                for i in (0..n).filter(|&i| usable(i)) {
                    seen += 1;
                    match seen {
                        1 | 2 => pair[seen - 1] = Some(i),
                        _ => {
                            let place = fastrand::usize(..seen);
                            if place < 2 {
                                pair[place] = Some(i);
                            }
                        }
                    }
                }
                match pair {
                    [Some(a), Some(b)] => {
                        // Ties go either way, at random.
                        let (a, b) = if fastrand::bool() { (a, b) } else { (b, a) };
                        // Fewer in flight per unit of weight wins: active(b)/w(b) < active(a)/w(a).
                        let (wa, wb) = (u64::from(self.weights[a]), u64::from(self.weights[b]));
                        let b_is_less_busy = u64::from(active(b)) * wa < u64::from(active(a)) * wb;
                        Some(if b_is_less_busy { b } else { a })
                    }
                    [only, _] => only,
                }
            }
            _ => {
                let len = self.schedule.len();
                let start = self.next.fetch_add(1, Ordering::Relaxed);
                (0..len)
                    .map(|step| self.schedule[(start + step) % len])
                    .find(|&i| usable(i))
            }
        }
    }

    /// Weighted rendezvous score of endpoint `index` for `key`: highest wins.
    fn rendezvous(&self, key: u64, index: usize) -> f64 {
        let mut hasher = DefaultHasher::new();
        (key, self.seeds[index]).hash(&mut hasher);
        // A uniform draw in (0, 1), then -w / ln(u): each endpoint wins its weight's share.
        let unit = ((hasher.finish() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        -f64::from(self.weights[index]) / unit.ln()
    }
}

/// One turn of nginx's smooth weighted round-robin over `weights` (reduced by their
/// greatest common divisor): each index as often as its weight, spread out.
fn smooth_schedule(weights: &[u32]) -> Vec<usize> {
    let divisor = weights.iter().copied().fold(0, gcd).max(1);
    let weights: Vec<i64> = weights.iter().map(|&w| i64::from(w / divisor)).collect();
    let total: i64 = weights.iter().sum();
    let mut current = vec![0i64; weights.len()];
    (0..total)
        .map(|_| {
            for (c, w) in current.iter_mut().zip(&weights) {
                *c += w;
            }
            let best = (0..weights.len())
                .max_by_key(|&i| (current[i], std::cmp::Reverse(i)))
                .expect("at least one endpoint");
            current[best] -= total;
            best
        })
        .collect()
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn balancer(policy: Balance, weights: &[u32]) -> Balancer {
        let urls: Vec<String> = (0..weights.len())
            .map(|i| format!("http://127.0.0.1:{}", 9000 + i))
            .collect();
        let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
        Balancer::new(policy, weights.to_vec(), &urls)
    }

    fn picks(b: &Balancer, count: usize, usable: impl Fn(usize) -> bool) -> Vec<usize> {
        (0..count)
            .map(|_| b.pick(None, &[], &usable, |_| 0).unwrap())
            .collect()
    }

    #[test]
    fn round_robin_follows_weights_smoothly() {
        assert_eq!(smooth_schedule(&[1, 1, 1]), [0, 1, 2]);
        assert_eq!(smooth_schedule(&[5, 1, 1]), [0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(smooth_schedule(&[20, 10]), [0, 1, 0], "reduced by the gcd");
        let b = balancer(Balance::RoundRobin, &[2, 1]);
        assert_eq!(picks(&b, 6, |_| true), [0, 1, 0, 0, 1, 0]);
    }

    #[test]
    fn unusable_and_tried_endpoints_are_passed_over() {
        let b = balancer(Balance::RoundRobin, &[1, 1, 1]);
        assert_eq!(picks(&b, 4, |i| i != 1), [0, 2, 2, 0]);
        assert_eq!(b.pick(None, &[0], |_| true, |_| 0), Some(1));
        assert_eq!(
            b.pick(None, &[0, 1, 2], |i| i == 2, |_| 0),
            Some(2),
            "a tried endpoint when no other is usable"
        );
        assert_eq!(b.pick(None, &[], |_| false, |_| 0), None);
    }

    #[test]
    fn least_request_prefers_the_less_busy() {
        let b = balancer(Balance::LeastRequest, &[1, 1]);
        let active = |i: usize| if i == 0 { 10 } else { 1 };
        for _ in 0..50 {
            assert_eq!(b.pick(None, &[], |_| true, active), Some(1));
        }
        // Per unit of weight: 10 in flight on weight 20 beats 1 on weight 1.
        let b = balancer(Balance::LeastRequest, &[20, 1]);
        for _ in 0..50 {
            assert_eq!(b.pick(None, &[], |_| true, active), Some(0));
        }
        let b = balancer(Balance::LeastRequest, &[1, 1, 1]);
        assert_eq!(b.pick(None, &[], |i| i == 2, |_| 0), Some(2));
    }

    #[test]
    fn least_request_draws_each_pair_of_usable_endpoints_alike() {
        // Endpoint i has i requests in flight; 1 is not usable. Of the usable pairs
        // {0,2}, {0,3}, {2,3}, drawn alike, 0 wins two and 2 one; 3 never wins.
        let b = balancer(Balance::LeastRequest, &[1, 1, 1, 1]);
        let mut wins = [0usize; 4];
        for _ in 0..3_000 {
            let chosen = b.pick(None, &[], |i| i != 1, |i| i as u32).unwrap();
            wins[chosen] += 1;
        }
        assert_eq!((wins[1], wins[3]), (0, 0), "{wins:?}");
        assert!((1_800..=2_200).contains(&wins[0]), "{wins:?}");
        // Ties go either way.
        let b = balancer(Balance::LeastRequest, &[1, 1]);
        let firsts = (0..1_000)
            .filter(|_| b.pick(None, &[], |_| true, |_| 0) == Some(0))
            .count();
        assert!((350..=650).contains(&firsts), "{firsts} of 1000");
    }

    #[test]
    fn consistent_hash_keeps_keys_and_moves_only_the_lost_endpoints_keys() {
        let b = balancer(Balance::ConsistentHash, &[1, 1, 1]);
        let all: Vec<usize> = (0..300u64)
            .map(|k| b.pick(Some(k), &[], |_| true, |_| 0).unwrap())
            .collect();
        for (k, &chosen) in all.iter().enumerate() {
            assert_eq!(b.pick(Some(k as u64), &[], |_| true, |_| 0), Some(chosen));
        }
        for endpoint in 0..3 {
            let share = all.iter().filter(|&&i| i == endpoint).count();
            assert!(
                (60..=140).contains(&share),
                "endpoint {endpoint} got {share} of 300"
            );
        }
        let without_1: Vec<usize> = (0..300u64)
            .map(|k| b.pick(Some(k), &[], |i| i != 1, |_| 0).unwrap())
            .collect();
        for (before, after) in all.iter().zip(&without_1) {
            if *before != 1 {
                assert_eq!(
                    before, after,
                    "keys of the endpoints that stayed do not move"
                );
            }
        }
    }

    #[test]
    fn hash_keys_come_from_header_cookie_or_client() {
        let client: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-user", "alice".parse().unwrap());
        headers.insert(header::COOKIE, "a=1; session=s1; b=2".parse().unwrap());
        let by_header = HashOn::parse("header:X-User").unwrap();
        assert_eq!(
            by_header.key(&headers, client),
            by_header.key(&headers, other)
        );
        let by_cookie = HashOn::parse("cookie:session").unwrap();
        assert_eq!(
            by_cookie.key(&headers, client),
            by_cookie.key(&headers, other)
        );
        let mut changed = headers.clone();
        changed.insert(header::COOKIE, "session=s2".parse().unwrap());
        assert_ne!(
            by_cookie.key(&headers, client),
            by_cookie.key(&changed, client)
        );
        let by_client = HashOn::parse("client").unwrap();
        assert_ne!(
            by_client.key(&headers, client),
            by_client.key(&headers, other)
        );
        assert_eq!(
            HashOn::parse("cookie:missing")
                .unwrap()
                .key(&headers, client),
            by_client.key(&headers, client),
            "no such cookie: the client's address"
        );
        assert!(HashOn::parse("header:bad name").is_err());
        assert!(HashOn::parse("cookie:").is_err());
        assert!(HashOn::parse("ip").is_err());
    }
}
