//! The `code`s of the gateway's JSON error envelope and their HTTP statuses: the one
//! table the host (`error.rs`) and the plugin SDK (`envelope.rs`, which includes this
//! file) both use, so a plugin's refusal and the gateway's own carry the same code
//! for the same status. Plain Rust with no dependencies, so that it builds in both.

/// The envelope's `code`, each with its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// 400 `VALIDATION_ERROR`: the request is malformed.
    ValidationError,
    /// 401 `UNAUTHORIZED`: missing or bad credentials.
    Unauthorized,
    /// 403 `FORBIDDEN`: authenticated but not allowed.
    Forbidden,
    /// 404 `NOT_FOUND`: no route (or no such resource).
    NotFound,
    /// 405 `METHOD_NOT_ALLOWED`: a route takes this path, not this method.
    MethodNotAllowed,
    /// 408 `REQUEST_TIMEOUT`: the client stopped sending its request body.
    RequestTimeout,
    /// 409 `CONFLICT`: conflicts with existing state.
    Conflict,
    /// 413 `PAYLOAD_TOO_LARGE`: a body over the route's limit.
    PayloadTooLarge,
    /// 414 `URI_TOO_LONG`: the request target is too long.
    UriTooLong,
    /// 415 `UNSUPPORTED_MEDIA_TYPE`: the request body comes in a form (a content
    /// coding) that cannot be read.
    UnsupportedMediaType,
    /// 422 `RELOAD_REJECTED`: a reload was refused (admin API); the previous snapshot
    /// keeps serving.
    ReloadRejected,
    /// 429 `RATE_LIMITED`: too many requests; `Retry-After` says when to come back.
    RateLimited,
    /// 431 `HEADERS_TOO_LARGE`: the request headers are too large.
    HeadersTooLarge,
    /// 500 `INTERNAL_ERROR`: the gateway (or a plugin's own logic) failed.
    InternalError,
    /// 500 `PLUGIN_ERROR`: a plugin failed (trap, timeout, out of memory, invalid
    /// output).
    PluginError,
    /// 502 `BAD_GATEWAY`: the upstream could not be reached or answered badly.
    BadGateway,
    /// 503 `SERVICE_UNAVAILABLE`: no upstream is available.
    ServiceUnavailable,
    /// 504 `GATEWAY_TIMEOUT`: the upstream did not answer in time.
    GatewayTimeout,
}

impl ErrorCode {
    /// Every code, in status order.
    pub const ALL: [Self; 18] = [
        Self::ValidationError,
        Self::Unauthorized,
        Self::Forbidden,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::RequestTimeout,
        Self::Conflict,
        Self::PayloadTooLarge,
        Self::UriTooLong,
        Self::UnsupportedMediaType,
        Self::ReloadRejected,
        Self::RateLimited,
        Self::HeadersTooLarge,
        Self::InternalError,
        Self::PluginError,
        Self::BadGateway,
        Self::ServiceUnavailable,
        Self::GatewayTimeout,
    ];

    /// The HTTP status for this code.
    pub fn status(self) -> u16 {
        match self {
            Self::ValidationError => 400,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::RequestTimeout => 408,
            Self::Conflict => 409,
            Self::PayloadTooLarge => 413,
            Self::UriTooLong => 414,
            Self::UnsupportedMediaType => 415,
            Self::ReloadRejected => 422,
            Self::RateLimited => 429,
            Self::HeadersTooLarge => 431,
            Self::InternalError | Self::PluginError => 500,
            Self::BadGateway => 502,
            Self::ServiceUnavailable => 503,
            Self::GatewayTimeout => 504,
        }
    }

    /// The code as it appears in the envelope, e.g. `"FORBIDDEN"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ValidationError => "VALIDATION_ERROR",
            Self::Unauthorized => "UNAUTHORIZED",
            Self::Forbidden => "FORBIDDEN",
            Self::NotFound => "NOT_FOUND",
            Self::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Self::RequestTimeout => "REQUEST_TIMEOUT",
            Self::Conflict => "CONFLICT",
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Self::UriTooLong => "URI_TOO_LONG",
            Self::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            Self::ReloadRejected => "RELOAD_REJECTED",
            Self::RateLimited => "RATE_LIMITED",
            Self::HeadersTooLarge => "HEADERS_TOO_LARGE",
            Self::InternalError => "INTERNAL_ERROR",
            Self::PluginError => "PLUGIN_ERROR",
            Self::BadGateway => "BAD_GATEWAY",
            Self::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            Self::GatewayTimeout => "GATEWAY_TIMEOUT",
        }
    }

    /// The usual code for an error `status`, if the table has one (500 gives
    /// `INTERNAL_ERROR`, 422 none: `RELOAD_REJECTED` is the admin API's own).
    pub fn for_status(status: u16) -> Option<Self> {
        match status {
            500 => Some(Self::InternalError),
            422 => None,
            _ => Self::ALL.into_iter().find(|c| c.status() == status),
        }
    }

    /// The code for an envelope `code` string, e.g. from a plugin's config.
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_one_name_and_parses_back() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
            assert!((400..=599).contains(&code.status()), "{code:?}");
        }
        assert_eq!(ErrorCode::parse("NOPE"), None);
    }

    #[test]
    fn a_status_maps_to_its_usual_code() {
        assert_eq!(ErrorCode::for_status(500), Some(ErrorCode::InternalError));
        assert_eq!(ErrorCode::for_status(408), Some(ErrorCode::RequestTimeout));
        assert_eq!(ErrorCode::for_status(429), Some(ErrorCode::RateLimited));
        assert_eq!(ErrorCode::for_status(422), None);
        assert_eq!(ErrorCode::for_status(418), None);
        for code in ErrorCode::ALL {
            if let Some(usual) = ErrorCode::for_status(code.status()) {
                assert_eq!(usual.status(), code.status());
            }
        }
    }
}
