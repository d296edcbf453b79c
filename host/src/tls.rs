//! TLS, with rustls and ring's cryptography, both ways:
//!
//! - termination on the gateway listener (`[gateway.tls]`): the certificates and keys,
//!   read with the rest of a snapshot's sources (so a reload with a bad one is refused
//!   and those in force stay), one chosen per connection by the name the client asks
//!   for (SNI), TLS 1.2 and 1.3 only, and ALPN `h2` then `http/1.1`; optionally client
//!   certificates verified against `client_ca` (mTLS), the verified one described in
//!   an `X-Forwarded-Client-Cert` header ([`forwarded_client_cert`]);
//! - `https://` upstream endpoints: the roots they are verified against (a service's
//!   `ca_file`, else the system's) and the certificate the gateway shows those that
//!   ask for one (`client_cert`, `client_key`).
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
    /// Its config section, for errors: `gateway.tls`, or `services.NAME` for the
    /// certificate a service shows its endpoints.
    pub section: String,
    /// The settings naming the chain and the key, for errors: `certificate` for both
    /// on the listener, `client_cert` and `client_key` for a service.
    pub settings: [&'static str; 2],
    /// The chain's file (PEM: the certificate first, then intermediates).
    pub cert_path: PathBuf,
    /// The key's file (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_path: PathBuf,
    /// The chain file's bytes.
    pub cert_pem: Vec<u8>,
    /// The key file's bytes.
    pub key_pem: Vec<u8>,
}

impl CertificateFiles {
    /// Reads the chain at `cert_path` and the key at `key_path`; one that cannot be
    /// read is an error at `place`.
    pub fn read(
        place: String,
        section: String,
        settings: [&'static str; 2],
        cert_path: PathBuf,
        key_path: PathBuf,
    ) -> Result<Self, TlsError> {
        let mut files = Self {
            place,
            section,
            settings,
            cert_path,
            key_path,
            cert_pem: Vec::new(),
            key_pem: Vec::new(),
        };
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|e| files.error(path, format!("cannot read it: {e}")))
        };
        let (cert_pem, key_pem) = (read(&files.cert_path)?, read(&files.key_path)?);
        files.cert_pem = cert_pem;
        files.key_pem = key_pem;
        Ok(files)
    }

    /// The error at the setting naming `path` (the chain's or the key's), for `reason`.
    fn error(&self, path: &PathBuf, reason: String) -> TlsError {
        TlsError {
            place: self.place.clone(),
            section: self.section.clone(),
            setting: self.settings[usize::from(*path == self.key_path)],
            path: path.display().to_string(),
            reason,
        }
    }
}

/// A file of CA certificates (PEM), as read: the listener's `client_ca` or a
/// service's `ca_file`.
#[derive(Debug, Clone)]
pub struct CaFile {
    /// `file:line` of the setting in the config, for errors.
    pub place: String,
    /// Its config section: `gateway.tls` or `services.NAME`.
    pub section: String,
    /// The setting: `client_ca` or `ca_file`.
    pub setting: &'static str,
    /// The file.
    pub path: PathBuf,
    /// Its bytes (PEM).
    pub pem: Vec<u8>,
}

impl CaFile {
    /// Reads `path`, set by `setting` in `[section]` at `place`; an unreadable file is
    /// an error there.
    pub fn read(
        place: String,
        section: String,
        setting: &'static str,
        path: PathBuf,
    ) -> Result<Self, TlsError> {
        let mut file = Self {
            place,
            section,
            setting,
            path,
            pem: Vec::new(),
        };
        file.pem =
            std::fs::read(&file.path).map_err(|e| file.error(format!("cannot read it: {e}")))?;
        Ok(file)
    }

    /// The error at this setting, for `reason`.
    pub fn error(&self, reason: String) -> TlsError {
        TlsError {
            place: self.place.clone(),
            section: self.section.clone(),
            setting: self.setting,
            path: self.path.display().to_string(),
            reason,
        }
    }

    /// Its certificates as roots.
    fn roots(&self) -> Result<Arc<RootCertStore>, TlsError> {
        ca_roots(&self.pem).map_err(|reason| self.error(reason))
    }
}

/// The CA certificates client certificates are verified against, as read.
#[derive(Debug, Clone)]
pub struct ClientCaFile {
    /// `[gateway.tls] client_ca`.
    pub file: CaFile,
    /// A client without a certificate fails its handshake.
    pub required: bool,
}

/// What a service's `https://` endpoints are called with, as read: the CA file they
/// are verified against (else the system's roots) and the certificate the gateway
/// shows those that ask for one.
#[derive(Debug, Clone, Default)]
pub struct UpstreamTlsFiles {
    /// `ca_file`.
    pub ca: Option<CaFile>,
    /// `client_cert` and `client_key`.
    pub identity: Option<CertificateFiles>,
}

/// Why a certificate, key or CA file could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{place}: [{section}] {setting} {path}: {reason}")]
pub struct TlsError {
    /// `file:line` of its entry in the config.
    pub place: String,
    /// The config section: `gateway.tls` or `services.NAME`.
    pub section: String,
    /// The setting: `certificate`, `client_ca`, `ca_file`, `client_cert` or
    /// `client_key`.
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
            let mut verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                ca.file.roots()?,
                provider,
            );
            if !ca.required {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier.build().map_err(|e| ca.file.error(e.to_string()))?;
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
    let fail = |path: &PathBuf, reason: String| files.error(path, reason);
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

/// The client config for a service's `https://` endpoints: verified against its
/// `ca_file`, else the system's roots, showing its client certificate to endpoints
/// that ask for one (the connector adds ALPN).
pub fn upstream_config(files: &UpstreamTlsFiles) -> Result<ClientConfig, TlsError> {
    let provider = provider();
    let roots = match &files.ca {
        Some(ca) => ca.roots()?,
        None => system_roots(),
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring's provider supports the default TLS versions")
        .with_root_certificates(roots);
    Ok(match &files.identity {
        None => builder.with_no_client_auth(),
        Some(identity) => {
            let key = certified_key(identity, &provider)?;
            builder.with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(key)))
        }
    })
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
