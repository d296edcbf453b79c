//! TLS for the end-to-end tests: a test CA that issues server certificates (rcgen),
//! written as PEM files for `[gateway.tls]`; a client (tokio-rustls under hyper) that
//! reports what was negotiated: the ALPN protocol, the HTTP version and the
//! certificate the gateway served; and an HTTPS upstream (HTTP/2 or HTTP/1.1 by ALPN)
//! that answers gRPC-style with trailers.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};

/// A certificate authority for tests.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A server certificate and its key, as PEM.
#[derive(Clone)]
pub struct Issued {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
    /// The certificate, DER: what a client sees served.
    pub der: Vec<u8>,
}

impl Issued {
    /// Writes `NAME.pem` and `NAME.key` into `dir` (each by a rename, as a deploy tool
    /// would) and returns their paths.
    pub fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        write_by_rename(&key, self.key_pem.as_bytes());
        write_by_rename(&cert, self.cert_pem.as_bytes());
        (cert, key)
    }
}

/// Writes `bytes` to a temporary name beside `path`, then renames it into place.
pub fn write_by_rename(path: &Path, bytes: &[u8]) {
    let temporary = path.with_extension("partial");
    std::fs::write(&temporary, bytes).expect("write a temporary file");
    std::fs::rename(&temporary, path).expect("rename into place");
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

impl TestCa {
    /// A fresh CA.
    pub fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "wasmgate test CA");
        let key = KeyPair::generate().expect("CA key");
        Self {
            issuer: CertifiedIssuer::self_signed(params, key).expect("CA certificate"),
        }
    }

    /// A server certificate for `names` (DNS names, or IP addresses).
    pub fn issue(&self, names: &[&str]) -> Issued {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let params = CertificateParams::new(names).expect("server params");
        let key = KeyPair::generate().expect("server key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }

    /// A client certificate with subject `CN=common_name` and `names` (DNS names or
    /// URIs such as `spiffe://…`) as subject alternative names.
    pub fn issue_client(&self, common_name: &str, names: &[&str]) -> Issued {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        for name in names {
            params.subject_alt_names.push(if name.contains("://") {
                rcgen::SanType::URI((*name).try_into().expect("URI"))
            } else {
                rcgen::SanType::DnsName((*name).try_into().expect("DNS name"))
            });
        }
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().expect("client key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }

    /// The CA's certificate, PEM (for `curl --cacert`).
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(self.issuer.der().to_vec()))
            .expect("CA certificate as a root");
        roots
    }
}

/// What one request over TLS came back with.
#[derive(Debug)]
pub struct TlsAnswer {
    /// The ALPN protocol agreed, if any.
    pub alpn: Option<Vec<u8>>,
    /// The HTTP version of the response.
    pub version: http::Version,
    /// Its status.
    pub status: u16,
    /// Its body.
    pub body: Bytes,
    /// The certificate the server presented, DER.
    pub served: Vec<u8>,
}

/// `GET path` on a new TLS connection to `address`, verifying the server against
/// `ca` for `server_name` (a DNS name is sent as SNI; an IP address sends none) and
/// offering `alpn`; HTTP/2 when the server chose `h2`, else HTTP/1.1.
pub async fn tls_get(
    address: SocketAddr,
    server_name: &str,
    path: &str,
    alpn: &[&[u8]],
    ca: &TestCa,
) -> Result<TlsAnswer, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(ca.roots())
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from(server_name.to_string()).map_err(|e| e.to_string())?;
    let tcp = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let stream = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let (_, session) = stream.get_ref();
    let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
    let served = session
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|cert| cert.to_vec())
        .unwrap_or_default();
    let io = TokioIo::new(stream);
    let response = if alpn.as_deref() == Some(b"h2") {
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| format!("h2 handshake: {e}"))?;
        tokio::spawn(connection);
        let request = http::Request::get(format!("https://{server_name}{path}"))
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        sender
            .send_request(request)
            .await
            .map_err(|e| format!("h2 request: {e}"))?
    } else {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| format!("http/1.1 handshake: {e}"))?;
        tokio::spawn(connection);
        let request = http::Request::get(path)
            .header(http::header::HOST, server_name)
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        sender
            .send_request(request)
            .await
            .map_err(|e| format!("http/1.1 request: {e}"))?
    };
    let version = response.version();
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok(TlsAnswer {
        alpn,
        version,
        status,
        body,
        served,
    })
}

/// The server config for `issued`, offering ALPN `h2` and `http/1.1`, requiring a
/// client certificate issued by `clients` when given.
pub fn server_config(issued: &Issued, clients: Option<&TestCa>) -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = vec![CertificateDer::from(issued.der.clone())];
    let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).expect("key");
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("TLS versions");
    let builder = match clients {
        None => builder.with_no_client_auth(),
        Some(ca) => builder.with_client_cert_verifier(
            rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(ca.roots()),
                provider,
            )
            .build()
            .expect("client verifier"),
        ),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .expect("server certificate");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

/// An HTTPS upstream on a loopback port, serving `issued`: `POST …/grpc` answers a
/// gRPC-style message with trailers (`grpc-status: 0`, and `grpc-message: te=VALUE`
/// with the request's `TE`); anything else answers
/// `VERSION PATH` (`HTTP/2.0 /x`), saying which protocol the gateway spoke. Every
/// answer over a connection with a client certificate carries its SHA-256 (hex) in
/// `x-client-cert-sha256`.
pub struct TlsUpstream {
    /// Where it listens.
    pub address: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TlsUpstream {
    /// Starts it on its own thread and runtime.
    pub fn start(issued: &Issued) -> Self {
        Self::start_with(issued, None)
    }

    /// Starts it, requiring a client certificate issued by `clients` when given.
    pub fn start_with(issued: &Issued, clients: Option<&TestCa>) -> Self {
        Self::serve(issued, clients, None)
    }

    /// Starts it, answering `GET path` with `body` (JSON) besides the usual answers.
    pub fn with_document(issued: &Issued, path: &str, body: String) -> Self {
        Self::serve(issued, None, Some((path.to_string(), Bytes::from(body))))
    }

    fn serve(issued: &Issued, clients: Option<&TestCa>, document: Option<(String, Bytes)>) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("non-blocking");
        let address = listener.local_addr().expect("address");
        let acceptor = tokio_rustls::TlsAcceptor::from(server_config(issued, clients));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    let tcp = tokio::select! {
                        accepted = listener.accept() => match accepted {
                            Ok((tcp, _)) => tcp,
                            Err(_) => continue,
                        },
                        _ = &mut stopped => break,
                    };
                    let (acceptor, document) = (acceptor.clone(), document.clone());
                    tokio::spawn(async move {
                        let Ok(stream) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let client_cert = stream.get_ref().1.peer_certificates().and_then(|c| {
                            use sha2::Digest;
                            let first = c.first()?;
                            http::HeaderValue::from_str(&hex::encode(sha2::Sha256::digest(first)))
                                .ok()
                        });
                        let service = hyper::service::service_fn(move |request| {
                            let client_cert = client_cert.clone();
                            let document = document
                                .clone()
                                .filter(|(path, _)| request.uri().path() == path);
                            async move {
                                if let Some((_, body)) = document {
                                    return Ok(http::Response::new(
                                        Full::new(body).map_err(|never| match never {}).boxed(),
                                    ));
                                }
                                let mut response = answer(request).await?;
                                if let Some(hash) = client_cert {
                                    response.headers_mut().insert("x-client-cert-sha256", hash);
                                }
                                Ok::<_, std::convert::Infallible>(response)
                            }
                        });
                        let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
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

impl Drop for TlsUpstream {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

type UpstreamBody = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

async fn answer(
    request: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<UpstreamBody>, std::convert::Infallible> {
    let version = format!("{:?}", request.version());
    let path = request.uri().path().to_string();
    if path.ends_with("/grpc") {
        // The message says which `TE` arrived (gRPC needs `trailers`).
        let te = request
            .headers()
            .get(http::header::TE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .to_string();
        let _ = request.into_body().collect().await;
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
        trailers.insert(
            "grpc-message",
            http::HeaderValue::from_str(&format!("te={te}")).expect("header value"),
        );
        let frames = vec![
            Ok(hyper::body::Frame::data(Bytes::from_static(
                b"\0\0\0\0\x05hello",
            ))),
            Ok(hyper::body::Frame::trailers(trailers)),
        ];
        let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
        let response = http::Response::builder()
            .header(http::header::CONTENT_TYPE, "application/grpc")
            .body(body.boxed())
            .expect("response");
        return Ok(response);
    }
    let body = http_body_util::Full::new(Bytes::from(format!("{version} {path}")));
    Ok(http::Response::new(body.boxed()))
}
