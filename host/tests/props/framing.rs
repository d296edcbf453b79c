//! Properties of the framing checks (`wasmgate::framing`) together with the HTTP/1
//! server they sit in front of (hyper, set up as `server.rs` sets it up): a request
//! whose framing is not plain — both `Content-Length` and `Transfer-Encoding`,
//! `Content-Length`s that differ or are not plain digits, a `Transfer-Encoding` whose
//! last coding is not `chunked`, a malformed framing header — never reaches the
//! handler with a [`Verdict::Clean`], nor does a request hidden in a body; plain
//! requests all do, in order, however the bytes are split into reads; the tracker
//! passes on every byte it does not cut, and never panics.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http::header::CONNECTION;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use proptest::prelude::*;
use proptest::sample::Index;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use wasmgate::framing::{SniffedIo, TrackLimits, Verdict};

/// The gateway's default limits, as `server.rs` turns them into tracker limits.
const LIMITS: TrackLimits = TrackLimits {
    max_target: 8192,
    max_buf: (16384 + 8192) * 2 + 8192,
};

/// A request the handler was given, with the verdict it took.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    id: String,
    verdict: Verdict,
}

/// Sends `stream` to a hyper HTTP/1 server behind [`SniffedIo`], in writes of at most
/// `read_size` bytes (and reads as small), the way `server.rs` serves a connection:
/// each request takes its verdict, a request that is not `Clean` gets a 400 and the
/// connection closes. Returns what the handler saw.
fn serve(stream: &[u8], read_size: usize) -> Vec<Seen> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    runtime.block_on(async move {
        let (client, server) = tokio::io::duplex(read_size);
        let (io, facts) = SniffedIo::new(server, LIMITS);
        let service = service_fn(move |request: Request<Incoming>| {
            let verdict = facts.take();
            let record = record.clone();
            async move {
                let id = request
                    .headers()
                    .get("x-id")
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .unwrap_or_default();
                record.lock().unwrap().push(Seen { id, verdict });
                let mut response = Response::new(Empty::<Bytes>::new());
                if verdict == Verdict::Clean {
                    let _ = request.into_body().collect().await;
                } else {
                    *response.status_mut() = StatusCode::BAD_REQUEST;
                    response
                        .headers_mut()
                        .insert(CONNECTION, HeaderValue::from_static("close"));
                }
                Ok::<_, Infallible>(response)
            }
        });
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .max_buf_size(LIMITS.max_buf)
            .max_headers(256)
            .keep_alive(true)
            // The test closes its side once all is sent; every request sent is served.
            .half_close(true);
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
        let (mut reader, mut writer) = tokio::io::split(client);
        let write = async move {
            for chunk in stream.chunks(read_size) {
                if writer.write_all(chunk).await.is_err() {
                    return;
                }
            }
            let _ = writer.shutdown().await;
        };
        let read = async move {
            let mut answers = Vec::new();
            let _ = reader.read_to_end(&mut answers).await;
        };
        let all = async { tokio::join!(connection, write, read) };
        let _ = tokio::time::timeout(Duration::from_secs(10), all).await;
    });
    seen.lock().unwrap().clone()
}

/// How a request states its `Content-Length`.
#[derive(Debug, Clone, Copy)]
enum Length {
    Exact,
    LeadingZeros,
    LeadingSpace,
    TrailingSpace,
    /// Two headers with the same value.
    Twice,
    // Not plain:
    Plus,
    List,
    Negative,
    Word,
    Empty,
    Overflow,
    Hex,
    TwiceDiffering,
}

impl Length {
    const PLAIN: &[Length] = &[
        Length::Exact,
        Length::LeadingZeros,
        Length::LeadingSpace,
        Length::TrailingSpace,
        Length::Twice,
    ];
    const ALL: &[Length] = &[
        Length::Exact,
        Length::LeadingZeros,
        Length::LeadingSpace,
        Length::TrailingSpace,
        Length::Twice,
        Length::Plus,
        Length::List,
        Length::Negative,
        Length::Word,
        Length::Empty,
        Length::Overflow,
        Length::Hex,
        Length::TwiceDiffering,
    ];

    /// The header values for a body of `len` bytes.
    fn values(self, len: usize) -> Vec<String> {
        match self {
            Length::Exact => vec![len.to_string()],
            Length::LeadingZeros => vec![format!("00{len}")],
            Length::LeadingSpace => vec![format!(" {len}")],
            Length::TrailingSpace => vec![format!("{len} ")],
            Length::Twice => vec![len.to_string(), len.to_string()],
            Length::Plus => vec![format!("+{len}")],
            Length::List => vec![format!("{len}, {len}")],
            Length::Negative => vec![format!("-{len}")],
            Length::Word => vec!["five".into()],
            Length::Empty => vec![String::new()],
            Length::Overflow => vec!["18446744073709551616".into()],
            Length::Hex => vec![format!("{len:#x}")],
            Length::TwiceDiffering => vec![len.to_string(), (len + 1).to_string()],
        }
    }
}

/// The `Transfer-Encoding` headers a request carries.
const CODINGS_PLAIN: &[&[&str]] = &[
    &["chunked"],
    &["Chunked"],
    &["CHUNKED"],
    &["gzip, chunked"],
    &["gzip,chunked"],
    &["chunked "],
    &["gzip", "chunked"],
];
const CODINGS_OTHER: &[&[&str]] = &[
    &["gzip"],
    &["identity"],
    &["chunked, gzip"],
    &["xchunked"],
    &["chunked;q=1"],
    &["chunked", "gzip"],
    &[""],
    &["chunked\u{b}"],
];

/// The spellings of a framing header's name: as hyper reads it, and malformed.
const NAMES_PLAIN: &[(&str, &str)] = &[
    ("Content-Length", "Transfer-Encoding"),
    ("content-length", "transfer-encoding"),
    ("CONTENT-LENGTH", "TRANSFER-ENCODING"),
    ("Content-length", "Transfer-encoding"),
];
const NAMES_MALFORMED: &[(&str, &str)] = &[
    ("Content-Length ", "Transfer-Encoding "),
    ("Content-Length\t", "Transfer-Encoding\t"),
    (" Content-Length", " Transfer-Encoding"),
];

/// How a chunk-size line is written.
#[derive(Debug, Clone, Copy)]
enum ChunkSize {
    Lower,
    Upper,
    Zeros,
    Extension,
    Space,
    // Not plain:
    Plus,
    Prefixed,
    LeadingSpace,
}

impl ChunkSize {
    const PLAIN: &[ChunkSize] = &[
        ChunkSize::Lower,
        ChunkSize::Upper,
        ChunkSize::Zeros,
        ChunkSize::Extension,
        ChunkSize::Space,
    ];
    const ALL: &[ChunkSize] = &[
        ChunkSize::Lower,
        ChunkSize::Upper,
        ChunkSize::Zeros,
        ChunkSize::Extension,
        ChunkSize::Space,
        ChunkSize::Plus,
        ChunkSize::Prefixed,
        ChunkSize::LeadingSpace,
    ];

    fn line(self, size: usize) -> String {
        match self {
            ChunkSize::Lower => format!("{size:x}\r\n"),
            ChunkSize::Upper => format!("{size:X}\r\n"),
            ChunkSize::Zeros => format!("000{size:x}\r\n"),
            ChunkSize::Extension => format!("{size:x};ext=\"1\"\r\n"),
            ChunkSize::Space => format!("{size:x} \r\n"),
            ChunkSize::Plus => format!("+{size:x}\r\n"),
            ChunkSize::Prefixed => format!("0x{size:x}\r\n"),
            ChunkSize::LeadingSpace => format!(" {size:x}\r\n"),
        }
    }
}

/// One generated request.
#[derive(Debug, Clone)]
struct Req {
    http10: bool,
    names: (&'static str, &'static str),
    names_malformed: bool,
    length: Option<Length>,
    codings: Option<&'static [&'static str]>,
    /// Whether the framing headers come transfer-encoding first.
    te_first: bool,
    other_headers: Vec<String>,
    body: Vec<u8>,
    /// Chunk sizes (as indexes into what is left) and how they are spelled.
    chunks: Vec<(Index, ChunkSize)>,
    trailers: bool,
}

/// Whether the last coding of the last `Transfer-Encoding` is `chunked`.
fn ends_chunked(codings: &[&str]) -> bool {
    codings.last().is_some_and(|last| {
        last.rsplit(',')
            .next()
            .is_some_and(|c| c.trim_matches([' ', '\t']).eq_ignore_ascii_case("chunked"))
    })
}

impl Req {
    /// Whether its head frames it plainly (the documented rules): not both headers,
    /// `Content-Length` values of digits that agree, a `Transfer-Encoding` ending in
    /// `chunked` (HTTP/1.1 only), well-formed names for them.
    fn plain(&self) -> bool {
        let length_plain = self.length.is_none_or(|l| {
            matches!(
                l,
                Length::Exact
                    | Length::LeadingZeros
                    | Length::LeadingSpace
                    | Length::TrailingSpace
                    | Length::Twice
            )
        });
        let codings_plain = self.codings.is_none_or(|c| !self.http10 && ends_chunked(c));
        let framed = self.length.is_some() || self.codings.is_some();
        !(self.length.is_some() && self.codings.is_some())
            && length_plain
            && codings_plain
            && !(framed && self.names_malformed)
    }

    /// Whether it is sent chunked.
    fn chunked(&self) -> bool {
        self.codings.is_some_and(ends_chunked)
    }

    /// The chunks its body is sent in (when chunked): sizes and spellings.
    fn chunk_plan(&self) -> Vec<(usize, ChunkSize)> {
        let mut left = self.body.len();
        let mut plan = Vec::new();
        for (size, spelling) in &self.chunks {
            if left == 0 {
                break;
            }
            let size = size.index(left) + 1;
            plan.push((size, *spelling));
            left -= size;
        }
        if left > 0 {
            plan.push((left, ChunkSize::Lower));
        }
        plan
    }

    /// Whether it is sent chunked with a chunk size the HTTP/1 grammar does not allow.
    fn body_malformed(&self) -> bool {
        self.chunked()
            && self.chunk_plan().iter().any(|(_, spelling)| {
                matches!(
                    spelling,
                    ChunkSize::Plus | ChunkSize::Prefixed | ChunkSize::LeadingSpace
                )
            })
    }

    fn render(&self, id: &str) -> Vec<u8> {
        let version = if self.http10 { "HTTP/1.0" } else { "HTTP/1.1" };
        let mut head = format!("POST /{id} {version}\r\nHost: a\r\nX-Id: {id}\r\n");
        let (cl_name, te_name) = self.names;
        let length_lines: Vec<String> = self
            .length
            .map(|l| l.values(self.body.len()))
            .unwrap_or_default()
            .into_iter()
            .map(|v| format!("{cl_name}: {v}\r\n"))
            .collect();
        let coding_lines: Vec<String> = self
            .codings
            .unwrap_or_default()
            .iter()
            .map(|v| format!("{te_name}: {v}\r\n"))
            .collect();
        let (first, second) = if self.te_first {
            (coding_lines, length_lines)
        } else {
            (length_lines, coding_lines)
        };
        for line in first.iter().chain(&self.other_headers).chain(&second) {
            head.push_str(line);
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        if self.chunked() {
            let mut rest = &self.body[..];
            for (size, spelling) in self.chunk_plan() {
                bytes.extend_from_slice(spelling.line(size).as_bytes());
                bytes.extend_from_slice(&rest[..size]);
                bytes.extend_from_slice(b"\r\n");
                rest = &rest[size..];
            }
            bytes.extend_from_slice(b"0\r\n");
            if self.trailers {
                bytes.extend_from_slice(b"X-Trailer: 1\r\n");
            }
            bytes.extend_from_slice(b"\r\n");
        } else if self.length.is_some() || self.codings.is_some() {
            bytes.extend_from_slice(&self.body);
        }
        bytes
    }
}

/// A body: bytes, or a request hidden in it (plain or itself ambiguous).
fn body() -> impl Strategy<Value = Vec<u8>> {
    let hidden = proptest::sample::select(vec![
        "GET /hidden HTTP/1.1\r\nHost: a\r\nX-Id: hidden\r\n\r\n",
        "GET /hidden HTTP/1.1\r\nX-Id: hidden\r\nContent-Length: 3\r\n\
         Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "\r\n\r\nGET /hidden HTTP/1.1\r\nX-Id: hidden\r\n\r\n",
        "0\r\n\r\nGET /hidden HTTP/1.1\r\nX-Id: hidden\r\n\r\n",
    ]);
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..24),
        (proptest::collection::vec(any::<u8>(), 0..4), hidden).prop_map(|(mut before, hidden)| {
            before.extend_from_slice(hidden.as_bytes());
            before
        }),
    ]
}

fn other_headers(plain: bool) -> BoxedStrategy<Vec<String>> {
    let mut lines = vec![
        "Accept: */*\r\n".to_string(),
        "X-Pad: Content-Length: 5\r\n".to_string(),
        "Content_Length: 7\r\n".to_string(),
        "Expect: 100-continue\r\n".to_string(),
    ];
    if !plain {
        lines.extend([
            "Connection: close\r\n".to_string(),
            "Connection: upgrade\r\nUpgrade: websocket\r\n".to_string(),
            "Upgrade: h2c\r\n".to_string(),
        ]);
    }
    let line = proptest::sample::select(lines);
    if plain {
        proptest::collection::vec(line, 0..3).boxed()
    } else {
        let any_line = "[!-9;-~]{1,8}: [ -~]{0,12}".prop_map(|l| format!("{l}\r\n"));
        proptest::collection::vec(prop_oneof![3 => line, 1 => any_line], 0..3).boxed()
    }
}

/// A request: plain ones only, or any.
fn request(plain: bool) -> impl Strategy<Value = Req> {
    let (lengths, chunk_sizes) = if plain {
        (Length::PLAIN, ChunkSize::PLAIN)
    } else {
        (Length::ALL, ChunkSize::ALL)
    };
    let codings: Vec<&'static [&'static str]> = if plain {
        CODINGS_PLAIN.to_vec()
    } else {
        CODINGS_PLAIN.iter().chain(CODINGS_OTHER).copied().collect()
    };
    // Each spelling of the names, and whether it is malformed.
    let mut names: Vec<((&str, &str), bool)> = NAMES_PLAIN.iter().map(|n| (*n, false)).collect();
    if !plain {
        names.extend(NAMES_MALFORMED.iter().map(|n| (*n, true)));
    }
    let framing = prop_oneof![
        Just((false, false)),
        Just((true, false)),
        Just((false, true)),
        Just((!plain, !plain)),
    ];
    (
        proptest::bool::weighted(if plain { 0.0 } else { 0.1 }),
        proptest::sample::select(names),
        framing,
        proptest::sample::select(lengths.to_vec()),
        proptest::sample::select(codings),
        any::<bool>(),
        other_headers(plain),
        body(),
        proptest::collection::vec(
            (
                any::<Index>(),
                proptest::sample::select(chunk_sizes.to_vec()),
            ),
            0..3,
        ),
        any::<bool>(),
    )
        .prop_map(
            |(
                http10,
                (names, names_malformed),
                (has_length, has_codings),
                length,
                codings,
                te_first,
                other_headers,
                body,
                chunks,
                trailers,
            )| Req {
                http10,
                names,
                names_malformed,
                length: has_length.then_some(length),
                codings: has_codings.then_some(codings),
                te_first,
                other_headers,
                body,
                chunks,
                trailers,
            },
        )
}

fn read_size() -> impl Strategy<Value = usize> {
    prop_oneof![1..8usize, 8..64usize, Just(4096)]
}

/// An `AsyncRead` over `bytes` in reads of `size` at most.
struct Reads<'a> {
    bytes: &'a [u8],
    size: usize,
}

impl AsyncRead for Reads<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = self.size.min(self.bytes.len()).min(buf.remaining());
        buf.put_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        Poll::Ready(Ok(()))
    }
}

/// What [`SniffedIo`] passes on of `bytes` read `size` at a time, and the first
/// `requests` verdicts.
fn sniff(
    bytes: &[u8],
    size: usize,
    limits: TrackLimits,
    requests: usize,
) -> (Vec<u8>, Vec<Verdict>) {
    let (mut io, facts) = SniffedIo::new(Reads { bytes, size }, limits);
    let mut context = Context::from_waker(Waker::noop());
    let mut shown = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let mut read = ReadBuf::new(&mut buf);
        match Pin::new(&mut io).poll_read(&mut context, &mut read) {
            Poll::Ready(Ok(())) if read.filled().is_empty() => break,
            Poll::Ready(Ok(())) => shown.extend_from_slice(read.filled()),
            other => panic!("{other:?}"),
        }
    }
    (shown, (0..requests).map(|_| facts.take()).collect())
}

proptest! {
    #![proptest_config(crate::cases(256))]

    #[test]
    fn prop_framing_tracker_never_panics_and_passes_on_every_byte(
        pieces in proptest::collection::vec(
            prop_oneof![
                proptest::sample::select(vec![
                    "GET / HTTP/1.1\r\n", "POST /x HTTP/1.1\r\n", "PRI * HTTP/2.0\r\n",
                    "\r\n", "\n", "Content-Length: 5\r\n", "content-length: x\r\n",
                    "Transfer-Encoding: chunked\r\n", "Transfer-Encoding: gzip\r\n", "5\r\n",
                    "0\r\n", "zz\r\n", "ffffffffffffffffff\r\n",
                    "hello", ": ", ";", " ",
                ]).prop_map(|s| s.as_bytes().to_vec()),
                proptest::collection::vec(any::<u8>(), 0..16),
            ],
            0..24,
        ),
        size in read_size(),
    ) {
        let bytes = pieces.concat();
        // No request target here is longer than the limit: nothing is cut.
        let (shown, _) = sniff(&bytes, size, LIMITS, 4);
        prop_assert_eq!(shown, bytes);
    }

    #[test]
    fn prop_framing_cuts_only_over_long_targets(
        targets in proptest::collection::vec(0..64usize, 1..4),
        size in read_size(),
    ) {
        let limits = TrackLimits { max_target: 16, max_buf: LIMITS.max_buf };
        let mut stream = Vec::new();
        let mut want_shown = Vec::new();
        let mut want = Vec::new();
        for length in &targets {
            let target = format!("/{}", "t".repeat(*length));
            let kept = &target[..target.len().min(limits.max_target + 8)];
            let head = |target: &str| format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n");
            stream.extend_from_slice(head(&target).as_bytes());
            want_shown.extend_from_slice(head(kept).as_bytes());
            let cut = target.len() > limits.max_target + 8;
            want.push(if cut { Verdict::UriTooLong } else { Verdict::Clean });
        }
        let (shown, verdicts) = sniff(&stream, size, limits, targets.len());
        prop_assert_eq!(String::from_utf8_lossy(&shown), String::from_utf8_lossy(&want_shown));
        prop_assert_eq!(verdicts, want);
    }

    #[test]
    fn prop_framing_plain_requests_all_reach_the_handler_clean(
        requests in proptest::collection::vec(request(true), 1..5),
        size in read_size(),
    ) {
        let stream: Vec<u8> = requests
            .iter()
            .enumerate()
            .flat_map(|(i, r)| r.render(&format!("r{i}")))
            .collect();
        let want: Vec<Seen> = (0..requests.len())
            .map(|i| Seen { id: format!("r{i}"), verdict: Verdict::Clean })
            .collect();
        prop_assert_eq!(serve(&stream, size), want, "{}", String::from_utf8_lossy(&stream));
    }

    #[test]
    fn prop_framing_no_request_that_is_not_plain_is_handled_as_clean(
        requests in proptest::collection::vec(request(false), 1..5),
        size in read_size(),
    ) {
        let stream: Vec<u8> = requests
            .iter()
            .enumerate()
            .flat_map(|(i, r)| r.render(&format!("r{i}")))
            .collect();
        let seen = serve(&stream, size);
        let mut last = None;
        for s in seen.iter().filter(|s| s.verdict == Verdict::Clean) {
            let index = s
                .id
                .strip_prefix('r')
                .and_then(|i| i.parse::<usize>().ok())
                .filter(|&i| i < requests.len());
            let Some(index) = index else {
                return Err(TestCaseError::fail(format!(
                    "a request that was not sent as one ({:?}) was handled as clean: {:?} in {}",
                    s.id, seen, String::from_utf8_lossy(&stream)
                )));
            };
            prop_assert!(last < Some(index), "{:?} out of order: {:?}", s.id, seen);
            last = Some(index);
            let after_malformed = requests[..index].iter().any(|r| r.plain() && r.body_malformed());
            prop_assert!(
                !after_malformed,
                "{:?} came after a malformed chunked body but was handled: {:?}\n{}",
                s.id, seen, String::from_utf8_lossy(&stream)
            );
            prop_assert!(
                requests[index].plain(),
                "{:?} is not plain but was handled as clean: {:?}\n{}",
                s.id, requests[index], String::from_utf8_lossy(&stream)
            );
        }
    }
}
