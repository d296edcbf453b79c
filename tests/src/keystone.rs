//! A small OpenStack Keystone v3 for the `keystone` plugin's tests: `POST
//! /v3/auth/tokens` with the password method and a project scope, checked the way
//! Keystone checks it (methods, user name and domain, password, project name and
//! domain), answering 201 with `X-Subject-Token` and a token document, 401 with
//! Keystone's error document for bad credentials, 400 for a malformed request; or
//! after a delay, to be slow; over plain HTTP or HTTPS.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{Value, json};

use crate::Background;

/// The one user and project the fake knows.
pub const KEYSTONE_USER: (&str, &str, &str) = ("demo", "secret", "demo");

/// A running fake Keystone; stopped when dropped.
pub struct FakeKeystone {
    /// Where it listens.
    pub address: SocketAddr,
    requests: Arc<AtomicUsize>,
    _server: Background,
}

impl FakeKeystone {
    /// Starts one on a free loopback port that answers after `delay`.
    pub fn start(delay: Duration) -> Self {
        Self::serve(delay, None)
    }

    /// Starts one that speaks HTTPS only, with `issued`'s certificate.
    pub fn start_tls(issued: &crate::Issued) -> Self {
        Self::serve(
            Duration::ZERO,
            Some(tokio_rustls::TlsAcceptor::from(crate::tls::server_config(
                issued, None,
            ))),
        )
    }

    fn serve(delay: Duration, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind keystone");
        listener.set_nonblocking(true).expect("nonblocking");
        let address = listener.local_addr().expect("address");
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        let server = Background::spawn(1, move |mut stopped| async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            loop {
                let stream = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(_) => continue,
                    },
                    _ = &mut stopped => return,
                };
                let counter = counter.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        counter.fetch_add(1, Ordering::SeqCst);
                        answer(request, delay)
                    });
                    match tls {
                        None => {
                            let _ = hyper::server::conn::http1::Builder::new()
                                .timer(TokioTimer::new())
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                        // HTTP/2 too, as the TLS config offers it by ALPN.
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let _ = hyper_util::server::conn::auto::Builder::new(
                                    hyper_util::rt::TokioExecutor::new(),
                                )
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                            }
                        }
                    }
                });
            }
        });
        Self {
            address,
            requests,
            _server: server,
        }
    }

    /// How many requests it received.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

fn reply(status: u16, headers: &[(&str, &str)], body: Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = http::StatusCode::from_u16(status).expect("a status");
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    for (name, value) in headers {
        response.headers_mut().insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    response
}

fn error(status: u16, title: &str, message: &str) -> Response<Full<Bytes>> {
    reply(
        status,
        &[],
        json!({"error": {"code": status, "title": title, "message": message}}),
    )
}

async fn answer(
    request: Request<Incoming>,
    delay: Duration,
) -> Result<Response<Full<Bytes>>, Infallible> {
    tokio::time::sleep(delay).await;
    if request.method() != http::Method::POST || request.uri().path() != "/v3/auth/tokens" {
        return Ok(error(404, "Not Found", "The resource could not be found."));
    }
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let Ok(document) = serde_json::from_slice::<Value>(&body) else {
        return Ok(error(
            400,
            "Bad Request",
            "Expecting to find auth in request body.",
        ));
    };
    let auth = &document["auth"];
    let user = &auth["identity"]["password"]["user"];
    let project = &auth["scope"]["project"];
    let methods = auth["identity"]["methods"].as_array();
    let well_formed = methods.is_some_and(|m| m.iter().any(|m| m == "password"))
        && user["name"].is_string()
        && user["password"].is_string()
        && user["domain"]["name"].is_string()
        && project["name"].is_string()
        && project["domain"]["name"].is_string();
    if !well_formed {
        return Ok(error(
            400,
            "Bad Request",
            "Invalid input for field 'identity/password/user': the request is malformed.",
        ));
    }
    let (name, password, project_name) = KEYSTONE_USER;
    let good = user["name"] == name
        && user["password"] == password
        && user["domain"]["name"] == "Default"
        && project["name"] == project_name
        && project["domain"]["name"] == "Default";
    if !good {
        return Ok(error(
            401,
            "Unauthorized",
            "The request you have made requires authentication.",
        ));
    }
    Ok(reply(
        201,
        &[("x-subject-token", "gAAAAAB-fake-keystone-token")],
        json!({"token": {
            "methods": ["password"],
            "expires_at": "2030-01-01T00:00:00.000000Z",
            "issued_at": "2029-12-31T23:00:00.000000Z",
            "user": {"id": "u-7f3a", "name": name, "domain": {"id": "default", "name": "Default"}},
            "project": {"id": "p-91c2", "name": project_name, "domain": {"id": "default", "name": "Default"}},
            "roles": [{"id": "r-1", "name": "member"}],
            "catalog": [{"type": "compute", "name": "nova", "endpoints": [
                {"interface": "public", "region": "RegionOne", "url": "http://127.0.0.1:8774/v2.1"}
            ]}]
        }}),
    ))
}
