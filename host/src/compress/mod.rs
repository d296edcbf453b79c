//! Content codings, per route (`[routes.compression]`): the final response compressed
//! with gzip, brotli or zstd as the client's `Accept-Encoding` allows (`accept.rs`),
//! streamed through the encoder chunk by chunk; and compressed request bodies inflated,
//! under a cap, for the plugins that read them (`inflate.rs`).
//!
//! It owns the decision (which responses, which coding, which headers change) and the
//! encoders (async-compression's). It does not buffer a response, does not see
//! plugins (they read uncompressed bodies: compression is the last thing done to a
//! response), and does not touch a response that already has a `Content-Encoding`.
//!
//! An encoder hands on what it has whenever the upstream's body pauses (it flushes
//! when its input is not ready), so a slow stream is not held back until a buffer
//! fills; `text/event-stream` is still left alone unless a route names it exactly.

mod accept;
mod inflate;

use std::pin::Pin;

use async_compression::Level;
use async_compression::tokio::bufread::{BrotliEncoder, GzipEncoder, ZstdEncoder};
use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use http_body::{Body as _, Frame};
use http_body_util::{BodyExt, BodyStream, StreamBody};
use prometheus_client::metrics::counter::Counter;
use tokio_util::io::{ReaderStream, StreamReader};

pub use accept::negotiate;
pub use inflate::{Inflated, RequestCoding, inflate};

use crate::config::CompressionConfig;
use crate::metrics::{CompressionLabels, Metrics};
use crate::upstream::{BoxError, ProxyBody};

/// Size of the chunks an encoder's output is handed on in (at most).
const CHUNK: usize = 16 * 1024;

/// Brotli's window: 2^18 bytes.
const BROTLI_WINDOW_BITS: i32 = 18;

/// A content coding the gateway compresses responses with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `br`
    Brotli,
    /// `zstd`
    Zstd,
    /// `gzip`
    Gzip,
}

impl Encoding {
    /// Every coding, in the default order of preference.
    pub const ALL: [Self; 3] = [Self::Brotli, Self::Zstd, Self::Gzip];

    /// The coding named `name` as in `Content-Encoding` (`br`, `zstd`, `gzip`).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == name)
    }

    /// Its `Content-Encoding` token.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Brotli => "br",
            Self::Zstd => "zstd",
            Self::Gzip => "gzip",
        }
    }

    /// The level used unless the route sets one: moderate, for a proxy's CPU
    /// (`BENCHMARKS.md`, "Compression", has what each costs).
    pub fn default_level(self) -> i32 {
        match self {
            Self::Brotli => 3,
            Self::Zstd => 3,
            Self::Gzip => 4,
        }
    }

    /// The levels a route may set: gzip 1-9, brotli 0-11, zstd 1-19 (above 19 zstd
    /// needs windows over the 8 MiB that HTTP's zstd coding allows).
    pub fn levels(self) -> std::ops::RangeInclusive<i32> {
        match self {
            Self::Brotli => 0..=11,
            Self::Zstd => 1..=19,
            Self::Gzip => 1..=9,
        }
    }
}

/// A content-type pattern of `content_types`: `type/subtype`, `type/*` or `*/*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaRange {
    /// One media type, lower-case.
    Exact(String),
    /// Every subtype of a type (`text/*`), lower-case; never `text/event-stream`.
    Type(String),
    /// `*/*`: every type but `text/event-stream`.
    Any,
}

impl MediaRange {
    /// Parses a pattern (any letter case).
    pub fn parse(pattern: &str) -> Result<Self, String> {
        let lower = pattern.trim().to_ascii_lowercase();
        let bad =
            || format!("{pattern:?} is not a media type like \"application/json\" or \"text/*\"");
        let (kind, subtype) = lower.split_once('/').ok_or_else(bad)?;
        let token = crate::message_rules::is_token;
        match (kind, subtype) {
            ("*", "*") => Ok(Self::Any),
            ("*", _) => Err(bad()),
            (kind, "*") if token(kind) => Ok(Self::Type(kind.to_string())),
            (kind, subtype) if token(kind) && token(subtype) && !subtype.contains('*') => {
                Ok(Self::Exact(lower))
            }
            _ => Err(bad()),
        }
    }

    /// Whether `media_type` (lower-case, without parameters) is in the range. A
    /// wildcard never takes `text/event-stream`: events compressed sit in the encoder
    /// between flushes, and many clients read them badly; name it to have it.
    fn matches(&self, media_type: &str) -> bool {
        match self {
            Self::Exact(exact) => exact == media_type,
            _ if media_type == "text/event-stream" => false,
            Self::Type(kind) => media_type
                .split_once('/')
                .is_some_and(|(k, _)| k == kind.as_str()),
            Self::Any => true,
        }
    }
}

/// The counters of one coding on one route.
#[derive(Clone)]
struct Counters {
    responses: Counter,
    bytes_in: Counter,
    bytes_out: Counter,
}

/// A route's compression, compiled from `[routes.compression]`.
pub struct CompressionPolicy {
    /// The codings offered, in the route's order of preference.
    encodings: Vec<Encoding>,
    /// The level and counters of each offered coding, in the same order.
    offers: Vec<(i32, Counters)>,
    min_bytes: u64,
    content_types: Vec<MediaRange>,
}

impl CompressionPolicy {
    /// The policy of `route` for a validated `config`; `None` when it is off.
    pub fn new(route: &str, config: &CompressionConfig, metrics: &Metrics) -> Option<Self> {
        if !config.enabled {
            return None;
        }
        let encodings: Vec<Encoding> = config
            .encodings
            .iter()
            .map(|name| Encoding::parse(name.get_ref()).expect("validated encoding"))
            .collect();
        let offers = encodings
            .iter()
            .map(|&encoding| {
                let level = config
                    .levels
                    .get(encoding.as_str())
                    .map_or(encoding.default_level(), |l| *l.get_ref());
                let labels = CompressionLabels {
                    route: route.into(),
                    encoding: encoding.as_str(),
                };
                let counters = Counters {
                    responses: metrics.compressed_responses.get_or_create(&labels).clone(),
                    bytes_in: metrics.compression_in_bytes.get_or_create(&labels).clone(),
                    bytes_out: metrics.compression_out_bytes.get_or_create(&labels).clone(),
                };
                (level, counters)
            })
            .collect();
        Some(Self {
            encodings,
            offers,
            min_bytes: config.min_bytes,
            content_types: config
                .content_types
                .iter()
                .map(|p| MediaRange::parse(p.get_ref()).expect("validated media range"))
                .collect(),
        })
    }

    /// The coding for a request with `headers` (the client's own, before plugins),
    /// if the client accepts one the route offers.
    pub fn negotiate(&self, headers: &HeaderMap) -> Option<Encoding> {
        negotiate(headers.get_all(header::ACCEPT_ENCODING), &self.encodings)
    }

    /// The final response, compressed with `chosen` if it qualifies: not an answer to
    /// `HEAD`; a status with a body of its own (not 1xx, 204, 206 or 304); no
    /// `Content-Encoding` or `Content-Range` yet; no `Cache-Control: no-transform`; a
    /// content type in the route's list; and, when its length is known, at least
    /// `min_bytes`. A response that qualifies gets `Vary: Accept-Encoding` even when
    /// the client accepted no coding (a cache must know that it varies).
    pub fn apply(
        &self,
        method: &Method,
        chosen: Option<Encoding>,
        response: Response<ProxyBody>,
    ) -> Response<ProxyBody> {
        if method == Method::HEAD || !self.qualifies(&response) {
            return response;
        }
        let (mut parts, body) = response.into_parts();
        add_vary(&mut parts.headers);
        let Some(encoding) = chosen else {
            return Response::from_parts(parts, body);
        };
        let index = self
            .encodings
            .iter()
            .position(|&e| e == encoding)
            .expect("chosen among the offered codings");
        let (level, counters) = &self.offers[index];
        let headers = &mut parts.headers;
        headers.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static(encoding.as_str()),
        );
        headers.remove(header::CONTENT_LENGTH);
        // Ranges of the uncompressed bytes would not be ranges of these.
        headers.remove(header::ACCEPT_RANGES);
        if let Some(tag) = headers.get(header::ETAG)
            && tag.as_bytes().starts_with(b"\"")
        {
            // Another representation: no longer byte-for-byte the upstream's.
            let mut weak = b"W/".to_vec();
            weak.extend_from_slice(tag.as_bytes());
            let weak = HeaderValue::from_bytes(&weak).expect("a valid value, prefixed");
            headers.insert(header::ETAG, weak);
        }
        counters.responses.inc();
        Response::from_parts(parts, encode(body, encoding, *level, counters.clone()))
    }

    fn qualifies(&self, response: &Response<ProxyBody>) -> bool {
        let status = response.status();
        let headers = response.headers();
        if status.is_informational()
            || matches!(
                status,
                StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED | StatusCode::PARTIAL_CONTENT
            )
            || headers.contains_key(header::CONTENT_ENCODING)
            || headers.contains_key(header::CONTENT_RANGE)
            || no_transform(headers)
        {
            return false;
        }
        let Some(media_type) = media_type(headers) else {
            return false;
        };
        if !self.content_types.iter().any(|r| r.matches(&media_type)) {
            return false;
        }
        // A buffered body knows its length; a streamed one may have a Content-Length.
        let length = response
            .body()
            .size_hint()
            .exact()
            .or_else(|| crate::pipeline::content_length(headers));
        length.is_none_or(|length| length >= self.min_bytes)
    }
}

/// The media type of `Content-Type`, lower-case, without parameters.
fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let media_type = value.split(';').next()?.trim().to_ascii_lowercase();
    (!media_type.is_empty()).then_some(media_type)
}

/// Whether `Cache-Control` forbids intermediaries to transform the content.
fn no_transform(headers: &HeaderMap) -> bool {
    crate::upstream::header_list(headers, header::CACHE_CONTROL)
        .any(|d| d.eq_ignore_ascii_case("no-transform"))
}

/// Adds `Accept-Encoding` to `Vary`, unless it is there already (or `Vary: *`).
fn add_vary(headers: &mut HeaderMap) {
    let varies = crate::upstream::header_list(headers, header::VARY)
        .any(|f| f == "*" || f.eq_ignore_ascii_case("accept-encoding"));
    if !varies {
        headers.append(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
}

/// `body` through the encoder, as it comes: each data frame is fed in and what the
/// encoder makes is handed on in chunks of up to [`CHUNK`] bytes. Trailers are
/// dropped (they described the uncompressed body).
fn encode(body: ProxyBody, encoding: Encoding, level: i32, counters: Counters) -> ProxyBody {
    let Counters {
        bytes_in,
        bytes_out,
        ..
    } = counters;
    let data = BodyStream::new(body).filter_map(move |frame| {
        let data = match frame {
            Ok(frame) => frame.into_data().ok().map(|data| {
                bytes_in.inc_by(data.len() as u64);
                Ok(data)
            }),
            Err(error) => Some(Err(std::io::Error::other(error))),
        };
        std::future::ready(data)
    });
    let input = StreamReader::new(data);
    let level = Level::Precise(level);
    let encoder: Pin<Box<dyn tokio::io::AsyncRead + Send + Sync>> = match encoding {
        Encoding::Gzip => Box::pin(GzipEncoder::with_quality(input, level)),
        Encoding::Zstd => Box::pin(ZstdEncoder::with_quality(input, level)),
        // A 256 KiB window: brotli's memory per stream grows with it (and with the
        // level), and a proxy compresses many streams at once.
        Encoding::Brotli => Box::pin(BrotliEncoder::with_params(
            input,
            async_compression::brotli::EncoderParams::default()
                .quality(level)
                .window_size(BROTLI_WINDOW_BITS),
        )),
    };
    let output = ReaderStream::with_capacity(encoder, CHUNK).map(move |chunk| {
        let chunk: Bytes = chunk.map_err(|error| -> BoxError { Box::new(error) })?;
        bytes_out.inc_by(chunk.len() as u64);
        Ok(Frame::data(chunk))
    });
    BodyExt::boxed(StreamBody::new(output))
}

#[cfg(test)]
mod tests;
