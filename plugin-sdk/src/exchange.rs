//! The one handle behind [`crate::Request`], [`crate::Reply`], [`crate::Context`] and
//! their [`crate::Headers`]: on `wasm32` the gateway's `exchange` resource (every
//! read and edit is a host call, checked there); elsewhere the [`crate::testing`]
//! harness's in-memory exchange, which applies the gateway's rules.
//!
//! Edits the gateway refuses through the plain methods (`headers.set`, `set_path` …)
//! are remembered here; when the hook returns, the export glue turns the first one
//! into the call's error, so the request fails with `PLUGIN_ERROR` as it would have
//! for invalid output. The `try_` methods hand the error to the plugin instead.

use std::cell::RefCell;

#[cfg(target_arch = "wasm32")]
use crate::__bindings::wasmgate::plugin::types as wit;

/// Which message a header or body call means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    Request,
    Response,
}

/// Why the gateway refused a change to a request or response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EditError {
    /// The header name is not an HTTP token.
    InvalidName(String),
    /// The value of this header holds a control character (other than tab).
    InvalidValue(String),
    /// The header is the gateway's to set (a hop-by-hop header such as `connection`).
    Reserved(String),
    /// The path is not a normalised absolute path; why.
    InvalidPath(String),
    /// The query holds a byte a query may not; why.
    InvalidQuery(String),
    /// The method is not an HTTP token.
    InvalidMethod(String),
    /// The status is not 100 to 599.
    InvalidStatus(u16),
    /// Not available here (a body the plugin did not ask for, a response in
    /// `on_request`); what.
    Unavailable(String),
    /// Over a limit of the gateway; which.
    TooLarge(String),
}

impl std::fmt::Display for EditError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InvalidName(name) => write!(f, "{name:?} is not a valid header name"),
            Self::InvalidValue(name) => {
                write!(f, "the value of header {name} is not a valid header value")
            }
            Self::Reserved(name) => write!(f, "header {name} is the gateway's to set"),
            Self::InvalidPath(why) => write!(f, "invalid path: {why}"),
            Self::InvalidQuery(why) => write!(f, "invalid query: {why}"),
            Self::InvalidMethod(method) => write!(f, "{method:?} is not a valid method"),
            Self::InvalidStatus(status) => write!(f, "status {status} is out of range 100..=599"),
            Self::Unavailable(what) => write!(f, "not available: {what}"),
            Self::TooLarge(what) => write!(f, "over the limit: {what}"),
        }
    }
}

impl std::error::Error for EditError {}

#[cfg(target_arch = "wasm32")]
impl From<wit::EditError> for EditError {
    fn from(e: wit::EditError) -> Self {
        match e {
            wit::EditError::InvalidName(s) => Self::InvalidName(s),
            wit::EditError::InvalidValue(s) => Self::InvalidValue(s),
            wit::EditError::Reserved(s) => Self::Reserved(s),
            wit::EditError::InvalidPath(s) => Self::InvalidPath(s),
            wit::EditError::InvalidQuery(s) => Self::InvalidQuery(s),
            wit::EditError::InvalidMethod(s) => Self::InvalidMethod(s),
            wit::EditError::InvalidStatus(s) => Self::InvalidStatus(s),
            wit::EditError::Unavailable(s) => Self::Unavailable(s),
            wit::EditError::TooLarge(s) => Self::TooLarge(s),
        }
    }
}

thread_local! {
    /// The first edit refused during the current hook, through a method that does
    /// not return the error.
    static REFUSED: RefCell<Option<EditError>> = const { RefCell::new(None) };
}

/// Remembers `result`'s error (the first one of the hook) for the export glue.
pub(crate) fn remember(result: Result<(), EditError>) {
    if let Err(error) = result {
        REFUSED.with(|slot| {
            slot.borrow_mut().get_or_insert(error);
        });
    }
}

/// The first refused edit of the hook that just ran, if any; clears it.
pub(crate) fn take_refused() -> Option<EditError> {
    REFUSED.with(|slot| slot.borrow_mut().take())
}

/// A handle on the exchange of the current call.
#[derive(Clone, Copy)]
pub(crate) struct Ex<'a> {
    #[cfg(target_arch = "wasm32")]
    inner: &'a wit::Exchange,
    #[cfg(not(target_arch = "wasm32"))]
    inner: std::marker::PhantomData<&'a ()>,
}

#[cfg(target_arch = "wasm32")]
impl<'a> Ex<'a> {
    pub(crate) fn new(inner: &'a wit::Exchange) -> Self {
        Self { inner }
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl Ex<'_> {
    pub(crate) fn native() -> Self {
        Self {
            inner: std::marker::PhantomData,
        }
    }
}

#[cfg(target_arch = "wasm32")]
fn part(part: Part) -> wit::Part {
    match part {
        Part::Request => wit::Part::Request,
        Part::Response => wit::Part::Response,
    }
}

/// Each method: the host call on `wasm32`, the harness's exchange elsewhere.
macro_rules! delegate {
    ($(fn $name:ident(&self $(, $arg:ident : $ty:ty)*) -> $ret:ty => |$ex:ident| $wasm:expr;)*) => {
        impl Ex<'_> {
            $(
                pub(crate) fn $name(&self $(, $arg: $ty)*) -> $ret {
                    #[cfg(target_arch = "wasm32")]
                    {
                        let $ex = self.inner;
                        $wasm
                    }
                    #[cfg(not(target_arch = "wasm32"))]
                    crate::testing::with_exchange(|ex| ex.$name($($arg),*))
                }
            )*
        }
    };
}

delegate! {
    fn request_id(&self) -> String => |ex| ex.request_id();
    fn trace_id(&self) -> String => |ex| ex.trace_id();
    fn route(&self) -> String => |ex| ex.route();
    fn client_addr(&self) -> String => |ex| ex.client_addr();
    fn received_ns(&self) -> u64 => |ex| ex.received_ns();
    fn received_method(&self) -> crate::Method => |ex| ex.received_method().into();
    fn received_path(&self) -> String => |ex| ex.received_path();
    fn param(&self, name: &str) -> Option<String> => |ex| ex.param(name);
    fn params(&self) -> Vec<(String, String)> => |ex| ex.params();
    fn var(&self, name: &str) -> Option<String> => |ex| ex.var(name);
    fn vars(&self) -> Vec<(String, String)> => |ex| ex.vars();
    fn set_var(&self, name: &str, value: &str) -> Result<(), EditError> => |ex| ex.set_var(name, value).map_err(Into::into);
    fn watch_messages(&self) -> Result<(), EditError> => |ex| ex.watch_messages().map_err(Into::into);
    fn upstream(&self) -> Option<crate::UpstreamCall> => |ex| ex.upstream().map(Into::into);
    fn method(&self) -> crate::Method => |ex| ex.method().into();
    fn set_method(&self, method: &crate::Method) -> Result<(), EditError> => |ex| ex.set_method(&method.into()).map_err(Into::into);
    fn path(&self) -> String => |ex| ex.path();
    fn set_path(&self, path: &str) -> Result<(), EditError> => |ex| ex.set_path(path).map_err(Into::into);
    fn query(&self) -> Option<String> => |ex| ex.query();
    fn set_query(&self, query: Option<&str>) -> Result<(), EditError> => |ex| ex.set_query(query).map_err(Into::into);
    fn status(&self) -> Option<u16> => |ex| ex.status();
    fn set_status(&self, status: u16) -> Result<(), EditError> => |ex| ex.set_status(status).map_err(Into::into);
    fn header(&self, p: Part, name: &str) -> Option<Vec<u8>> => |ex| ex.header(part(p), name);
    fn header_all(&self, p: Part, name: &str) -> Vec<Vec<u8>> => |ex| ex.header_all(part(p), name);
    fn headers(&self, p: Part, names: &[String]) -> Vec<Option<Vec<u8>>> => |ex| ex.headers(part(p), names);
    fn has_header(&self, p: Part, name: &str) -> bool => |ex| ex.has_header(part(p), name);
    fn set_header(&self, p: Part, name: &str, value: &[u8]) -> Result<(), EditError> => |ex| ex.set_header(part(p), name, value).map_err(Into::into);
    fn append_header(&self, p: Part, name: &str, value: &[u8]) -> Result<(), EditError> => |ex| ex.append_header(part(p), name, value).map_err(Into::into);
    fn remove_header(&self, p: Part, name: &str) -> Result<bool, EditError> => |ex| ex.remove_header(part(p), name).map_err(Into::into);
    fn header_entries(&self, p: Part) -> Vec<(String, Vec<u8>)> => |ex| ex.header_entries(part(p));
    fn body(&self, p: Part) -> Option<Vec<u8>> => |ex| ex.body(part(p));
    fn set_body(&self, p: Part, body: &[u8]) -> Result<(), EditError> => |ex| ex.set_body(part(p), body).map_err(Into::into);
}
