//! W3C Trace Context (`traceparent`): kept from the client when valid, else started
//! here; the gateway's hop gets its own span id, which the upstream sees as parent.
//! `tracestate` passes through untouched.

use http::{HeaderMap, HeaderName, HeaderValue};

/// `traceparent`
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// The trace this request belongs to and the gateway's span in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// 32 lower-case hex digits, never all zero.
    pub trace_id: String,
    /// The gateway's span: 16 lower-case hex digits.
    pub span_id: String,
    /// The caller's span, when the client sent a valid `traceparent`.
    pub parent_id: Option<String>,
    /// Trace flags (bit 0: sampled).
    pub flags: u8,
}

impl TraceContext {
    /// Continues the client's trace when it sent one valid `traceparent`, else starts
    /// a new one (sampled).
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut values = headers.get_all(TRACEPARENT).iter();
        let parsed = match (values.next(), values.next()) {
            (Some(value), None) => value.to_str().ok().and_then(parse),
            _ => None,
        };
        let span_id = random_hex(16);
        match parsed {
            Some((trace_id, parent_id, flags)) => Self {
                trace_id,
                span_id,
                parent_id: Some(parent_id),
                flags,
            },
            None => Self {
                trace_id: random_hex(32),
                span_id,
                parent_id: None,
                flags: 1,
            },
        }
    }

    /// The `traceparent` to send upstream: this trace, the gateway's span as parent.
    pub fn header_value(&self) -> HeaderValue {
        HeaderValue::from_str(&format!(
            "00-{}-{}-{:02x}",
            self.trace_id, self.span_id, self.flags
        ))
        .expect("hex digits and dashes")
    }
}

/// `(trace-id, parent-id, flags)` of a `traceparent` value, per W3C Trace Context
/// level 1: version `00` is exactly 55 characters; a later version (not `ff`) may be
/// longer, with a `-` after the flags.
fn parse(value: &str) -> Option<(String, String, u8)> {
    let bytes = value.as_bytes();
    if bytes.len() < 55 {
        return None;
    }
    let version = &value[..2];
    if !is_hex(version) || version == "ff" {
        return None;
    }
    if version == "00" && bytes.len() != 55 {
        return None;
    }
    if bytes.len() > 55 && bytes[55] != b'-' {
        return None;
    }
    if bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
        return None;
    }
    let (trace_id, parent_id, flags) = (&value[3..35], &value[36..52], &value[53..55]);
    if !is_hex(trace_id) || !is_hex(parent_id) || !is_hex(flags) {
        return None;
    }
    if trace_id.bytes().all(|b| b == b'0') || parent_id.bytes().all(|b| b == b'0') {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some((trace_id.to_string(), parent_id.to_string(), flags))
}

/// Lower-case hex digits only.
fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `digits` random lower-case hex digits (at most 32), never all zero.
fn random_hex(digits: usize) -> String {
    loop {
        let hex = uuid::Uuid::new_v4().simple().to_string();
        let hex = &hex[..digits];
        if hex.bytes().any(|b| b != b'0') {
            return hex.to_string();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, value.parse().unwrap());
        headers
    }

    #[test]
    fn keeps_a_valid_trace_and_makes_a_new_span() {
        let value = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let trace = TraceContext::from_headers(&with(value));
        assert_eq!(trace.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(trace.parent_id.as_deref(), Some("00f067aa0ba902b7"));
        assert_ne!(trace.span_id, "00f067aa0ba902b7");
        assert_eq!(trace.flags, 1);
        let sent = trace.header_value();
        let sent = sent.to_str().unwrap();
        assert!(
            sent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{sent}"
        );
        assert!(sent.ends_with("-01"), "{sent}");
        assert_eq!(sent.len(), 55);
    }

    #[test]
    fn starts_a_trace_when_the_header_is_missing_or_invalid() {
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        ] {
            let headers = if bad.is_empty() {
                HeaderMap::new()
            } else {
                with(bad)
            };
            let trace = TraceContext::from_headers(&headers);
            assert!(trace.parent_id.is_none(), "{bad:?} was accepted");
            assert_eq!(trace.trace_id.len(), 32);
            assert!(is_hex(&trace.trace_id));
        }
        // A later version may carry more fields.
        let future = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-ever";
        assert!(
            TraceContext::from_headers(&with(future))
                .parent_id
                .is_some()
        );
    }
}
