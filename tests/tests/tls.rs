//! TLS both ways. On the gateway listener: HTTP/2 and HTTP/1.1 chosen by ALPN, the
//! certificate chosen by SNI, certificates rotated on disk under traffic, a bad one
//! refused with the old one kept, and plain HTTP to the TLS port answered with an
//! envelope; clients: curl, and a Rust client (tokio-rustls under hyper) that shows
//! what was negotiated. To upstreams: `https://` endpoints verified against a
//! service's `ca_file` (and refused when unverifiable), the service's client
//! certificate shown to an upstream that asks for one, HTTP/2 by ALPN, gRPC-style
//! trailers passed through, and a plugin's outbound call to an `https://` service.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use sha2::Digest;

use wasmgate_e2e::{
    GatewayProcess, TestCa, TestGateway, TlsUpstream, Upstream, raw_request, tls_get, wait_for,
    wait_until_ok, write_by_rename,
};

/// A gateway with `[gateway.tls]` serving `certificates` (name → files written in
/// `dir`, in order), routing `/` to `upstream`.
fn tls_gateway(dir: &Path, certificates: &[&str], upstream: &Upstream) -> GatewayProcess {
    let entries: Vec<String> = certificates
        .iter()
        .map(|name| {
            let cert = dir.join(format!("{name}.pem"));
            let key = dir.join(format!("{name}.key"));
            format!(
                "{{ cert = {:?}, key = {:?} }}",
                cert.display().to_string(),
                key.display().to_string()
            )
        })
        .collect();
    TestGateway::new()
        .toml(&format!(
            "[gateway.tls]\ncertificates = [{}]\n",
            entries.join(", ")
        ))
        .service("echo", upstream.address)
        .toml("[[routes]]\nname = \"all\"\nprefix = \"/\"\nservice = \"echo\"\n")
        .start()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpn_picks_http2_or_http1_and_sni_picks_the_certificate() {
    let upstream = Upstream::start();
    let certs = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    // The first certificate is the default: for a client that sends no SNI name (an
    // IP address) or one that no certificate covers.
    let site_a = ca.issue(&["a.test", "127.0.0.1"]);
    let site_b = ca.issue(&["b.test", "*.b.test"]);
    site_a.write(certs.path(), "a");
    site_b.write(certs.path(), "b");
    let gateway = tls_gateway(certs.path(), &["a", "b"], &upstream);
    let address = gateway.address;

    let h2 = tls_get(address, "a.test", "/hello", &[b"h2", b"http/1.1"], &ca)
        .await
        .expect("HTTP/2 over TLS");
    assert_eq!(h2.alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(h2.version, http::Version::HTTP_2);
    assert_eq!(h2.status, 200, "{:?}", h2.body);
    assert_eq!(h2.served, site_a.der);
    // The upstream learns the client came over TLS.
    let echo: serde_json::Value = serde_json::from_slice(&h2.body).unwrap();
    assert_eq!(echo["headers"]["x-forwarded-proto"][0], "https", "{echo}");

    let h1 = tls_get(address, "b.test", "/hello", &[b"http/1.1"], &ca)
        .await
        .expect("HTTP/1.1 over TLS");
    assert_eq!(h1.alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(h1.version, http::Version::HTTP_11);
    assert_eq!(h1.status, 200);
    assert_eq!(h1.served, site_b.der, "SNI b.test gets b's certificate");

    let wildcard = tls_get(address, "api.b.test", "/", &[], &ca)
        .await
        .expect("a name under b's wildcard");
    assert_eq!(wildcard.served, site_b.der);
    assert_eq!(wildcard.alpn, None, "no ALPN offered: HTTP/1.1");
    assert_eq!(wildcard.version, http::Version::HTTP_11);

    let no_sni = tls_get(address, "127.0.0.1", "/", &[b"h2"], &ca)
        .await
        .expect("no SNI: the default certificate");
    assert_eq!(no_sni.served, site_a.der);

    // A name no certificate covers gets the default, which the client rejects.
    let error = tls_get(address, "c.test", "/", &[b"h2"], &ca)
        .await
        .expect_err("a.test's certificate does not cover c.test");
    assert!(error.contains("handshake"), "{error}");
    assert!(upstream.hits() >= 4);

    // curl, by ALPN both ways, with SNI through --resolve.
    let ca_file = certs.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    for (flag, version) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let url = format!("https://b.test:{}/curl", address.port());
        let output = Command::new("curl")
            .args(["-sS", "--max-time", "10", flag, "--cacert"])
            .arg(&ca_file)
            .args(["--resolve", &format!("b.test:{}:127.0.0.1", address.port())])
            .args(["-o", "/dev/null", "-w", "%{http_code} %{http_version}"])
            .arg(&url)
            .output()
            .expect("run curl");
        let out = String::from_utf8_lossy(&output.stdout);
        assert_eq!(
            out,
            format!("200 {version}"),
            "curl {flag}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_to_the_tls_port_gets_an_envelope_saying_so() {
    let upstream = Upstream::start();
    let certs = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    ca.issue(&["a.test"]).write(certs.path(), "a");
    let gateway = tls_gateway(certs.path(), &["a"], &upstream);
    let address = gateway.address;
    let response = tokio::task::spawn_blocking(move || {
        raw_request(address, b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
    })
    .await
    .unwrap();
    assert_eq!(response.status, 400, "{response:?}");
    let envelope: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(envelope["code"], "VALIDATION_ERROR", "{envelope}");
    assert!(
        envelope["error"].as_str().unwrap().contains("https://"),
        "{envelope}"
    );
    assert!(envelope["request_id"].is_string(), "{envelope}");
    assert_eq!(upstream.hits(), 0);
    // The gateway still serves TLS.
    assert_eq!(
        tls_get(address, "a.test", "/", &[b"h2"], &ca)
            .await
            .unwrap()
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn certificates_rotate_under_traffic_and_a_bad_one_is_refused() {
    let upstream = Upstream::start();
    let certs = tempfile::tempdir().unwrap();
    let ca = Arc::new(TestCa::new());
    let first = ca.issue(&["a.test"]);
    first.write(certs.path(), "a");
    let gateway = tls_gateway(certs.path(), &["a"], &upstream);
    let address = gateway.address;

    // Clients on fresh connections (each handshake sees the certificate in force)
    // until told to stop, bounded in count.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..2 {
        let (ca, stop, done) = (ca.clone(), stop.clone(), done.clone());
        clients.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            for _ in 0..2_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match tls_get(address, "a.test", "/", &[b"h2", b"http/1.1"], &ca).await {
                    Ok(answer) if answer.status == 200 => {}
                    Ok(answer) => failures.push(format!("status {}", answer.status)),
                    Err(error) => failures.push(error),
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            failures
        }));
    }
    let served = |ca: Arc<TestCa>| async move {
        tls_get(address, "a.test", "/", &[b"h2"], &ca)
            .await
            .map(|answer| answer.served)
    };
    wait_for(
        "requests before the rotation",
        Duration::from_secs(10),
        || (done.load(Ordering::Relaxed) >= 20).then_some(()),
    );

    // A new certificate and key for the same name, written as a deploy tool would.
    let second = ca.issue(&["a.test"]);
    second.write(certs.path(), "a");
    wait_until_ok(
        "the rotated certificate to be served",
        Duration::from_secs(10),
        || async {
            if served(ca.clone()).await.unwrap() == second.der {
                return Ok(());
            }
            Err(format!("log:\n{}", gateway.log()))
        },
    )
    .await;
    let after_rotation = done.load(Ordering::Relaxed);
    wait_for(
        "requests after the rotation",
        Duration::from_secs(10),
        || (done.load(Ordering::Relaxed) >= after_rotation + 20).then_some(()),
    );

    // A broken certificate file: the reload is refused, the second one stays.
    write_by_rename(
        &certs.path().join("a.pem"),
        b"-----BEGIN CERTIFICATE-----\nbroken\n",
    );
    let log = gateway.settled_log();
    assert!(
        log.contains("a.pem") && log.contains("reload"),
        "the refusal names the file; log:\n{log}"
    );
    assert_eq!(served(ca.clone()).await.unwrap(), second.der);
    // A key that is not the certificate's: refused too.
    let stranger = ca.issue(&["a.test"]);
    second.write(certs.path(), "a");
    write_by_rename(&certs.path().join("a.key"), stranger.key_pem.as_bytes());
    let log = gateway.settled_log();
    assert!(
        log.contains("is not the key of the certificate"),
        "log:\n{log}"
    );
    assert_eq!(served(ca.clone()).await.unwrap(), second.der);

    stop.store(true, Ordering::Relaxed);
    for client in clients {
        let failures = client.await.unwrap();
        assert!(failures.is_empty(), "failed requests: {failures:?}");
    }
    assert!(done.load(Ordering::Relaxed) >= after_rotation + 20);
}

#[test]
fn a_missing_or_unusable_certificate_is_a_config_error_with_its_line() {
    let certs = tempfile::tempdir().unwrap();
    let missing = certs.path().join("missing.pem");
    let (status, output) = TestGateway::new()
        .toml(&format!(
            "[gateway.tls]\ncertificates = [{{ cert = {:?}, key = {:?} }}]\n",
            missing.display().to_string(),
            missing.display().to_string()
        ))
        .check();
    assert_eq!(status.code(), Some(2), "{output}");
    assert!(output.contains("wasmgate.toml:9"), "{output}");
    assert!(
        output.contains("missing.pem") && output.contains("cannot read it"),
        "{output}"
    );

    std::fs::write(certs.path().join("empty.pem"), "").unwrap();
    let key = TestCa::new().issue(&["a.test"]).key_pem;
    std::fs::write(certs.path().join("k.key"), key).unwrap();
    let (status, output) = TestGateway::new()
        .toml(&format!(
            "[gateway.tls]\ncertificates = [{{ cert = {:?}, key = {:?} }}]\n",
            certs.path().join("empty.pem").display().to_string(),
            certs.path().join("k.key").display().to_string()
        ))
        .check();
    assert_eq!(status.code(), Some(2), "{output}");
    assert!(output.contains("holds no certificate"), "{output}");

    let (status, output) = TestGateway::new()
        .toml("[gateway.tls]\ncertificates = []\n")
        .check();
    assert_eq!(status.code(), Some(2), "{output}");
    assert!(
        output.contains("wasmgate.toml:8") && output.contains("at least one"),
        "{output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstreams_are_verified_and_h2_carries_grpc_trailers() {
    let ca = TestCa::new();
    let upstream = TlsUpstream::start(&ca.issue(&["127.0.0.1"]));
    let certs = tempfile::tempdir().unwrap();
    let ca_file = certs.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let url = format!("https://127.0.0.1:{}", upstream.address.port());
    let gateway = TestGateway::new()
        .toml(&format!(
            "[services.secure]\nendpoints = [{url:?}]\nca_file = {:?}\n\n\
             [services.unverified]\nendpoints = [{url:?}]\n\n\
             [[routes]]\nname = \"secure\"\nprefix = \"/secure\"\nservice = \"secure\"\n\n\
             [[routes]]\nname = \"unverified\"\nprefix = \"/unverified\"\nservice = \"unverified\"\n",
            ca_file.display().to_string()
        ))
        .start();

    // Verified against the service's CA; HTTP/2 chosen by ALPN.
    let response = reqwest::get(gateway.url("/secure/hello")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "HTTP/2.0 /secure/hello");

    // The system's roots do not know the test CA: the handshake fails, 502.
    let response = reqwest::get(gateway.url("/unverified/hello"))
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    let envelope: serde_json::Value = response.json().await.unwrap();
    assert_eq!(envelope["code"], "BAD_GATEWAY", "{envelope}");

    // A gRPC-style exchange over HTTP/2 (prior knowledge to the gateway): the
    // upstream's trailers reach the client.
    let tcp = tokio::net::TcpStream::connect(gateway.address)
        .await
        .unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let request = http::Request::post(format!("http://{}/secure/grpc", gateway.address))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            b"\0\0\0\0\x02hi",
        )))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/grpc");
    use http_body_util::BodyExt;
    let collected = response.into_body().collect().await.unwrap();
    let trailers = collected
        .trailers()
        .cloned()
        .expect("trailers passed through");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(
        trailers["grpc-message"], "te=trailers",
        "the gateway passes TE: trailers on"
    );
    assert_eq!(&collected.to_bytes()[..], b"\0\0\0\0\x05hello");
}

#[test]
fn a_service_ca_file_that_is_missing_or_not_pem_is_a_config_error_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("ca.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    for (file, expected) in [
        (dir.path().join("missing.pem"), "cannot read it"),
        (not_pem, "holds no certificate"),
    ] {
        let (status, output) = TestGateway::new()
            .toml(&format!(
                "[services.s]\nendpoints = [\"https://127.0.0.1:1\"]\nca_file = {:?}\n",
                file.display().to_string()
            ))
            .check();
        assert_eq!(status.code(), Some(2), "{output}");
        assert!(
            output.contains("wasmgate.toml:10") && output.contains("[services.s] ca_file"),
            "{output}"
        );
        assert!(output.contains(expected), "{output}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_shows_its_client_certificate_to_an_upstream_that_asks_for_one() {
    let ca = TestCa::new();
    let upstream = TlsUpstream::start_with(&ca.issue(&["127.0.0.1"]), Some(&ca));
    let identity = ca.issue_client("wasmgate", &["spiffe://example.org/gateway"]);
    let certs = tempfile::tempdir().unwrap();
    let ca_file = certs.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let (cert, key) = identity.write(certs.path(), "gateway");
    let url = format!("https://127.0.0.1:{}", upstream.address.port());
    let gateway = TestGateway::new()
        .toml(&format!(
            "[services.mutual]\nendpoints = [{url:?}]\nca_file = {ca:?}\n\
             client_cert = {cert:?}\nclient_key = {key:?}\n\n\
             [services.anonymous]\nendpoints = [{url:?}]\nca_file = {ca:?}\n\n\
             [[routes]]\nname = \"mutual\"\nprefix = \"/mutual\"\nservice = \"mutual\"\n\n\
             [[routes]]\nname = \"anonymous\"\nprefix = \"/anonymous\"\nservice = \"anonymous\"\n",
            ca = ca_file.display().to_string(),
            cert = cert.display().to_string(),
            key = key.display().to_string(),
        ))
        .start();

    // The upstream verified the gateway's certificate and saw that one.
    let response = reqwest::get(gateway.url("/mutual/hello")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-client-cert-sha256"],
        hex::encode(sha2::Sha256::digest(&identity.der)).as_str()
    );
    assert_eq!(response.text().await.unwrap(), "HTTP/2.0 /mutual/hello");

    // A new certificate written over the files is watched: the gateway reloads and
    // shows it.
    let renewed = ca.issue_client("wasmgate", &["spiffe://example.org/gateway"]);
    renewed.write(certs.path(), "gateway");
    let renewed_hash = hex::encode(sha2::Sha256::digest(&renewed.der));
    wait_until_ok(
        "the renewed client certificate to be shown",
        Duration::from_secs(10),
        || async {
            let response = reqwest::get(gateway.url("/mutual/again")).await.unwrap();
            if response.headers()["x-client-cert-sha256"] == renewed_hash.as_str() {
                return Ok(());
            }
            Err(format!("log:\n{}", gateway.log()))
        },
    )
    .await;

    // A service without one is refused in the handshake: 502.
    let response = reqwest::get(gateway.url("/anonymous/hello")).await.unwrap();
    assert_eq!(response.status(), 502);
    let envelope: serde_json::Value = response.json().await.unwrap();
    assert_eq!(envelope["code"], "BAD_GATEWAY", "{envelope}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_fetches_its_keys_from_an_https_service() {
    // `jwt-auth` takes its keys from a JWKS document served over HTTPS, through the
    // `http` import on a granted service verified against the test CA.
    use base64::Engine;
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    // An ES256 key (rcgen's default: ECDSA P-256); its public point 04 || x || y.
    let signing = rcgen::KeyPair::generate().unwrap();
    let point = signing.public_key_raw();
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let jwks = serde_json::json!({"keys": [{
        "kty": "EC",
        "crv": "P-256",
        "kid": "served",
        "x": b64(&point[1..33]),
        "y": b64(&point[33..65]),
    }]});
    let ca = TestCa::new();
    let idp = TlsUpstream::with_document(
        &ca.issue(&["127.0.0.1"]),
        "/.well-known/jwks.json",
        jwks.to_string(),
    );
    let upstream = Upstream::start();
    let certs = tempfile::tempdir().unwrap();
    let ca_file = certs.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let gateway = TestGateway::new()
        .service("echo", upstream.address)
        .plugin("jwt-auth", "jwt-auth")
        .toml(&format!(
            "[services.idp]\nendpoints = [\"https://127.0.0.1:{}\"]\nca_file = {:?}\n\n\
             [plugins.jwt-auth]\nhttp = [\"idp\"]\n\n\
             [[routes]]\nname = \"api\"\nprefix = \"/api\"\nservice = \"echo\"\n\
             [[routes.plugins]]\nname = \"jwt-auth\"\n\
             config = {{ jwks = {{ service = \"idp\", path = \"/.well-known/jwks.json\" }} }}\n",
            idp.address.port(),
            ca_file.display().to_string()
        ))
        .start();
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("served".into());
    let sign = |key: &rcgen::KeyPair| {
        jsonwebtoken::encode(
            &header,
            &serde_json::json!({"sub": "u-1", "exp": exp}),
            &EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap(),
        )
        .unwrap()
    };
    let token = sign(&signing);
    let http = reqwest::Client::new();
    let response = http
        .get(gateway.url("/api/items"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "log:\n{}", gateway.log());
    let forged = sign(&rcgen::KeyPair::generate().unwrap());
    let response = http
        .get(gateway.url("/api/items"))
        .bearer_auth(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[test]
fn a_service_client_certificate_that_is_half_given_or_not_its_keys_is_a_config_error() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let (cert, _) = ca.issue_client("one", &[]).write(dir.path(), "one");
    let (_, other_key) = ca.issue_client("two", &[]).write(dir.path(), "two");
    let service = "[services.s]\nendpoints = [\"https://127.0.0.1:1\"]\n";
    let cert = cert.display().to_string();
    let other_key = other_key.display().to_string();
    for (settings, place, expected) in [
        (
            format!("client_cert = {cert:?}\n"),
            "wasmgate.toml:10",
            "client_cert needs client_key",
        ),
        (
            format!("client_key = {other_key:?}\n"),
            "wasmgate.toml:10",
            "client_key needs client_cert",
        ),
        (
            format!("client_cert = {cert:?}\nclient_key = {other_key:?}\n"),
            "wasmgate.toml:10",
            "[services.s] client_key",
        ),
        (
            format!("client_cert = \"missing.pem\"\nclient_key = {other_key:?}\n"),
            "wasmgate.toml:10",
            "cannot read it",
        ),
    ] {
        let (status, output) = TestGateway::new()
            .toml(&format!("{service}{settings}"))
            .check();
        assert_eq!(status.code(), Some(2), "{output}");
        assert!(output.contains(place), "{settings}: {output}");
        assert!(output.contains(expected), "{settings}: {output}");
    }
}

/// `curl` over TLS to the gateway at `port` with `extra` arguments (a client
/// certificate, headers): the HTTP status and body, or curl's error.
fn curl_tls(port: u16, ca_file: &Path, extra: &[String]) -> Result<(u16, String), String> {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(ca_file)
        .args(["--resolve", &format!("a.test:{port}:127.0.0.1")])
        .args(extra)
        .args(["-w", "\n%{http_code}"])
        .arg(format!("https://a.test:{port}/mtls"))
        .output()
        .expect("run curl");
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    let out = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = out.rsplit_once('\n').expect("the status line");
    Ok((status.parse().unwrap(), body.to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_verified_and_described_to_plugins_and_the_upstream() {
    let upstream = Upstream::start();
    let ca = TestCa::new();
    let clients_ca = TestCa::new();
    let stranger_ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    ca.issue(&["a.test"]).write(dir.path(), "a");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let clients_file = dir.path().join("clients.pem");
    std::fs::write(&clients_file, clients_ca.pem()).unwrap();
    let alice = clients_ca.issue_client("alice", &["alice.clients.test", "spiffe://test/alice"]);
    let (alice_cert, alice_key) = alice.write(dir.path(), "alice");
    let (mallory_cert, mallory_key) = stranger_ca
        .issue_client("mallory", &[])
        .write(dir.path(), "mallory");
    let with_cert = |cert: &Path, key: &Path| -> Vec<String> {
        vec![
            "--cert".into(),
            cert.display().to_string(),
            "--key".into(),
            key.display().to_string(),
        ]
    };
    let start = |mode: &str| {
        TestGateway::new()
            .toml(&format!(
                "[gateway.tls]\ncertificates = [{{ cert = {:?}, key = {:?} }}]\nclient_ca = {:?}\nclient_certificates = {mode:?}\n",
                dir.path().join("a.pem").display().to_string(),
                dir.path().join("a.key").display().to_string(),
                clients_file.display().to_string(),
            ))
            .service("echo", upstream.address)
            .toml("[[routes]]\nname = \"all\"\nprefix = \"/\"\nservice = \"echo\"\n")
            .start()
    };

    let required = start("required");
    let port = required.address.port();
    let alice_args = with_cert(&alice_cert, &alice_key);
    let mut forged = alice_args.clone();
    forged.extend([
        "-H".into(),
        "X-Forwarded-Client-Cert: Subject=\"CN=admin\"".into(),
    ]);
    let (status, body) = curl_tls(port, &ca_file, &forged).expect("alice is served");
    assert_eq!(status, 200, "{body}");
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    let xfcc = echo["headers"]["x-forwarded-client-cert"]
        .as_array()
        .unwrap_or_else(|| panic!("{echo}"));
    assert_eq!(
        xfcc.len(),
        1,
        "the client's own header is dropped: {xfcc:?}"
    );
    let xfcc = xfcc[0].as_str().unwrap();
    let hash = hex::encode(sha2::Sha256::digest(&alice.der));
    assert!(xfcc.starts_with(&format!("Hash={hash};")), "{xfcc}");
    assert!(xfcc.contains(";Subject=\"CN=alice\""), "{xfcc}");
    assert!(xfcc.contains(";DNS=alice.clients.test"), "{xfcc}");
    assert!(xfcc.contains(";URI=spiffe://test/alice"), "{xfcc}");
    // No certificate, or one from another CA: no handshake.
    let refused = curl_tls(port, &ca_file, &[]);
    assert!(
        refused.is_err(),
        "served without a certificate: {refused:?}"
    );
    let mallory_args = with_cert(&mallory_cert, &mallory_key);
    let refused = curl_tls(port, &ca_file, &mallory_args);
    assert!(
        refused.is_err(),
        "served with a stranger's certificate: {refused:?}"
    );
    drop(required);

    // Optional: served without one (and without the header, even a forged one), but a
    // certificate that does not verify still fails.
    let optional = start("optional");
    let port = optional.address.port();
    let (status, body) = curl_tls(
        port,
        &ca_file,
        &[
            "-H".to_string(),
            "X-Forwarded-Client-Cert: Subject=\"CN=admin\"".to_string(),
        ],
    )
    .expect("served without a certificate");
    assert_eq!(status, 200);
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        echo["headers"].get("x-forwarded-client-cert").is_none(),
        "{echo}"
    );
    assert!(curl_tls(port, &ca_file, &mallory_args).is_err());
    let (status, body) = curl_tls(port, &ca_file, &alice_args).unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("CN=alice"), "{body}");

    // A client_ca that cannot be read or holds no certificate: an error at its line.
    std::fs::write(dir.path().join("empty.pem"), "").unwrap();
    for (file, why) in [
        ("missing.pem", "cannot read it"),
        ("empty.pem", "holds no certificate"),
    ] {
        let (status, output) = TestGateway::new()
            .toml(&format!(
                "[gateway.tls]\ncertificates = [{{ cert = {:?}, key = {:?} }}]\nclient_ca = {:?}\n",
                dir.path().join("a.pem").display().to_string(),
                dir.path().join("a.key").display().to_string(),
                dir.path().join(file).display().to_string(),
            ))
            .check();
        assert!(!status.success(), "{output}");
        assert!(output.contains("[gateway.tls] client_ca"), "{output}");
        assert!(output.contains(why), "{output}");
        assert!(output.contains(".toml:"), "{output}");
    }
}
