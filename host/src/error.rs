//! The errors clients see: one code table, one envelope, one place that turns a
//! gateway error into a response.
//!
//! Internal causes never reach the client: the envelope carries a short public
//! message, while the log line (written by the caller) carries the cause chain.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde::Serialize;

/// The `code` field of the envelope, each with its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// 400: the request is malformed.
    ValidationError,
    /// 401: missing or bad credentials.
    Unauthorized,
    /// 403: authenticated but not allowed.
    Forbidden,
    /// 404: no route for this request.
    NotFound,
    /// 405: a route takes this path, not this method.
    MethodNotAllowed,
    /// 409: conflicts with existing state.
    Conflict,
    /// 413: body over the route's limit.
    PayloadTooLarge,
    /// 414: request target too long.
    UriTooLong,
    /// 431: headers too large.
    HeadersTooLarge,
    /// 422: a reload was refused (admin API); the previous snapshot keeps serving.
    ReloadRejected,
    /// 429: rate limited.
    RateLimited,
    /// 500: the gateway failed.
    InternalError,
    /// 500: a plugin failed (trap, timeout, out of memory, invalid output).
    PluginError,
    /// 502: the upstream could not be reached or answered badly.
    BadGateway,
    /// 503: no upstream is available.
    ServiceUnavailable,
    /// 504: the upstream did not answer in time.
    GatewayTimeout,
}

impl ErrorCode {
    /// The code as it appears in the envelope, e.g. `"FORBIDDEN"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ValidationError => "VALIDATION_ERROR",
            Self::Unauthorized => "UNAUTHORIZED",
            Self::Forbidden => "FORBIDDEN",
            Self::NotFound => "NOT_FOUND",
            Self::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Self::Conflict => "CONFLICT",
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Self::UriTooLong => "URI_TOO_LONG",
            Self::HeadersTooLarge => "HEADERS_TOO_LARGE",
            Self::ReloadRejected => "RELOAD_REJECTED",
            Self::RateLimited => "RATE_LIMITED",
            Self::InternalError => "INTERNAL_ERROR",
            Self::PluginError => "PLUGIN_ERROR",
            Self::BadGateway => "BAD_GATEWAY",
            Self::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            Self::GatewayTimeout => "GATEWAY_TIMEOUT",
        }
    }

    /// The HTTP status for this code.
    pub fn status(self) -> StatusCode {
        match self {
            Self::ValidationError => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UriTooLong => StatusCode::URI_TOO_LONG,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::ReloadRejected => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::InternalError | Self::PluginError => StatusCode::INTERNAL_SERVER_ERROR,
            Self::BadGateway => StatusCode::BAD_GATEWAY,
            Self::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }
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
        *response.status_mut() = self.code.status();
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
    code: ErrorCode,
    request_id: &'a str,
    timestamp: String,
}

/// `{"success":false,"error":…,"code":…,"request_id":…,"timestamp":…}`
pub fn envelope(code: ErrorCode, message: &str, request_id: &str) -> Bytes {
    let envelope = Envelope {
        success: false,
        error: message,
        code,
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
    fn codes_are_written_as_serde_writes_them() {
        for code in [
            ErrorCode::ValidationError,
            ErrorCode::MethodNotAllowed,
            ErrorCode::ReloadRejected,
            ErrorCode::PluginError,
            ErrorCode::GatewayTimeout,
        ] {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::Value::from(code.as_str())
            );
        }
    }

    #[test]
    fn codes_map_to_their_status() {
        assert_eq!(ErrorCode::RateLimited.status(), 429);
        assert_eq!(ErrorCode::GatewayTimeout.status(), 504);
        assert_eq!(ErrorCode::HeadersTooLarge.status(), 431);
    }
}
