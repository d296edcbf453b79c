//! TLS, with rustls and ring's cryptography, both ways:
//!
//! - termination on the gateway listener (`[gateway.tls]`): the certificates and keys,
//!   read with the rest of a snapshot's sources (so a reload with a bad one is refused
//!   and those in force stay), one chosen per connection by the name the client asks
//!   for (SNI), TLS 1.2 and 1.3 only, and ALPN `h2` then `http/1.1`; optionally client
//!   certificates verified against `client_ca` (mTLS), the verified one described in
//!   an `X-Forwarded-Client-Cert` header ([`forwarded_client_cert`]);
//! - `https://` upstream endpoints: the roots they are verified against (a service's
//!   `ca_file`, else the system's).
//!
//! What runs over the TLS streams is the usual HTTP/1.1 or HTTP/2 (`server`,
//! `upstream`); this module only makes the `rustls` configs.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// One certificate chain and its key, as read from their files.
#[derive(Debug, Clone)]
pub struct CertificateFiles {
    /// `file:line` of its entry in the config, for errors.
    pub place: String,
    /// The chain's file (PEM: the server's certificate first, then intermediates).
    pub cert_path: PathBuf,
    /// The key's file (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_path: PathBuf,
    /// The chain file's bytes.
    pub cert_pem: Vec<u8>,
    /// The key file's bytes.
    pub key_pem: Vec<u8>,
}

/// The CA certificates client certificates are verified against, as read.
#[derive(Debug, Clone)]
pub struct ClientCaFile {
    /// `file:line` of `client_ca` in the config, for errors.
    pub place: String,
    /// The file.
    pub path: PathBuf,
    /// Its bytes (PEM).
    pub pem: Vec<u8>,
    /// A client without a certificate fails its handshake.
    pub required: bool,
}

/// Why a certificate or CA file could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{place}: [gateway.tls] {setting} {path}: {reason}")]
pub struct TlsError {
    /// `file:line` of its entry in the config.
    pub place: String,
    /// `certificate` or `client_ca`.
    pub setting: &'static str,
    /// The file at fault.
    pub path: String,
    /// What is wrong with it.
    pub reason: String,
}

/// The crypto provider: ring's (no C toolchain beyond what `ring` builds itself).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server config for `certificates` (the first is the default, for clients that
/// send no name or one no certificate covers), asking clients for a certificate
/// verified against `client_ca` when there is one.
pub fn server_config(
    certificates: &[CertificateFiles],
    client_ca: Option<&ClientCaFile>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let keys = certificates
        .iter()
        .map(|files| certified_key(files, &provider).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("ring's provider supports TLS 1.2 and 1.3");
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let fail = |reason: String| TlsError {
                place: ca.place.clone(),
                setting: "client_ca",
                path: ca.path.display().to_string(),
                reason,
            };
            let roots = ca_roots(&ca.pem).map_err(fail)?;
            let mut verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider);
            if !ca.required {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier.build().map_err(|e| fail(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(Arc::new(BySni { keys }));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Parses one chain and key and checks that they belong together and that the
/// certificate is one a client could verify a name against.
fn certified_key(
    files: &CertificateFiles,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let fail = |path: &PathBuf, reason: String| TlsError {
        place: files.place.clone(),
        setting: "certificate",
        path: path.display().to_string(),
        reason,
    };
    let chain = CertificateDer::pem_slice_iter(&files.cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(&files.cert_path, format!("not PEM certificates: {e}")))?;
    let Some(first) = chain.first() else {
        return Err(fail(
            &files.cert_path,
            "holds no certificate (expected PEM `BEGIN CERTIFICATE` blocks)".into(),
        ));
    };
    webpki::EndEntityCert::try_from(first)
        .map_err(|e| fail(&files.cert_path, format!("not a usable certificate: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(&files.key_pem).map_err(|e| {
        fail(
            &files.key_path,
            format!("no private key (expected PEM PKCS#8, PKCS#1 or SEC1): {e}"),
        )
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => fail(
            &files.key_path,
            format!(
                "is not the key of the certificate in {}",
                files.cert_path.display()
            ),
        ),
        other => fail(&files.key_path, format!("unusable key: {other}")),
    })
}

/// Chooses the first certificate valid for the client's SNI name, else the first.
#[derive(Debug)]
struct BySni {
    keys: Vec<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for BySni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let asked = hello
            .server_name()
            .and_then(|name| ServerName::try_from(name).ok());
        if let Some(name) = asked {
            let covering = self.keys.iter().find(|key| {
                key.end_entity_cert()
                    .ok()
                    .and_then(|der| webpki::EndEntityCert::try_from(der).ok())
                    .is_some_and(|cert| cert.verify_is_valid_for_subject_name(&name).is_ok())
            });
            if let Some(key) = covering {
                return Some(key.clone());
            }
        }
        self.keys.first().cloned()
    }
}

/// The request header describing a client's verified certificate; the gateway drops
/// any a client sends.
pub const X_FORWARDED_CLIENT_CERT: http::HeaderName =
    http::HeaderName::from_static("x-forwarded-client-cert");

/// The `X-Forwarded-Client-Cert` value for a client's verified certificate, as Envoy
/// writes it: `Hash=` (SHA-256 of the DER, hex), `Subject="…"` (RFC 4514), then a
/// `URI=` and `DNS=` for each such subject alternative name. `None` for a certificate
/// that does not parse (it verified, so that does not happen).
pub fn forwarded_client_cert(der: &CertificateDer<'_>) -> Option<http::HeaderValue> {
    use sha2::Digest;
    use x509_parser::extensions::GeneralName;
    use x509_parser::prelude::FromDer;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der).ok()?;
    let mut value = format!("Hash={}", hex::encode(sha2::Sha256::digest(der)));
    let subject = cert.subject().to_string();
    // A quoted string holds any visible character; `"` and `\` are escaped.
    if subject.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        let quoted = subject.replace('\\', "\\\\").replace('"', "\\\"");
        value.push_str(&format!(";Subject=\"{quoted}\""));
    }
    if let Ok(Some(names)) = cert.subject_alternative_name() {
        for name in &names.value.general_names {
            let (key, name) = match name {
                GeneralName::URI(uri) => ("URI", *uri),
                GeneralName::DNSName(dns) => ("DNS", *dns),
                _ => continue,
            };
            if name
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b';' && b != b',')
            {
                value.push_str(&format!(";{key}={name}"));
            }
        }
    }
    http::HeaderValue::from_str(&value).ok()
}

/// The client config for `https://` upstream endpoints verified against `roots` (the
/// connector adds ALPN `h2` and `http/1.1`).
pub fn upstream_config(roots: Arc<RootCertStore>) -> ClientConfig {
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring's provider supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// The CA certificates of a PEM file (a service's `ca_file`) as roots.
pub fn ca_roots(pem: &[u8]) -> Result<Arc<RootCertStore>, String> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not PEM certificates: {e}"))?;
    if certificates.is_empty() {
        return Err("holds no certificate (expected PEM `BEGIN CERTIFICATE` blocks)".into());
    }
    let mut roots = RootCertStore::empty();
    for certificate in certificates {
        roots
            .add(certificate)
            .map_err(|e| format!("not a usable CA certificate: {e}"))?;
    }
    Ok(Arc::new(roots))
}

/// The system's CA certificates (read once per process; what cannot be read is
/// logged, and an empty set makes every `https://` endpoint without a `ca_file` fail
/// its handshake, which the upstream errors then say).
pub fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            for error in &found.errors {
                tracing::warn!(%error, "reading the system's CA certificates");
            }
            let mut roots = RootCertStore::empty();
            let (added, ignored) = roots.add_parsable_certificates(found.certs);
            tracing::debug!(added, ignored, "the system's CA certificates");
            Arc::new(roots)
        })
        .clone()
}
