//! The gateway's JSON error envelope, so a plugin's refusals look like the gateway's
//! own: `{"success": false, "error", "code", "request_id", "timestamp"}`.

use crate::message::{Context, Response};

/// The envelope's `code`, each with its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 400
    ValidationError,
    /// 401
    Unauthorized,
    /// 403
    Forbidden,
    /// 404
    NotFound,
    /// 409
    Conflict,
    /// 413
    PayloadTooLarge,
    /// 429
    RateLimited,
    /// 500
    InternalError,
    /// 500
    PluginError,
    /// 502
    BadGateway,
    /// 503
    ServiceUnavailable,
    /// 504
    GatewayTimeout,
}

impl ErrorCode {
    /// The HTTP status for this code.
    pub fn status(self) -> u16 {
        match self {
            Self::ValidationError => 400,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::Conflict => 409,
            Self::PayloadTooLarge => 413,
            Self::RateLimited => 429,
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
            Self::Conflict => "CONFLICT",
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Self::RateLimited => "RATE_LIMITED",
            Self::InternalError => "INTERNAL_ERROR",
            Self::PluginError => "PLUGIN_ERROR",
            Self::BadGateway => "BAD_GATEWAY",
            Self::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            Self::GatewayTimeout => "GATEWAY_TIMEOUT",
        }
    }

    /// The code for an envelope `code` string, e.g. from a plugin's config.
    pub fn parse(code: &str) -> Option<Self> {
        [
            Self::ValidationError,
            Self::Unauthorized,
            Self::Forbidden,
            Self::NotFound,
            Self::Conflict,
            Self::PayloadTooLarge,
            Self::RateLimited,
            Self::InternalError,
            Self::PluginError,
            Self::BadGateway,
            Self::ServiceUnavailable,
            Self::GatewayTimeout,
        ]
        .into_iter()
        .find(|c| c.as_str() == code)
    }
}

impl Response {
    /// The gateway's error envelope with `status`, `code` and a message for the client.
    /// `code` is free text so plugins may add their own codes; prefer [`ErrorCode`].
    pub fn error(status: u16, code: &str, message: &str, ctx: &Context) -> Self {
        let body = serde_json::json!({
            "success": false,
            "error": message,
            "code": code,
            "request_id": ctx.request_id,
            "timestamp": rfc3339_utc(crate::clock::now_unix_ms()),
        });
        Self::json(status, &body)
    }

    /// The envelope for `code` with its usual status.
    pub fn from_code(code: ErrorCode, message: &str, ctx: &Context) -> Self {
        Self::error(code.status(), code.as_str(), message, ctx)
    }

    /// 400 `VALIDATION_ERROR`.
    pub fn bad_request(message: &str, ctx: &Context) -> Self {
        Self::from_code(ErrorCode::ValidationError, message, ctx)
    }

    /// 401 `UNAUTHORIZED`.
    pub fn unauthorized(message: &str, ctx: &Context) -> Self {
        Self::from_code(ErrorCode::Unauthorized, message, ctx)
    }

    /// 403 `FORBIDDEN`.
    pub fn forbidden(message: &str, ctx: &Context) -> Self {
        Self::from_code(ErrorCode::Forbidden, message, ctx)
    }

    /// 404 `NOT_FOUND`.
    pub fn not_found(message: &str, ctx: &Context) -> Self {
        Self::from_code(ErrorCode::NotFound, message, ctx)
    }

    /// 429 `RATE_LIMITED`.
    pub fn rate_limited(message: &str, ctx: &Context) -> Self {
        Self::from_code(ErrorCode::RateLimited, message, ctx)
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for milliseconds since the Unix epoch.
pub(crate) fn rfc3339_utc(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        unix_ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_utc(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339_utc(1_795_355_400_000), "2026-11-22T13:50:00.000Z");
    }

    #[test]
    fn codes_round_trip() {
        for code in ["FORBIDDEN", "RATE_LIMITED", "GATEWAY_TIMEOUT"] {
            assert_eq!(ErrorCode::parse(code).unwrap().as_str(), code);
        }
        assert_eq!(ErrorCode::parse("NOPE"), None);
        assert_eq!(ErrorCode::Conflict.status(), 409);
    }
}
