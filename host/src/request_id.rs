//! The request id: kept from the client's `X-Request-Id` when it is a sane value,
//! otherwise generated; returned on every response and handed to plugins and upstreams.

use http::{HeaderMap, HeaderName};

/// `x-request-id`
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The longest client-supplied id we keep.
const MAX_LEN: usize = 128;

/// The client's id if sane (1 to 128 of `A-Z a-z 0-9 - _ . :`), else a new UUID v4.
pub fn from_headers(headers: &HeaderMap) -> String {
    let mut values = headers.get_all(HEADER).iter();
    match (values.next(), values.next()) {
        (Some(value), None) if is_sane(value.as_bytes()) => {
            String::from_utf8_lossy(value.as_bytes()).into_owned()
        }
        _ => generate(),
    }
}

/// A new request id (a UUID v4), for a request that brought none.
pub fn generate() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn is_sane(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_sane_ids_and_replaces_others() {
        let mut headers = HeaderMap::new();
        headers.insert(HEADER, "abc-123".parse().unwrap());
        assert_eq!(from_headers(&headers), "abc-123");
        headers.insert(HEADER, "has space".parse().unwrap());
        assert_ne!(from_headers(&headers), "has space");
        headers.insert(HEADER, "x".repeat(200).parse().unwrap());
        assert_eq!(from_headers(&headers).len(), 36);
        assert_eq!(from_headers(&HeaderMap::new()).len(), 36);
    }
}
