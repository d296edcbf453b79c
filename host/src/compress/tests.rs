//! Which responses are compressed and how their headers change; bodies round-tripped
//! through the encoders and the request-side decoders; a paused body flushed; caps.

use std::time::Duration;

use async_compression::tokio::bufread::{BrotliEncoder, GzipEncoder, ZlibEncoder, ZstdEncoder};
use serde_spanned::Spanned;

use super::*;
use crate::upstream::full_body;

fn policy(edit: impl FnOnce(&mut CompressionConfig)) -> (CompressionPolicy, Metrics) {
    let mut config = CompressionConfig::default();
    edit(&mut config);
    let metrics = Metrics::new();
    let policy = CompressionPolicy::new("r", &config, &metrics).expect("enabled");
    (policy, metrics)
}

/// A realistic JSON body of `n` records.
fn json(n: usize) -> Bytes {
    let records: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"id":{i},"name":"user {i}","email":"user{i}@example.com","active":{}}}"#,
                i.is_multiple_of(3)
            )
        })
        .collect();
    Bytes::from(format!("[{}]", records.join(",")))
}

fn response(status: u16, headers: &[(&str, &str)], body: ProxyBody) -> Response<ProxyBody> {
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    for (name, value) in headers {
        response.headers_mut().append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    response
}

async fn collect(body: ProxyBody) -> Bytes {
    body.collect().await.expect("body").to_bytes()
}

/// Decodes with the request side's decoders (a cap far above the test bodies).
async fn decode(encoding: Encoding, bytes: &[u8]) -> Bytes {
    let coding = match encoding {
        Encoding::Gzip => RequestCoding::Gzip,
        Encoding::Brotli => RequestCoding::Brotli,
        Encoding::Zstd => RequestCoding::Zstd,
    };
    inflate(bytes, coding, 1 << 30).await.expect("decodes")
}

/// `bytes` compressed in `coding`, at the encoders' default levels.
async fn compressed(coding: RequestCoding, bytes: &[u8]) -> Vec<u8> {
    let encoder: Pin<Box<dyn tokio::io::AsyncRead + Send + '_>> = match coding {
        RequestCoding::Gzip => Box::pin(GzipEncoder::new(bytes)),
        RequestCoding::Deflate => Box::pin(ZlibEncoder::new(bytes)),
        RequestCoding::Brotli => Box::pin(BrotliEncoder::new(bytes)),
        RequestCoding::Zstd => Box::pin(ZstdEncoder::new(bytes)),
    };
    let mut out = Vec::new();
    let mut chunks = ReaderStream::new(encoder);
    while let Some(chunk) = chunks.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

const JSON: (&str, &str) = ("content-type", "application/json; charset=utf-8");

#[tokio::test]
async fn each_coding_round_trips_with_the_headers_changed() {
    let body = json(2000);
    for encoding in Encoding::ALL {
        let (policy, metrics) = policy(|_| {});
        let upstream = response(
            200,
            &[
                JSON,
                ("content-length", &body.len().to_string()),
                ("etag", "\"v1\""),
                ("accept-ranges", "bytes"),
                ("vary", "Origin"),
            ],
            full_body(body.clone()),
        );
        let out = policy.apply(&Method::GET, Some(encoding), upstream);
        let headers = out.headers();
        assert_eq!(headers[header::CONTENT_ENCODING], encoding.as_str());
        assert!(!headers.contains_key(header::CONTENT_LENGTH));
        assert!(!headers.contains_key(header::ACCEPT_RANGES));
        assert_eq!(headers[header::ETAG], "W/\"v1\"");
        let vary: Vec<_> = headers.get_all(header::VARY).iter().collect();
        assert_eq!(vary, ["Origin", "accept-encoding"]);
        let sent = collect(out.into_body()).await;
        assert!(
            sent.len() * 4 < body.len(),
            "{encoding:?}: {} bytes",
            sent.len()
        );
        assert_eq!(decode(encoding, &sent).await, body, "{encoding:?}");
        let labels = CompressionLabels {
            route: "r".into(),
            encoding: encoding.as_str(),
        };
        assert_eq!(metrics.compressed_responses.get_or_create(&labels).get(), 1);
        assert_eq!(
            metrics.compression_in_bytes.get_or_create(&labels).get(),
            body.len() as u64
        );
        assert_eq!(
            metrics.compression_out_bytes.get_or_create(&labels).get(),
            sent.len() as u64
        );
    }
}

#[tokio::test]
async fn responses_that_do_not_qualify_pass_as_they_are() {
    let (policy, _) = policy(|_| {});
    let body = json(100);
    type Case<'a> = (&'a str, Method, u16, Vec<(&'a str, &'a str)>);
    let cases: [Case; 11] = [
        ("HEAD", Method::HEAD, 200, vec![JSON]),
        ("204", Method::GET, 204, vec![JSON]),
        ("206", Method::GET, 206, vec![JSON]),
        ("304", Method::GET, 304, vec![JSON]),
        (
            "already encoded",
            Method::GET,
            200,
            vec![JSON, ("content-encoding", "gzip")],
        ),
        (
            "a range",
            Method::GET,
            200,
            vec![JSON, ("content-range", "bytes 0-9/10")],
        ),
        (
            "no-transform",
            Method::GET,
            200,
            vec![JSON, ("cache-control", "public, No-Transform")],
        ),
        ("no content type", Method::GET, 200, vec![]),
        (
            "an image",
            Method::GET,
            200,
            vec![("content-type", "image/png")],
        ),
        (
            "events",
            Method::GET,
            200,
            vec![("content-type", "text/event-stream")],
        ),
        (
            "under min_bytes",
            Method::GET,
            200,
            vec![("content-type", "text/plain")],
        ),
    ];
    for (what, method, status, headers) in cases {
        let body = if what == "under min_bytes" {
            Bytes::from_static(&[b'a'; 1023])
        } else {
            body.clone()
        };
        let out = policy.apply(
            &method,
            Some(Encoding::Gzip),
            response(status, &headers, full_body(body.clone())),
        );
        assert!(!out.headers().contains_key(header::VARY), "{what}");
        let encoding = out.headers().get(header::CONTENT_ENCODING).cloned();
        assert_eq!(collect(out.into_body()).await, body, "{what}");
        if what != "already encoded" {
            assert_eq!(encoding, None, "{what}");
        }
    }
}

#[tokio::test]
async fn content_types_match_by_media_type_and_wildcard() {
    let (policy, _) = policy(|c| {
        c.content_types = vec![
            Spanned::new(0..0, "text/*".into()),
            Spanned::new(0..0, "Application/JSON".into()),
        ]
    });
    for (content_type, compresses) in [
        ("text/html", true),
        ("TEXT/CSS; charset=utf-8", true),
        ("application/json", true),
        ("application/json;charset=UTF-8", true),
        ("application/jsonx", false),
        ("text/event-stream", false),
        ("application/xml", false),
    ] {
        let out = policy.apply(
            &Method::GET,
            Some(Encoding::Gzip),
            response(200, &[("content-type", content_type)], full_body(json(50))),
        );
        assert_eq!(
            out.headers().contains_key(header::CONTENT_ENCODING),
            compresses,
            "{content_type}"
        );
    }
    assert_eq!(MediaRange::parse("*/*"), Ok(MediaRange::Any));
    assert!(MediaRange::parse("*/*").unwrap().matches("image/png"));
    assert!(
        !MediaRange::parse("*/*")
            .unwrap()
            .matches("text/event-stream")
    );
    assert!(
        MediaRange::parse("text/event-stream")
            .unwrap()
            .matches("text/event-stream")
    );
    for bad in ["json", "*/json", "text/x*", "te xt/plain", "/", "text/"] {
        assert!(MediaRange::parse(bad).is_err(), "{bad}");
    }
}

#[tokio::test]
async fn vary_is_added_once_and_also_when_the_client_accepts_no_coding() {
    let (policy, _) = policy(|_| {});
    for (upstream_vary, want) in [
        (None, vec!["accept-encoding"]),
        (
            Some("Origin, Accept-Encoding"),
            vec!["Origin, Accept-Encoding"],
        ),
        (Some("*"), vec!["*"]),
    ] {
        let mut headers = vec![JSON];
        if let Some(vary) = upstream_vary {
            headers.push(("vary", vary));
        }
        for chosen in [None, Some(Encoding::Brotli)] {
            let out = policy.apply(
                &Method::GET,
                chosen,
                response(200, &headers, full_body(json(50))),
            );
            let vary: Vec<_> = out.headers().get_all(header::VARY).iter().collect();
            assert_eq!(vary, want, "{upstream_vary:?} {chosen:?}");
            assert_eq!(
                out.headers().contains_key(header::CONTENT_ENCODING),
                chosen.is_some()
            );
        }
    }
}

#[tokio::test]
async fn a_streamed_body_is_compressed_whatever_its_length_and_flushed_when_it_pauses() {
    let (policy, _) = policy(|_| {});
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(1);
    let stream = futures_util::stream::unfold(receiver, |mut r| async move {
        r.recv().await.map(|frame| (frame, r))
    });
    let body = BodyExt::boxed(StreamBody::new(stream));
    // A short first chunk: under min_bytes, but the length is not known.
    let first = Bytes::from_static(b"{\"event\": \"first\", \"padding\": \"aaaaaaaaaaaaaaaa\"}\n");
    let out = policy.apply(
        &Method::GET,
        Some(Encoding::Gzip),
        response(200, &[("content-type", "text/plain")], body),
    );
    assert_eq!(out.headers()[header::CONTENT_ENCODING], "gzip");
    let mut body = out.into_body();
    sender.send(Ok(Frame::data(first.clone()))).await.unwrap();
    // The upstream pauses: what the encoder has must come out now.
    let mut early = Vec::new();
    while early.len() < 10 + first.len() / 2 {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("the first chunk is flushed while the upstream pauses")
            .expect("a frame")
            .expect("data");
        early.extend_from_slice(frame.data_ref().unwrap());
    }
    // What came out so far decodes to the whole first chunk.
    let mut partial = Vec::new();
    let mut decoder = ReaderStream::new(async_compression::tokio::bufread::GzipDecoder::new(
        early.as_slice(),
    ));
    while let Some(Ok(chunk)) = decoder.next().await {
        partial.extend_from_slice(&chunk);
    }
    assert_eq!(partial, first);
    let second = json(100);
    sender.send(Ok(Frame::data(second.clone()))).await.unwrap();
    drop(sender);
    let mut all = early;
    all.extend_from_slice(&collect(body).await);
    let mut whole = first.to_vec();
    whole.extend_from_slice(&second);
    assert_eq!(decode(Encoding::Gzip, &all).await, whole);
}

#[tokio::test]
async fn a_streamed_body_whose_length_is_under_min_bytes_is_not_compressed() {
    let (policy, _) = policy(|c| c.min_bytes = 100);
    let (_sender, receiver) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(1);
    let stream = futures_util::stream::unfold(receiver, |mut r| async move {
        r.recv().await.map(|frame| (frame, r))
    });
    let body = BodyExt::boxed(StreamBody::new(stream));
    let out = policy.apply(
        &Method::GET,
        Some(Encoding::Gzip),
        response(200, &[JSON, ("content-length", "99")], body),
    );
    assert!(!out.headers().contains_key(header::CONTENT_ENCODING));
    assert!(!out.headers().contains_key(header::VARY));
}

#[tokio::test]
async fn request_bodies_inflate_in_each_coding_under_the_cap() {
    let body = json(500);
    for coding in [
        RequestCoding::Gzip,
        RequestCoding::Deflate,
        RequestCoding::Brotli,
        RequestCoding::Zstd,
    ] {
        let sent = compressed(coding, &body).await;
        assert_eq!(
            inflate(&sent, coding, body.len()).await.unwrap(),
            body,
            "{coding:?}"
        );
        assert_eq!(
            inflate(&sent, coding, body.len() - 1).await,
            Err(Inflated::TooLarge),
            "{coding:?}"
        );
        assert_eq!(
            inflate(&sent[..sent.len() / 2], coding, 1 << 20).await,
            Err(Inflated::Corrupt),
            "{coding:?}: cut short"
        );
        assert_eq!(
            inflate(b"not compressed at all", coding, 1 << 20).await,
            Err(Inflated::Corrupt),
            "{coding:?}"
        );
    }
}

#[tokio::test]
async fn a_zip_bomb_stops_at_the_cap() {
    let zeros = vec![0u8; 64 << 20];
    let bomb = compressed(RequestCoding::Gzip, &zeros).await;
    assert!(bomb.len() < 256 << 10, "{}", bomb.len());
    let started = std::time::Instant::now();
    assert_eq!(
        inflate(&bomb, RequestCoding::Gzip, 1 << 20).await,
        Err(Inflated::TooLarge)
    );
    // Inflating 1 MiB, not 64: far under what the whole would take.
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn the_request_coding_comes_from_content_encoding() {
    let of = |values: &[&str]| {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(header::CONTENT_ENCODING, HeaderValue::from_str(v).unwrap());
        }
        RequestCoding::of(&headers)
    };
    assert_eq!(of(&[]), Ok(None));
    assert_eq!(of(&["identity"]), Ok(None));
    assert_eq!(of(&["gzip"]), Ok(Some(RequestCoding::Gzip)));
    assert_eq!(of(&["X-Gzip"]), Ok(Some(RequestCoding::Gzip)));
    assert_eq!(of(&["deflate"]), Ok(Some(RequestCoding::Deflate)));
    assert_eq!(of(&[" BR "]), Ok(Some(RequestCoding::Brotli)));
    assert_eq!(of(&["zstd"]), Ok(Some(RequestCoding::Zstd)));
    assert_eq!(of(&["identity, gzip"]), Ok(Some(RequestCoding::Gzip)));
    assert_eq!(of(&["compress"]), Err("compress".into()));
    assert_eq!(of(&["gzip, br"]), Err("gzip, br".into()));
    assert_eq!(of(&["gzip", "gzip"]), Err("gzip, gzip".into()));
}
