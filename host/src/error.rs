//! The errors clients see: the envelope, and the one place that turns a gateway error
//! into a response. The code table is `error_code`, shared with the plugin SDK.
//!
//! Internal causes never reach the client: the envelope carries a short public
//! message, while the log line (written by the caller) carries the cause chain.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde::Serialize;

pub use crate::error_code::ErrorCode;

/// The HTTP status of `code`.
pub fn status_of(code: ErrorCode) -> StatusCode {
    StatusCode::from_u16(code.status()).expect("the table's statuses are valid")
}

/// A response the gateway makes itself: a code and a message safe to show clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// The code (and so the status).
    pub code: ErrorCode,
    /// The public message.
    pub message: String,
    /// Extra headers (e.g. `Allow` on 405).
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl Reject {
    /// A rejection with `code` and a public `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// Adds a header to the response.
    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The envelope body for this rejection.
    pub fn body(&self, request_id: &str) -> Bytes {
        envelope(self.code, &self.message, request_id)
    }

    /// The whole response, with `X-Request-Id`.
    pub fn into_response<B: From<Bytes>>(self, request_id: &str) -> Response<B> {
        let body = self.body(request_id);
        let mut response = Response::new(B::from(body));
        *response.status_mut() = status_of(self.code);
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for (name, value) in self.headers {
            headers.append(name, value);
        }
        if let Ok(id) = HeaderValue::from_str(request_id) {
            headers.insert(crate::request_id::HEADER, id);
        }
        response
    }
}

#[derive(Serialize)]
struct Envelope<'a> {
    success: bool,
    error: &'a str,
    code: &'static str,
    request_id: &'a str,
    timestamp: String,
}

/// `{"success":false,"error":…,"code":…,"request_id":…,"timestamp":…}`
pub fn envelope(code: ErrorCode, message: &str, request_id: &str) -> Bytes {
    let envelope = Envelope {
        success: false,
        error: message,
        code: code.as_str(),
        request_id,
        timestamp: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
    };
    Bytes::from(serde_json::to_vec(&envelope).expect("envelope serialises"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_has_the_documented_fields() {
        let body = envelope(ErrorCode::PluginError, "plugin failed", "req-1");
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["success"], false);
        assert_eq!(value["error"], "plugin failed");
        assert_eq!(value["code"], "PLUGIN_ERROR");
        assert_eq!(value["request_id"], "req-1");
        let timestamp = value["timestamp"].as_str().unwrap();
        assert!(humantime::parse_rfc3339(timestamp).is_ok(), "{timestamp}");
    }

    #[test]
    fn every_code_has_a_valid_http_status() {
        for code in ErrorCode::ALL {
            assert_eq!(status_of(code).as_u16(), code.status());
        }
        assert_eq!(status_of(ErrorCode::HeadersTooLarge), 431);
    }
}
