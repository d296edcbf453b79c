//! Streamed responses reach the client chunk by chunk: server-sent events from a real
//! upstream arrive one at a time while the upstream's body is still open (the test
//! itself decides when the upstream sends the next event, after the client has the
//! previous one), over HTTP/1.1 and HTTP/2, through a route whose response-phase
//! plugin changes headers and whose compression leaves `text/event-stream` alone.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::StreamBody;
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;
use wasmgate_e2e::{Background, TestGateway, client};

type Events = Arc<Mutex<Option<mpsc::Sender<Bytes>>>>;

/// An upstream whose one response, `text/event-stream`, sends what the test puts in
/// the channel it leaves in `events`, and ends when the test drops the sender.
fn start_upstream() -> (SocketAddr, Events, Background) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let address = listener.local_addr().unwrap();
    let events: Events = Arc::default();
    let slot = events.clone();
    let server = Background::spawn(1, move |mut stopped| async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        loop {
            // The gateway's health probe connects too.
            let tcp = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((tcp, _)) => tcp,
                    Err(_) => continue,
                },
                _ = &mut stopped => break,
            };
            let slot = slot.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_request| {
                    let (send, receive) = mpsc::channel::<Bytes>(4);
                    *slot.lock().unwrap() = Some(send);
                    let body = StreamBody::new(
                        tokio_stream_of(receive)
                            .map(|chunk| Ok::<_, Infallible>(Frame::data(chunk))),
                    );
                    let mut response = http::Response::new(body);
                    response
                        .headers_mut()
                        .insert("content-type", "text/event-stream".parse().unwrap());
                    async move { Ok::<_, Infallible>(response) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    (address, events, server)
}

fn tokio_stream_of(
    mut receive: mpsc::Receiver<Bytes>,
) -> impl futures_util::Stream<Item = Bytes> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| receive.poll_recv(cx))
}

async fn events_arrive_one_by_one(http2: bool) {
    let (address, events, upstream) = start_upstream();
    let gateway = TestGateway::new()
        .service("events", address)
        .plugin("headers", "headers")
        .toml(
            r#"
[[routes]]
name = "events"
prefix = "/"
service = "events"
[routes.compression]
[[routes.plugins]]
name = "headers"
config = { response = { set = { "x-through" = "gateway" } } }
"#,
        )
        .start();
    let client = if http2 {
        reqwest::Client::builder()
            .no_proxy()
            .http2_prior_knowledge()
            .build()
            .unwrap()
    } else {
        client()
    };
    let response = client
        .get(gateway.url("/events"))
        .header("accept-encoding", "gzip, br")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let want = if http2 {
        http::Version::HTTP_2
    } else {
        http::Version::HTTP_11
    };
    assert_eq!(response.version(), want);
    assert_eq!(response.headers()["x-through"], "gateway");
    assert!(!response.headers().contains_key("content-encoding"));
    let send = events
        .lock()
        .unwrap()
        .take()
        .expect("the upstream was called");
    let mut body = response.bytes_stream();
    for n in 1..=3 {
        let event = format!("id: {n}\ndata: event {n}\n\n");
        send.send(Bytes::from(event.clone())).await.unwrap();
        // The upstream's body is still open: only this event can have come.
        let mut got = Vec::new();
        while got.len() < event.len() {
            let chunk = tokio::time::timeout(Duration::from_secs(10), body.next())
                .await
                .unwrap_or_else(|_| panic!("event {n} did not arrive while the stream was open"))
                .expect("the stream goes on")
                .unwrap();
            got.extend_from_slice(&chunk);
        }
        assert_eq!(String::from_utf8(got).unwrap(), event);
    }
    drop(send);
    // HTTP/2 may end the stream with an empty DATA frame.
    loop {
        let end = tokio::time::timeout(Duration::from_secs(10), body.next())
            .await
            .expect("the stream ends when the upstream's does");
        match end {
            None => break,
            Some(Ok(chunk)) if chunk.is_empty() => continue,
            other => panic!("more after the last event: {other:?}"),
        }
    }
    drop(gateway);
    drop(upstream);
}

#[tokio::test]
async fn server_sent_events_arrive_one_by_one_over_http1() {
    events_arrive_one_by_one(false).await;
}

#[tokio::test]
async fn server_sent_events_arrive_one_by_one_over_http2() {
    events_arrive_one_by_one(true).await;
}
