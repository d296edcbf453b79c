//! Properties of the checks on what a plugin sets through the `exchange` resource,
//! called as a guest calls them (the host functions, on an exchange lent through the
//! instance's resource table): a change is refused with an error, leaving the exchange
//! as it was, or it is read back exactly as it was set; nothing accepted is a header
//! name that is not a token, a value with CR, LF or NUL, a path that is not normalised,
//! or a path and query the upstream request could not carry as they are.

use std::cell::RefCell;
use std::collections::HashMap;
use std::task::{Context, Poll, Waker};

use proptest::prelude::*;
use proptest::test_runner::Config;
use types::HostExchange;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

use super::*;
use crate::allowlist::Allowlist;
use crate::metrics::Metrics;
use crate::plugin::{Grants, OutboundCalls, Secrets, Targets};
use crate::state::StateStore;

/// `default_cases` cases, or `PROPTEST_CASES` when it is set; no regression files
/// (a failure's shrunk input becomes a named example test).
fn cases(default_cases: u32) -> Config {
    let mut config = Config {
        failure_persistence: None,
        ..Config::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = default_cases;
    }
    config
}

/// The value of a host call; they never wait on anything touched here.
fn now<F: std::future::Future>(call: F) -> F::Output {
    let mut call = std::pin::pin!(call);
    match call.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("an exchange call waited"),
    }
}

/// An instance's host state with one exchange lent to it, as during a plugin call.
struct Lent {
    host: HostState,
    rep: u32,
    _dir: tempfile::TempDir,
}

impl Lent {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let grants = Grants {
            plugin: "p".into(),
            route: "r".into(),
            kv: store.namespace("p").unwrap(),
            kv_durable: false,
            http: OutboundCalls::new(HashMap::new()),
            targets: Targets::new(HashMap::new(), Allowlist::default(), None),
            memory_limit: 1 << 20,
            secrets: Arc::new(Secrets::new()),
        };
        let mut host = HostState::new(
            Arc::new(grants),
            MemoryOutputPipe::new(1024),
            Arc::new(Metrics::new()),
        );
        let lent = host.table_mut().push(fresh(false)).unwrap();
        Self {
            host,
            rep: lent.rep(),
            _dir: dir,
        }
    }

    fn handle(&self) -> Handle {
        Resource::new_borrow(self.rep)
    }

    /// Starts a new request, in the request phase or the response phase.
    fn reset(&mut self, response_phase: bool) {
        let handle = self.handle();
        *self.host.exchange(&handle) = *fresh(response_phase);
    }

    fn state(&mut self) -> &mut ExchangeState {
        let handle = self.handle();
        self.host.exchange(&handle)
    }

    fn entries(&mut self, part: Part) -> Vec<(String, Vec<u8>)> {
        now(self.host.header_entries(self.handle(), part))
    }
}

fn fresh(response_phase: bool) -> Box<ExchangeState> {
    let facts = Facts {
        request_id: "id".into(),
        trace_id: "trace".into(),
        route: "r".into(),
        client_addr: "127.0.0.1:1".into(),
        received_ns: 0,
        method: Method::GET,
        path: "/start".into(),
        params: Vec::new(),
    };
    let mut headers = HeaderMap::new();
    headers.insert("x-a", HeaderValue::from_static("1"));
    headers.insert("host", HeaderValue::from_static("h.example"));
    let mut exchange = ExchangeState::new(Arc::new(facts), Some("q=1".into()), headers.clone());
    if response_phase {
        exchange.response = Some(ResponseState {
            status: StatusCode::OK,
            headers,
            body: None,
        });
    }
    Box::new(exchange)
}

/// An HTTP token as RFC 9110 defines it: one or more `tchar`.
fn is_tchar_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn flip_case(text: &str, flips: &[bool]) -> String {
    text.chars()
        .zip(flips.iter().cycle())
        .map(|(c, &flip)| if flip { c.to_ascii_uppercase() } else { c })
        .collect()
}

fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,16}",
        1 => (
            proptest::sample::select(message_rules::HOP_BY_HOP.to_vec()),
            proptest::collection::vec(any::<bool>(), 1..4),
        )
            .prop_map(|(name, flips)| flip_case(name, &flips)),
        1 => proptest::sample::select(vec![
            "", "x-a", "Host", "X-A", "x y", "x:y", "x\r\ny", "x\0", "caf\u{e9}", "(x)", "x/y",
            "content-length", "x-\u{7f}",
        ])
        .prop_map(str::to_string),
        1 => "[ -~\\r\\n\\t\\x00]{0,8}",
        1 => any::<String>(),
    ]
}

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => "[ -~\t]{0,16}".prop_map(String::into_bytes),
        2 => proptest::collection::vec(any::<u8>(), 0..16),
        1 => proptest::sample::select(vec![
            "a\r\nX-Evil: 1", "a\nb", "a\rb", "a\0b", " padded ", "\t", "", "caf\u{e9}", "\u{7f}",
        ])
        .prop_map(|v| v.as_bytes().to_vec()),
    ]
}

/// Paths a plugin might set, some normalised, many not.
fn path() -> impl Strategy<Value = String> {
    const PIECES: &[&str] = &[
        "/", "//", "a", "admin", ".", "..", "%2e", "%2F", "%41", "%20", "%3F", "%23", ";", "\\",
        "?", "#", " ", "<", ">", "`", "\"", "{", "}", "|", "^", "[", "]", "'", "!", "$", "&", "(",
        "*", "+", ",", "=", ":", "@", "~", "\u{e9}", "%C3%A9", "\t", "%",
    ];
    let piece = prop_oneof![
        4 => proptest::sample::select(PIECES).prop_map(str::to_string),
        1 => any::<char>().prop_map(String::from),
    ];
    (any::<bool>(), proptest::collection::vec(piece, 0..8)).prop_map(|(slash, pieces)| {
        let mut path = String::from(if slash { "/" } else { "" });
        path.extend(pieces);
        path
    })
}

fn query() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(prop_oneof![
        3 => "[!-~]{0,12}",
        1 => "[ -~]{0,12}",
        1 => any::<String>(),
    ])
}

#[test]
fn a_path_the_upstream_would_read_as_another_is_not_set() {
    let mut lent = Lent::new();
    let set = now(lent
        .host
        .set_path(lent.handle(), "/users/x?admin=1#/p".into()));
    assert!(
        matches!(&set, Err(EditError::InvalidPath(why)) if why.contains("/users/x%3Fadmin=1%23/p")),
        "{set:?}"
    );
    assert_eq!(lent.state().path, "/start");
}

#[test]
fn prop_exchange_headers_are_read_back_exactly_or_refused() {
    let lent = RefCell::new(Lent::new());
    proptest!(cases(1024), |(
        response_phase in any::<bool>(),
        response_part in any::<bool>(),
        append in any::<bool>(),
        name in header_name(),
        value in header_value(),
    )| {
        let mut guard = lent.borrow_mut();
        let lent = &mut *guard;
        lent.reset(response_phase);
        let part = if response_part { Part::Response } else { Part::Request };
        let before = lent.entries(part);
        let count = now(lent.host.header_all(lent.handle(), part, name.clone())).len();
        let result = if append {
            now(lent.host.append_header(lent.handle(), part, name.clone(), value.clone()))
        } else {
            now(lent.host.set_header(lent.handle(), part, name.clone(), value.clone()))
        };
        // The rules, as documented: a token name the gateway does not own, a value with
        // no control character but tab, on a part there is to change.
        let valid_value = value.iter().all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f));
        let part_there = response_part == response_phase;
        let allowed = is_tchar_token(&name)
            && !message_rules::HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(&name))
            && valid_value
            && part_there;
        let shown = String::from_utf8_lossy(&value);
        prop_assert_eq!(result.is_ok(), allowed, "{:?}: {:?}", name, shown);
        if result.is_err() {
            prop_assert_eq!(lent.entries(part), before, "a refused change changed the headers");
            return Ok(());
        }
        prop_assert!(HeaderName::from_bytes(name.as_bytes()).is_ok());
        prop_assert!(!value.iter().any(|b| b"\r\n\0".contains(b)));
        let all = now(lent.host.header_all(lent.handle(), part, name.clone()));
        if append {
            prop_assert_eq!(all.len(), count + 1);
            prop_assert_eq!(all.last(), Some(&value));
        } else {
            prop_assert_eq!(&all, &vec![value.clone()]);
            let first = now(lent.host.header(lent.handle(), part, name.clone()));
            prop_assert_eq!(first, Some(value.clone()));
        }
        prop_assert!(now(lent.host.has_header(lent.handle(), part, name.clone())));
        let entry = (name.to_ascii_lowercase(), value.clone());
        prop_assert!(lent.entries(part).contains(&entry));
    });
}

#[test]
fn prop_exchange_header_reads_and_removals_never_panic() {
    let lent = RefCell::new(Lent::new());
    proptest!(cases(1024), |(
        response_phase in any::<bool>(),
        response_part in any::<bool>(),
        names in proptest::collection::vec(header_name(), 1..4),
    )| {
        let mut guard = lent.borrow_mut();
        let lent = &mut *guard;
        lent.reset(response_phase);
        let part = if response_part { Part::Response } else { Part::Request };
        now(lent.host.headers(lent.handle(), part, names.clone()));
        for name in names {
            now(lent.host.header(lent.handle(), part, name.clone()));
            now(lent.host.header_all(lent.handle(), part, name.clone()));
            let had = now(lent.host.has_header(lent.handle(), part, name.clone()));
            if let Ok(removed) = now(lent.host.remove_header(lent.handle(), part, name.clone())) {
                prop_assert_eq!(removed, had);
                prop_assert!(!now(lent.host.has_header(lent.handle(), part, name.clone())));
            }
        }
    });
}

#[test]
fn prop_exchange_paths_and_queries_are_read_back_or_refused() {
    let lent = RefCell::new(Lent::new());
    proptest!(cases(1024), |(path in path(), query in query())| {
        let mut guard = lent.borrow_mut();
        let lent = &mut *guard;
        lent.reset(false);
        match now(lent.host.set_path(lent.handle(), path.clone())) {
            Ok(()) => {
                prop_assert_eq!(&lent.state().path, &path);
                prop_assert_eq!(normalize_path(&path), Ok(path.clone()));
            }
            Err(_) => prop_assert_eq!(lent.state().path.as_str(), "/start"),
        }
        match now(lent.host.set_query(lent.handle(), query.clone())) {
            Ok(()) => {
                prop_assert_eq!(&lent.state().query, &query);
                if let Some(query) = &query {
                    prop_assert!(message_rules::check_query(query).is_ok());
                }
            }
            Err(_) => prop_assert_eq!(lent.state().query.as_deref(), Some("q=1")),
        }
        // The request target the pipeline sends upstream carries them as they are.
        let (path, query) = (lent.state().path.clone(), lent.state().query.clone());
        let target = match &query {
            Some(query) => format!("{path}?{query}"),
            None => path.clone(),
        };
        let uri: Result<http::Uri, _> = target.parse();
        prop_assert!(uri.is_ok(), "{:?} cannot be sent: {:?}", target, uri);
        let uri = uri.unwrap();
        prop_assert_eq!(uri.path(), path.as_str(), "{:?}", target);
        prop_assert_eq!(uri.query(), query.as_deref(), "{:?}", target);
    });
}

#[test]
fn prop_exchange_methods_statuses_and_vars_are_read_back_or_refused() {
    let lent = RefCell::new(Lent::new());
    let token = prop_oneof![
        3 => "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}",
        1 => proptest::sample::select(vec![
            "GET", "get", "PATCH", "", "G T", "GET\r\n", "caf\u{e9}",
        ])
        .prop_map(str::to_string),
        1 => any::<String>(),
    ];
    proptest!(cases(1024), |(
        response_phase in any::<bool>(),
        method in token,
        status in any::<u16>(),
        var in (any::<String>(), any::<String>()),
    )| {
        let mut guard = lent.borrow_mut();
        let lent = &mut *guard;
        lent.reset(response_phase);
        let result = now(lent.host.set_method(lent.handle(), types::Method::Other(method.clone())));
        prop_assert_eq!(result.is_ok(), !response_phase && is_tchar_token(&method), "{:?}", method);
        let read = now(lent.host.method(lent.handle()));
        let read = http_method(&read).unwrap();
        if result.is_ok() {
            prop_assert_eq!(read.as_str(), method.as_str());
        } else {
            prop_assert_eq!(read, Method::GET);
        }

        let result = now(lent.host.set_status(lent.handle(), status));
        prop_assert_eq!(result.is_ok(), response_phase && (100..=599).contains(&status));
        let read = now(lent.host.status(lent.handle()));
        match (response_phase, result.is_ok()) {
            (true, true) => prop_assert_eq!(read, Some(status)),
            (true, false) => prop_assert_eq!(read, Some(200)),
            (false, _) => prop_assert_eq!(read, None),
        }

        let (name, value) = var;
        let result = now(lent.host.set_var(lent.handle(), name.clone(), value.clone()));
        prop_assert_eq!(result.is_ok(), name.len() + value.len() <= MAX_VAR_BYTES);
        let read = now(lent.host.var(lent.handle(), name.clone()));
        prop_assert_eq!(read, result.is_ok().then_some(value));
    });
}
