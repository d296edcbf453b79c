//! Compression with the real binary (`[routes.compression]`): responses compressed by
//! `Accept-Encoding` and decoded by real clients (decoders in this process and
//! `curl --compressed`) to the upstream's exact bytes, `Vary` present, q-values
//! honoured, what must pass as it is passing as it is, a 10 MiB stream compressed with
//! the gateway's memory bounded; compressed request bodies inflated for the plugins
//! that read them, under the route's cap (a zip bomb gets 413), the upstream getting
//! the client's bytes.

use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::SocketAddr;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{Request, Response};
use http_body_util::{Either, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use sha2::{Digest, Sha256};
use wasmgate_e2e::{GatewayProcess, TestGateway, Upstream, assert_envelope, client};

/// A JSON body of `n` records, as an API would return it.
fn json(n: usize) -> Bytes {
    let records: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"id":{i},"name":"user {i}","email":"user{i}@example.com","score":{},"active":{}}}"#,
                (i * 7919) % 1000,
                i.is_multiple_of(3)
            )
        })
        .collect();
    Bytes::from(format!("[{}]", records.join(",")))
}

/// Chunk `i` of the streamed text body: 64 KiB of log-like lines.
fn stream_chunk(i: u64) -> Bytes {
    let mut text = String::with_capacity(64 * 1024 + 100);
    let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut line = 0;
    while text.len() < 64 * 1024 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        text.push_str(&format!(
            "{i:04}.{line:05} level=info route=orders status={} took_us={} id={x:016x}\n",
            200 + (x % 4) * 100,
            x % 10_000
        ));
        line += 1;
    }
    text.truncate(64 * 1024);
    Bytes::from(text)
}

/// Chunks in the 10 MiB stream.
const STREAM_CHUNKS: u64 = 160;

fn stream_body() -> Vec<u8> {
    (0..STREAM_CHUNKS)
        .flat_map(|i| stream_chunk(i).to_vec())
        .collect()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Decodes `bytes` from `coding` with decoders independent of the gateway's.
fn decode(coding: &str, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        "gzip" => {
            flate2::read::GzDecoder::new(bytes)
                .read_to_end(&mut out)
                .expect("gzip decodes");
        }
        "br" => {
            brotli::Decompressor::new(bytes, 4096)
                .read_to_end(&mut out)
                .expect("brotli decodes");
        }
        "zstd" => out = zstd::decode_all(bytes).expect("zstd decodes"),
        other => panic!("no decoder for {other}"),
    }
    out
}

type Body = Either<
    Full<Bytes>,
    StreamBody<futures_util::stream::BoxStream<'static, Result<Frame<Bytes>, Infallible>>>,
>;

/// An upstream that serves what these tests compress: `/json/N` (N records, with a
/// strong ETag), `/stream` (10 MiB of text, chunked, each 64 KiB chunk made when
/// the gateway reads it), `/gzipped` (JSON already gzip-encoded), `/png` (4 KiB of
/// an image type), `/events` (an event stream).
struct ContentUpstream {
    address: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ContentUpstream {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let (stream, _) = tokio::select! {
                        accepted = listener.accept() => match accepted {
                            Ok(accepted) => accepted,
                            Err(_) => continue,
                        },
                        _ = &mut stopped => return,
                    };
                    tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(
                        hyper_util::rt::TokioIo::new(stream),
                        hyper::service::service_fn(content),
                    ));
                }
            });
        });
        Self {
            address,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for ContentUpstream {
    fn drop(&mut self) {
        let _ = self.stop.take().map(|stop| stop.send(()));
        let _ = self.thread.take().map(std::thread::JoinHandle::join);
    }
}

async fn content(request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = request.uri().path().to_string();
    let full = |bytes: Bytes| Either::Left(Full::new(bytes));
    let (content_type, body) = if let Some(n) = path.strip_prefix("/json/") {
        ("application/json", full(json(n.parse().unwrap())))
    } else if path == "/stream" {
        let chunks = futures_util::stream::iter(0..STREAM_CHUNKS)
            .map(|i| Ok(Frame::data(stream_chunk(i))))
            .boxed();
        (
            "text/plain; charset=utf-8",
            Either::Right(StreamBody::new(chunks)),
        )
    } else if path == "/gzipped" {
        ("application/json", full(Bytes::from(gzip(&json(200)))))
    } else if path == "/png" {
        ("image/png", full(Bytes::from(vec![7u8; 4096])))
    } else {
        ("text/event-stream", full(json(100)))
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert("content-type", content_type.parse().unwrap());
    headers.insert("etag", "\"v1\"".parse().unwrap());
    if path == "/gzipped" {
        headers.insert("content-encoding", "gzip".parse().unwrap());
    }
    Ok(response)
}

fn gateway(upstream: &ContentUpstream) -> GatewayProcess {
    TestGateway::new()
        .service("content", upstream.address)
        .toml(
            r#"
[[routes]]
name = "content"
prefix = "/"
service = "content"

[routes.compression]
"#,
        )
        .start()
}

/// `GET path` with `Accept-Encoding: accept` (none when `None`): status, headers, the
/// body as sent.
async fn get(
    gateway: &GatewayProcess,
    path: &str,
    accept: Option<&str>,
) -> (u16, http::HeaderMap, Bytes) {
    let mut request = client().get(gateway.url(path));
    if let Some(accept) = accept {
        request = request.header("accept-encoding", accept);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.bytes().await.unwrap())
}

fn header<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    let mut values = headers.get_all(name).iter();
    let value = values.next().map(|v| v.to_str().unwrap());
    assert!(values.next().is_none(), "{name} is sent once");
    value
}

#[tokio::test]
async fn each_coding_decodes_to_the_upstream_bytes() {
    let upstream = ContentUpstream::start();
    let gateway = gateway(&upstream);
    let want = json(2000);
    for coding in ["gzip", "br", "zstd"] {
        let (status, headers, sent) = get(&gateway, "/json/2000", Some(coding)).await;
        assert_eq!(status, 200);
        assert_eq!(header(&headers, "content-encoding"), Some(coding));
        assert_eq!(header(&headers, "vary"), Some("accept-encoding"));
        assert_eq!(header(&headers, "etag"), Some("W/\"v1\""));
        assert_eq!(header(&headers, "content-length"), None);
        assert!(
            sent.len() * 4 < want.len(),
            "{coding}: {} bytes",
            sent.len()
        );
        assert_eq!(decode(coding, &sent), want, "{coding}");
    }
    let metrics = client()
        .get(gateway.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for coding in ["gzip", "br", "zstd"] {
        let line = format!(
            "wasmgate_compressed_responses_total{{route=\"content\",encoding=\"{coding}\"}} 1\n"
        );
        assert!(metrics.contains(&line), "{line}in\n{metrics}");
    }
}

#[tokio::test]
async fn q_values_pick_the_coding_and_identity_gets_the_bytes_as_they_are() {
    let upstream = ContentUpstream::start();
    let gateway = gateway(&upstream);
    let want = json(500);
    for (accept, chosen) in [
        (Some("gzip, deflate, br, zstd"), Some("br")),
        (Some("gzip;q=1.0, br;q=0.5, zstd;q=0.8"), Some("gzip")),
        (Some("gzip;q=0, br;q=0.1, zstd;q=0.2"), Some("zstd")),
        (Some("X-GZIP;q=0.5, *;q=0"), Some("gzip")),
        (Some("*;q=0.3, br;q=0"), Some("zstd")),
        (Some("gzip;q=0"), None),
        (Some("identity"), None),
        (Some("gzip;q=0, br;q=0, zstd;q=0, identity;q=1"), None),
        (None, None),
    ] {
        let (status, headers, sent) = get(&gateway, "/json/500", accept).await;
        assert_eq!(status, 200);
        assert_eq!(header(&headers, "content-encoding"), chosen, "{accept:?}");
        // Whether compressed or not, the response varies by Accept-Encoding.
        assert_eq!(
            header(&headers, "vary"),
            Some("accept-encoding"),
            "{accept:?}"
        );
        let body = match chosen {
            Some(coding) => decode(coding, &sent),
            None => {
                assert_eq!(header(&headers, "etag"), Some("\"v1\""));
                sent.to_vec()
            }
        };
        assert_eq!(body, want, "{accept:?}");
    }
}

#[tokio::test]
async fn small_bodies_other_types_encoded_responses_and_head_pass_as_they_are() {
    let upstream = ContentUpstream::start();
    let gateway = gateway(&upstream);
    let all = Some("gzip, br, zstd");

    // Under min_bytes (1024): as it is, and it does not vary.
    let small = json(5);
    assert!(small.len() < 1024);
    let (_, headers, sent) = get(&gateway, "/json/5", all).await;
    assert_eq!(header(&headers, "content-encoding"), None);
    assert_eq!(header(&headers, "vary"), None);
    assert_eq!(sent, small);

    // A type not in the list, and an event stream (text/* does not take it).
    let (_, headers, sent) = get(&gateway, "/png", all).await;
    assert_eq!(header(&headers, "content-encoding"), None);
    assert_eq!(sent, vec![7u8; 4096]);
    let (_, headers, sent) = get(&gateway, "/events", all).await;
    assert_eq!(header(&headers, "content-encoding"), None);
    assert_eq!(sent, json(100));

    // Already gzip: never twice, the upstream's bytes as they are.
    let (_, headers, sent) = get(&gateway, "/gzipped", all).await;
    assert_eq!(header(&headers, "content-encoding"), Some("gzip"));
    assert_eq!(header(&headers, "etag"), Some("\"v1\""));
    assert_eq!(sent, gzip(&json(200)));

    // HEAD: no coding (and no body).
    let response = client()
        .head(gateway.url("/json/2000"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(response.headers(), "content-encoding"), None);
}

#[tokio::test]
async fn curl_compressed_decodes_to_the_same_bytes() {
    let upstream = ContentUpstream::start();
    let gateway = gateway(&upstream);
    let want = json(3000);
    let dir = tempfile::tempdir().unwrap();
    // curl's own offer (it names deflate, gzip, br and zstd), then each coding alone.
    for (accept, coding) in [(None, "br"), (Some("gzip"), "gzip"), (Some("zstd"), "zstd")] {
        let body = dir.path().join("body");
        let head = dir.path().join("head");
        let mut curl = std::process::Command::new("/usr/bin/curl");
        curl.args(["--compressed", "--silent", "--show-error", "--noproxy", "*"])
            .arg("--dump-header")
            .arg(&head)
            .arg("--output")
            .arg(&body);
        if let Some(accept) = accept {
            curl.args(["--header", &format!("accept-encoding: {accept}")]);
        }
        let status = curl.arg(gateway.url("/json/3000")).status().unwrap();
        assert!(status.success(), "curl failed");
        let head = std::fs::read_to_string(&head).unwrap().to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(
            head.contains(&format!("\ncontent-encoding: {coding}\r\n")),
            "{head}"
        );
        assert!(head.contains("\nvary: accept-encoding\r\n"), "{head}");
        assert_eq!(std::fs::read(&body).unwrap(), want, "{coding}");
    }
}

#[tokio::test]
async fn a_10_mib_stream_is_compressed_with_the_gateway_memory_bounded() {
    let upstream = ContentUpstream::start();
    let gateway = gateway(&upstream);
    let want = stream_body();
    assert_eq!(want.len(), 10 << 20);
    for coding in ["gzip", "br", "zstd"] {
        // Warm up the connection pools and the allocator, then measure.
        get(&gateway, "/json/2000", Some(coding)).await;
        let before = gateway.rss_kib();
        let response = client()
            .get(gateway.url("/stream"))
            .header("accept-encoding", coding)
            .send()
            .await
            .unwrap();
        assert_eq!(header(response.headers(), "content-encoding"), Some(coding));
        assert_eq!(header(response.headers(), "content-length"), None);
        let mut sent = Vec::new();
        let mut peak = before;
        let mut chunks = response.bytes_stream();
        while let Some(chunk) = chunks.next().await {
            sent.extend_from_slice(&chunk.unwrap());
            peak = peak.max(gateway.rss_kib());
        }
        let grew = peak.saturating_sub(before);
        eprintln!(
            "{coding}: 10 MiB in {} KiB; gateway RSS {before} KiB, peak +{grew} KiB",
            sent.len() / 1024
        );
        // Buffered, the 10 MiB (and what it compresses to) would be resident at once.
        assert!(grew < 8 * 1024, "{coding}: the gateway grew by {grew} KiB");
        assert!(sent.len() < want.len() / 2, "{coding}: {}", sent.len());
        assert!(
            decode(coding, &sent) == want,
            "{coding}: decodes byte for byte"
        );
    }
}

const VALIDATED: &str = r#"
[[routes]]
name = "validated"
path = "/orders"
service = "echo"

[[routes.plugins]]
name = "request-validator"

[routes.plugins.config.schema]
type = "object"
required = ["item"]
properties.item = { type = "string" }

[[routes]]
name = "upper"
path = "/upper"
service = "echo"

[[routes.plugins]]
name = "bodyupper"

[routes.compression]
min_bytes = 0

[[routes]]
name = "plain"
path = "/plain"
service = "echo"
"#;

fn body_gateway(upstream: &Upstream) -> GatewayProcess {
    TestGateway::new()
        .service("echo", upstream.address)
        .plugin("request-validator", "request-validator")
        .plugin("bodyupper", "bodyupper")
        .toml(VALIDATED)
        .start()
}

async fn post(
    gateway: &GatewayProcess,
    path: &str,
    coding: &str,
    body: Vec<u8>,
) -> (u16, http::HeaderMap, Bytes) {
    let response = client()
        .post(gateway.url(path))
        .header("content-type", "application/json")
        .header("content-encoding", coding)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.bytes().await.unwrap())
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[tokio::test]
async fn a_gzipped_body_reaches_the_plugins_inflated_and_the_upstream_as_sent() {
    let upstream = Upstream::start();
    let gateway = body_gateway(&upstream);

    // The validator reads the inflated JSON; the upstream gets the client's bytes.
    let sent = gzip(br#"{"item": "book"}"#);
    let (status, _, echo) = post(&gateway, "/orders", "gzip", sent.clone()).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&echo));
    let echo: serde_json::Value = serde_json::from_slice(&echo).unwrap();
    assert_eq!(
        echo["headers"]["content-encoding"],
        serde_json::json!(["gzip"])
    );
    assert_eq!(
        echo["headers"]["content-length"],
        serde_json::json!([sent.len().to_string()])
    );
    assert_eq!(echo["body_sha256"], sha256(&sent));

    // Inflated, the body fails the schema: refused by the plugin, not the gateway.
    let (status, headers, body) = post(&gateway, "/orders", "gzip", gzip(br#"{"item": 5}"#)).await;
    let id = header(&headers, "x-request-id").unwrap();
    let envelope = assert_envelope(status, Some(id), &body, 400, "VALIDATION_ERROR");
    assert_eq!(
        envelope["data"]["fields"][0]["field"], "/item",
        "{envelope}"
    );

    // Not gzip at all; and a coding the gateway does not read.
    let (status, headers, body) =
        post(&gateway, "/orders", "gzip", b"{\"item\": \"x\"}".to_vec()).await;
    let envelope = assert_envelope(
        status,
        header(&headers, "x-request-id"),
        &body,
        400,
        "VALIDATION_ERROR",
    );
    assert!(
        envelope["data"].is_null(),
        "the gateway's refusal: {envelope}"
    );
    let (status, headers, body) = post(&gateway, "/orders", "compress", b"x".to_vec()).await;
    assert_envelope(
        status,
        header(&headers, "x-request-id"),
        &body,
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    );
    assert_eq!(
        header(&headers, "accept-encoding"),
        Some("gzip, deflate, br, zstd")
    );
    assert_eq!(upstream.hits(), 1);

    // A plugin that changes the body: the upstream gets the new one, uncompressed.
    let (status, headers, sent) =
        post(&gateway, "/upper", "gzip", gzip(b"{\"item\": \"book\"}")).await;
    assert_eq!(status, 200);
    // The response plugin read the uncompressed body; the client gets it compressed
    // (reqwest asks for none here: it sent no Accept-Encoding), so identity.
    assert_eq!(header(&headers, "content-encoding"), None);
    let echo: serde_json::Value = serde_json::from_slice(&sent).unwrap();
    assert_eq!(echo["body"], "{\"ITEM\": \"BOOK\"}");
    assert!(echo["headers"]["content-encoding"].is_null(), "{echo}");
    assert_eq!(
        header(&headers, "x-response-body-len"),
        Some(sent.len().to_string().as_str())
    );

    // A route whose plugins read no body: the body streams through untouched.
    let sent = gzip(b"not even JSON");
    let (status, _, echo) = post(&gateway, "/plain", "gzip", sent.clone()).await;
    assert_eq!(status, 200);
    let echo: serde_json::Value = serde_json::from_slice(&echo).unwrap();
    assert_eq!(
        echo["headers"]["content-encoding"],
        serde_json::json!(["gzip"])
    );
    assert_eq!(echo["body_sha256"], sha256(&sent));
}

#[tokio::test]
async fn response_plugins_read_the_body_uncompressed_and_the_client_gets_it_compressed() {
    let upstream = Upstream::start();
    let gateway = body_gateway(&upstream);
    let response = client()
        .post(gateway.url("/upper"))
        .header("accept-encoding", "zstd")
        .body("{\"item\": \"book\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(header(&headers, "content-encoding"), Some("zstd"));
    let body = decode("zstd", &response.bytes().await.unwrap());
    let echo: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(echo["body"], "{\"ITEM\": \"BOOK\"}");
    assert_eq!(
        header(&headers, "x-response-body-len"),
        Some(body.len().to_string().as_str())
    );
}

#[tokio::test]
async fn a_zip_bomb_is_refused_with_bounded_memory_and_the_gateway_stays_up() {
    let upstream = Upstream::start();
    let gateway = body_gateway(&upstream);
    let bomb = gzip(&vec![0u8; 64 << 20]);
    assert!(bomb.len() < 128 << 10, "{} bytes", bomb.len());
    // Warm up, then measure.
    post(&gateway, "/orders", "gzip", gzip(br#"{"item": "book"}"#)).await;
    let before = gateway.rss_kib();
    let started = std::time::Instant::now();
    let (status, headers, body) = post(&gateway, "/orders", "gzip", bomb).await;
    let took = started.elapsed();
    let id = header(&headers, "x-request-id").unwrap();
    let envelope = assert_envelope(status, Some(id), &body, 413, "PAYLOAD_TOO_LARGE");
    assert!(
        envelope["error"].as_str().unwrap().contains("1048576"),
        "{envelope}"
    );
    let grew = gateway.rss_kib().saturating_sub(before);
    eprintln!("zip bomb: refused in {took:?}, gateway RSS +{grew} KiB");
    // Inflated whole, it would be 64 MiB; the cap is 1 MiB.
    assert!(grew < 16 * 1024, "the gateway grew by {grew} KiB");
    assert_eq!(upstream.hits(), 1, "only the warm-up reached the upstream");
    let (status, _, _) = post(&gateway, "/orders", "gzip", gzip(br#"{"item": "pen"}"#)).await;
    assert_eq!(status, 200, "the gateway still serves");
}

#[tokio::test]
async fn the_gateway_s_own_error_envelopes_are_compressed_when_they_qualify() {
    // A route whose upstream is gone, probed down: the 503 envelope, compressed
    // (min_bytes = 0).
    let dead = wasmgate_e2e::dead_address();
    let gateway = TestGateway::new()
        .service("gone", dead.address)
        .toml(
            "[[routes]]\nname = \"gone\"\nprefix = \"/\"\nservice = \"gone\"\n\n[routes.compression]\nmin_bytes = 0\n",
        )
        .start();
    gateway.wait_for_log("upstream down");
    let (status, headers, sent) = get(&gateway, "/x", Some("gzip")).await;
    assert_eq!(header(&headers, "content-encoding"), Some("gzip"));
    let body = decode("gzip", &sent);
    assert_envelope(
        status,
        header(&headers, "x-request-id"),
        &body,
        503,
        "SERVICE_UNAVAILABLE",
    );
}
