//! The gateway's JSON error envelope, so a plugin's refusals look like the gateway's
//! own, byte for byte: `{"success":false,"error":…,"code":…,"request_id":…,"timestamp":…}`.
//! Written by hand rather than through `serde_json::Value`, which keeps the fields in
//! this order and keeps float formatting out of every plugin.

use crate::message::{Context, Response};

pub use crate::error_code::ErrorCode;

impl Response {
    /// The gateway's error envelope with `status`, `code` and a message for the client.
    /// `code` is free text so plugins may add their own codes; prefer [`ErrorCode`].
    ///
    /// The body is `{"success":false,"error":"<message>","code":"<code>",
    /// "request_id":"<ctx.request_id>","timestamp":"<RFC 3339 UTC, milliseconds>"}` with
    /// `content-type: application/json`; the timestamp comes from [`crate::clock`].
    pub fn error(status: u16, code: &str, message: &str, ctx: &Context) -> Self {
        let timestamp = rfc3339_utc(crate::clock::now_unix_ms());
        let request_id = ctx.request_id();
        let mut body = String::with_capacity(96 + message.len() + request_id.len());
        body.push_str(r#"{"success":false,"error":"#);
        push_json_string(&mut body, message);
        body.push_str(r#","code":"#);
        push_json_string(&mut body, code);
        body.push_str(r#","request_id":"#);
        push_json_string(&mut body, &request_id);
        body.push_str(r#","timestamp":"#);
        push_json_string(&mut body, &timestamp);
        body.push('}');
        let mut response = Self::new(status).with_header("content-type", "application/json");
        response.body = Some(body.into_bytes());
        response
    }

    /// The error envelope for `code` with details for the client in `data` (e.g. which
    /// fields of a form are wrong): `{"success":false,"error":…,"code":…,"data":…,
    /// "request_id":…,"timestamp":…}`.
    pub fn error_with_data(
        code: ErrorCode,
        message: &str,
        data: &impl serde::Serialize,
        ctx: &Context,
    ) -> Self {
        let data = serde_json::to_string(data).unwrap_or_else(|_| "null".into());
        let mut response = Self::from_code(code, message, ctx);
        let body = response.body.take().unwrap_or_default();
        let text = String::from_utf8(body).expect("the envelope is UTF-8");
        let at = text
            .find(r#","request_id":"#)
            .expect("the envelope has a request id");
        response.body =
            Some(format!("{},\"data\":{data}{}", &text[..at], &text[at..]).into_bytes());
        response
    }

    /// A success envelope, as service plugins answer (SkyClust's shape):
    /// `{"success":true,"message":…,"data":…,"request_id":…,"timestamp":…}` with
    /// `content-type: application/json`.
    pub fn success(
        status: u16,
        message: &str,
        data: &impl serde::Serialize,
        ctx: &Context,
    ) -> Self {
        let timestamp = rfc3339_utc(crate::clock::now_unix_ms());
        let data = serde_json::to_string(data).unwrap_or_else(|_| "null".into());
        let mut body = String::with_capacity(96 + message.len() + data.len());
        body.push_str(r#"{"success":true,"message":"#);
        push_json_string(&mut body, message);
        body.push_str(r#","data":"#);
        body.push_str(&data);
        body.push_str(r#","request_id":"#);
        push_json_string(&mut body, &ctx.request_id());
        body.push_str(r#","timestamp":"#);
        push_json_string(&mut body, &timestamp);
        body.push('}');
        let mut response = Self::new(status).with_header("content-type", "application/json");
        response.body = Some(body.into_bytes());
        response
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

    /// 409 `CONFLICT`.
    pub fn conflict(message: &str, ctx: &Context) -> Self {
        Self::from_code(ErrorCode::Conflict, message, ctx)
    }

    /// 413 `PAYLOAD_TOO_LARGE`.
    pub fn payload_too_large(message: &str, ctx: &Context) -> Self {
        Self::from_code(ErrorCode::PayloadTooLarge, message, ctx)
    }

    /// 429 `RATE_LIMITED`.
    pub fn rate_limited(message: &str, ctx: &Context) -> Self {
        Self::from_code(ErrorCode::RateLimited, message, ctx)
    }

    /// 500 `INTERNAL_ERROR`.
    pub fn internal_error(message: &str, ctx: &Context) -> Self {
        Self::from_code(ErrorCode::InternalError, message, ctx)
    }

    /// 503 `SERVICE_UNAVAILABLE`.
    pub fn service_unavailable(message: &str, ctx: &Context) -> Self {
        Self::from_code(ErrorCode::ServiceUnavailable, message, ctx)
    }
}

/// Appends `text` as a JSON string, escaped as `serde_json` escapes it.
fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c < ' ' => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(c as u8 >> 4)]));
                out.push(char::from(HEX[usize::from(c as u8 & 0xf)]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
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
    fn the_envelope_is_the_gateways() {
        let harness = crate::testing::Harness::<Nothing>::new("{}").unwrap();
        harness.set_time_ms(1_795_355_400_123);
        let ctx = crate::testing::TestContext {
            request_id: "req-7".into(),
            ..Default::default()
        };
        let (response, custom) = crate::testing::with_context(&ctx, |ctx| {
            (
                Response::forbidden("no \"x\" here\n\u{1}é", ctx),
                Response::error(451, "LEGAL", "gone", ctx),
            )
        });
        assert_eq!(response.status, 403);
        assert_eq!(
            response.headers.get("content-type").as_deref(),
            Some("application/json")
        );
        let body = String::from_utf8(response.body.unwrap()).unwrap();
        assert_eq!(
            body,
            r#"{"success":false,"error":"no \"x\" here\n\u0001é","code":"FORBIDDEN","request_id":"req-7","timestamp":"2026-11-22T13:50:00.123Z"}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["error"], "no \"x\" here\n\u{1}é");
        assert_eq!(custom.status, 451);
    }

    #[test]
    fn success_and_detailed_errors_carry_data() {
        let harness = crate::testing::Harness::<Nothing>::new("{}").unwrap();
        harness.set_time_ms(1_795_355_400_123);
        let ctx = crate::testing::TestContext {
            request_id: "req-8".into(),
            ..Default::default()
        };
        let fields = serde_json::json!({"fields": {"email": "not an email address"}});
        let (ok, bad) = crate::testing::with_context(&ctx, |ctx| {
            (
                Response::success(201, "created", &serde_json::json!({"id": 1}), ctx),
                Response::error_with_data(
                    ErrorCode::ValidationError,
                    "invalid input",
                    &fields,
                    ctx,
                ),
            )
        });
        assert_eq!(ok.status, 201);
        assert_eq!(
            String::from_utf8(ok.body.unwrap()).unwrap(),
            r#"{"success":true,"message":"created","data":{"id":1},"request_id":"req-8","timestamp":"2026-11-22T13:50:00.123Z"}"#
        );
        assert_eq!(bad.status, 400);
        assert_eq!(
            String::from_utf8(bad.body.unwrap()).unwrap(),
            r#"{"success":false,"error":"invalid input","code":"VALIDATION_ERROR","data":{"fields":{"email":"not an email address"}},"request_id":"req-8","timestamp":"2026-11-22T13:50:00.123Z"}"#
        );
    }

    #[test]
    fn escaping_matches_serde_json() {
        let all: String = (0u8..0x80)
            .map(char::from)
            .chain(['é', '€', '😀'])
            .collect();
        let mut ours = String::new();
        push_json_string(&mut ours, &all);
        assert_eq!(ours, serde_json::to_string(&all).unwrap());
    }

    struct Nothing;

    impl crate::Plugin for Nothing {
        type Config = crate::NoConfig;
        fn new(_: crate::NoConfig) -> Result<Self, String> {
            Ok(Nothing)
        }
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
