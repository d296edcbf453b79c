//! A real upstream on a loopback port, run on its own thread and runtime.
//!
//! By default it echoes the request as JSON: `method`, `path`, `query`, `headers`
//! (name → list of values, in order), `body` (lossy UTF-8), `body_len`,
//! `body_sha256`. Paths under `/raw` answer with the request body itself. The query
//! parameters `delay_ms=N` and `status=N` delay the answer and set its status, and
//! `bytes=N` makes the answer N bytes of `x` (for clients that read slowly). It
//! records the path of every request it receives ([`Upstream::paths`]).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use sha2::{Digest, Sha256};

/// How the upstream answers.
#[derive(Debug, Clone, Default)]
pub struct UpstreamBehaviour {
    /// A header added to every response.
    pub response_header: Option<(String, String)>,
    /// The status of every answer (unless the query's `status=N` says otherwise).
    pub status: Option<u16>,
}

/// A running upstream; stops when dropped.
pub struct Upstream {
    /// Where it listens.
    pub address: SocketAddr,
    hits: Arc<AtomicUsize>,
    paths: Arc<Mutex<Vec<String>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Upstream {
    /// Starts an echo upstream on a free loopback port.
    pub fn start() -> Self {
        Self::start_with(UpstreamBehaviour::default())
    }

    /// Starts an upstream with `behaviour`.
    pub fn start_with(behaviour: UpstreamBehaviour) -> Self {
        Self::start_at("127.0.0.1:0".parse().unwrap(), behaviour)
    }

    /// Starts an upstream on `address` (e.g. the address of one stopped earlier).
    pub fn start_at(address: SocketAddr, behaviour: UpstreamBehaviour) -> Self {
        let listener = std::net::TcpListener::bind(address).expect("bind upstream");
        listener.set_nonblocking(true).expect("nonblocking");
        let address = listener.local_addr().expect("address");
        let hits = Arc::new(AtomicUsize::new(0));
        let paths = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let counter = hits.clone();
        let recorder = paths.clone();
        let behaviour = Arc::new(behaviour);
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("upstream runtime");
            runtime.block_on(serve(listener, counter, recorder, behaviour, stopped));
        });
        Self {
            address,
            hits,
            paths,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// How many requests reached the upstream.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// The path (without the query) of every request it received, in order.
    pub fn paths(&self) -> Vec<String> {
        self.paths.lock().unwrap().clone()
    }

    /// Stops it and waits until its port is closed.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    hits: Arc<AtomicUsize>,
    paths: Arc<Mutex<Vec<String>>>,
    behaviour: Arc<UpstreamBehaviour>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => continue,
            },
            _ = &mut stopped => return,
        };
        let hits = hits.clone();
        let paths = paths.clone();
        let behaviour = behaviour.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                paths.lock().unwrap().push(request.uri().path().to_string());
                hits.fetch_add(1, Ordering::SeqCst);
                answer(request, behaviour.clone())
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn query_param(query: Option<&str>, name: &str) -> Option<u64> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
}

async fn answer(
    request: Request<Incoming>,
    behaviour: Arc<UpstreamBehaviour>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let query = parts.uri.query();
    if let Some(delay) = query_param(query, "delay_ms") {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let status = query_param(query, "status")
        .map(|s| s as u16)
        .or(behaviour.status)
        .unwrap_or(200);
    let mut response = if let Some(size) = query_param(query, "bytes") {
        Response::new(Full::new(Bytes::from(vec![b'x'; size as usize])))
    } else if parts.uri.path().starts_with("/raw") {
        let mut response = Response::new(Full::new(body.clone()));
        response.headers_mut().insert(
            "x-upstream-body-len",
            body.len().to_string().parse().unwrap(),
        );
        response
    } else {
        let mut headers = serde_json::Map::new();
        for (name, value) in &parts.headers {
            let list = headers
                .entry(name.as_str())
                .or_insert_with(|| serde_json::Value::Array(Vec::new()));
            list.as_array_mut()
                .unwrap()
                .push(String::from_utf8_lossy(value.as_bytes()).into());
        }
        let echo = serde_json::json!({
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "query": query,
            "headers": headers,
            "body": String::from_utf8_lossy(&body),
            "body_len": body.len(),
            "body_sha256": hex::encode(Sha256::digest(&body)),
        });
        let mut response = Response::new(Full::new(Bytes::from(echo.to_string())));
        response
            .headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        response
    };
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    response
        .headers_mut()
        .insert("x-upstream", "echo".parse().unwrap());
    if let Some((name, value)) = &behaviour.response_header {
        response.headers_mut().append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    Ok(response)
}

/// The echo upstream as a process of its own (`src/bin/test-upstream.rs`), for tests
/// that kill it mid-run; killed when dropped.
pub struct UpstreamProcess {
    /// Where it listens.
    pub address: SocketAddr,
    child: std::process::Child,
}

impl UpstreamProcess {
    /// Starts one on a free loopback port and waits until it accepts.
    pub fn start() -> Self {
        use std::io::BufRead;
        let exe = std::env::current_exe().expect("test executable path");
        let bin = exe
            .parent()
            .and_then(std::path::Path::parent)
            .expect("profile dir")
            .join("test-upstream");
        let mut child = std::process::Command::new(&bin)
            .arg("127.0.0.1:0")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("test-upstream says where it listens");
        let address = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("test-upstream said {line:?}"));
        Self { address, child }
    }

    /// Kills it with SIGKILL (no goodbye to open connections) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for UpstreamProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
