//! What `Cache-Control`, `Pragma`, `Expires`, `Date` and `Age` say, read as a shared
//! cache reads them (RFC 9111). Pure functions over header values: no host calls, so
//! every rule is tested without a request.

/// The `Cache-Control` directives the cache acts on, from every value of the header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Directives {
    /// `no-store`: not to be stored (request or response).
    pub no_store: bool,
    /// `no-cache` (with or without field names): a response may not be served without
    /// revalidation, which this cache does not do, so it is not stored; a request asks
    /// not to be served from the cache.
    pub no_cache: bool,
    /// `private` (with or without field names): for one user's cache only.
    pub private: bool,
    /// `max-age=N` in seconds (the first one given). A malformed value counts as 0.
    pub max_age: Option<u64>,
    /// `s-maxage=N` in seconds, for shared caches: wins over `max-age`.
    pub s_maxage: Option<u64>,
}

impl Directives {
    /// Parses every value of `Cache-Control`: comma-separated directives, names in any
    /// case, arguments bare or quoted.
    pub fn parse<S: AsRef<str>>(values: &[S]) -> Self {
        let mut directives = Self::default();
        for directive in values.iter().flat_map(|v| v.as_ref().split(',')) {
            let (name, argument) = match directive.split_once('=') {
                Some((name, argument)) => (name.trim(), Some(argument.trim().trim_matches('"'))),
                None => (directive.trim(), None),
            };
            let seconds = || argument.and_then(|a| a.parse::<u64>().ok()).unwrap_or(0);
            match name.to_ascii_lowercase().as_str() {
                "no-store" => directives.no_store = true,
                "no-cache" => directives.no_cache = true,
                "private" => directives.private = true,
                "max-age" => {
                    directives.max_age.get_or_insert_with(seconds);
                }
                "s-maxage" => {
                    directives.s_maxage.get_or_insert_with(seconds);
                }
                _ => {}
            }
        }
        directives
    }

    /// The request's directives: `Cache-Control`, else `Pragma: no-cache` (HTTP/1.0)
    /// read as `no-cache`.
    pub fn of_request<S: AsRef<str>>(cache_control: &[S], pragma: &[S]) -> Self {
        if !cache_control.is_empty() {
            return Self::parse(cache_control);
        }
        Self {
            no_cache: pragma
                .iter()
                .flat_map(|v| v.as_ref().split(','))
                .any(|p| p.trim().eq_ignore_ascii_case("no-cache")),
            ..Self::default()
        }
    }
}

/// What decides a response's freshness, besides its directives.
#[derive(Debug, Clone, Copy, Default)]
pub struct Freshness<'a> {
    /// The first `Expires` value.
    pub expires: Option<&'a str>,
    /// The first `Date` value.
    pub date: Option<&'a str>,
    /// The first `Age` value: how old the response already is (from caches upstream).
    pub age: Option<&'a str>,
}

/// For how many more seconds a response stays fresh, counted from now (`now_ms`):
/// its lifetime (`s-maxage`, else `max-age`, else `Expires` − `Date`, else
/// `default_ttl`) minus the `Age` it arrived with, at most `max_ttl`. 0: it is
/// already stale and is not stored.
pub fn fresh_for(
    directives: &Directives,
    freshness: Freshness<'_>,
    now_ms: u64,
    default_ttl: u64,
    max_ttl: u64,
) -> u64 {
    let lifetime = match (directives.s_maxage, directives.max_age, freshness.expires) {
        (Some(seconds), _, _) | (None, Some(seconds), _) => seconds,
        (None, None, Some(expires)) => match http_date_ms(expires) {
            // An Expires that does not parse ("0", "-1") means "already expired".
            None => 0,
            Some(expires) => {
                let date = freshness.date.and_then(http_date_ms).unwrap_or(now_ms);
                expires.saturating_sub(date) / 1000
            }
        },
        (None, None, None) => default_ttl,
    };
    let age = freshness
        .age
        .and_then(|a| a.trim().parse::<u64>().ok())
        .unwrap_or(0);
    lifetime.saturating_sub(age).min(max_ttl)
}

/// The header names a `Vary` value lists, lower-case, sorted, without duplicates;
/// `None` for `Vary: *` (the response varies on things no header says: never
/// cached).
pub fn vary_names<S: AsRef<str>>(values: &[S]) -> Option<Vec<String>> {
    let mut names = Vec::new();
    for name in values.iter().flat_map(|v| v.as_ref().split(',')) {
        let name = name.trim();
        if name == "*" {
            return None;
        }
        if !name.is_empty() {
            names.push(name.to_ascii_lowercase());
        }
    }
    names.sort();
    names.dedup();
    Some(names)
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`, the form RFC 9110 requires
/// senders to use) as milliseconds since the Unix epoch; `None` for anything else.
pub fn http_date_ms(text: &str) -> Option<u64> {
    let parts: Vec<&str> = text.split_ascii_whitespace().collect();
    let [_weekday, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: u64 = day.parse().ok().filter(|d| (1..=31).contains(d))?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as u64
        + 1;
    let year: u64 = year.parse().ok().filter(|y| *y >= 1970)?;
    let mut clock = time.split(':').map(|n| n.parse::<u64>().ok());
    let (Some(Some(h)), Some(Some(m)), Some(Some(s)), None) =
        (clock.next(), clock.next(), clock.next(), clock.next())
    else {
        return None;
    };
    if h > 23 || m > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(((days * 24 + h) * 60 + m) * 60_000 + s * 1000)
}

/// Days from 1970-01-01 to the date (proleptic Gregorian; Howard Hinnant's
/// `days_from_civil`, for years from 1970).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12; // March = 0
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_in_any_case_quoted_and_over_several_values() {
        let d = Directives::parse(&["Public, MAX-AGE=\"60\"", "s-maxage=10, max-age=5"]);
        assert_eq!(d.max_age, Some(60), "the first max-age counts");
        assert_eq!(d.s_maxage, Some(10));
        assert!(!d.no_store && !d.private && !d.no_cache);
        let d = Directives::parse(&["private=\"set-cookie\", no-cache=\"x\""]);
        assert!(d.private && d.no_cache);
        assert_eq!(Directives::parse(&["max-age=soon"]).max_age, Some(0));
        let pragma = Directives::of_request(&[] as &[&str], &["no-cache"]);
        assert!(pragma.no_cache);
        let both = Directives::of_request(&["max-age=5"], &["no-cache"]);
        assert!(!both.no_cache, "Cache-Control wins over Pragma");
    }

    #[test]
    fn freshness_s_maxage_then_max_age_then_expires_then_the_default() {
        let now = http_date_ms("Thu, 01 Jan 2026 00:00:00 GMT").unwrap();
        let none = Freshness::default();
        let fresh = |d: &str, f| fresh_for(&Directives::parse(&[d]), f, now, 30, 3600);
        assert_eq!(fresh("max-age=60, s-maxage=120", none), 120);
        assert_eq!(fresh("max-age=60", none), 60);
        assert_eq!(fresh("max-age=99999", none), 3600, "capped");
        assert_eq!(fresh("public", none), 30, "the default");
        let expires = Freshness {
            expires: Some("Thu, 01 Jan 2026 00:05:00 GMT"),
            date: Some("Thu, 01 Jan 2026 00:01:00 GMT"),
            age: None,
        };
        assert_eq!(fresh("", expires), 240, "Expires - Date");
        let bad = Freshness {
            expires: Some("0"),
            ..none
        };
        assert_eq!(fresh("", bad), 0);
        let aged = Freshness {
            age: Some("50"),
            ..none
        };
        assert_eq!(fresh("max-age=60", aged), 10);
        assert_eq!(fresh("max-age=40", aged), 0);
    }

    #[test]
    fn http_dates() {
        assert_eq!(
            http_date_ms("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777_000)
        );
        assert_eq!(http_date_ms("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(http_date_ms("Sunday, 06-Nov-94 08:49:37 GMT"), None);
        assert_eq!(http_date_ms("Sun, 06 Nov 1994 25:49:37 GMT"), None);
    }

    #[test]
    fn vary() {
        assert_eq!(
            vary_names(&["Accept-Language, accept-encoding", "ACCEPT-LANGUAGE"]),
            Some(vec!["accept-encoding".into(), "accept-language".into()])
        );
        assert_eq!(vary_names(&["accept, *"]), None);
        assert_eq!(vary_names::<&str>(&[]), Some(vec![]));
    }
}
