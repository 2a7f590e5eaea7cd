//! TLS for both doors, from one PEM certificate chain and key (`--tls-cert`, `--tls-key`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why the TLS files could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read TLS file {}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} holds no PEM certificate (expected `-----BEGIN CERTIFICATE-----` blocks)", path.display())]
    NoCertificate {
        path: PathBuf,
        #[source]
        source: Option<rustls::pki_types::pem::Error>,
    },
    #[error("{} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)", path.display())]
    NoKey {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("the key in {} does not fit the certificate in {}", key.display(), cert.display())]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
}

/// A certificate chain and its key, checked to work together.
#[derive(Clone)]
pub struct TlsFiles {
    /// PEM, as tonic takes them.
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    /// The HTTP door's rustls settings (HTTP/1.1 and HTTP/2 by ALPN).
    pub http: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsFiles(<key redacted>)")
    }
}

impl TlsFiles {
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                path: path.to_owned(),
                source,
            })
        };
        let cert_pem = read(cert)?;
        let key_pem = read(key)?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::NoCertificate {
                path: cert.to_owned(),
                source: Some(e),
            })?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate {
                path: cert.to_owned(),
                source: None,
            });
        }
        let private_key =
            PrivateKeyDer::from_pem_slice(&key_pem).map_err(|source| TlsError::NoKey {
                path: key.to_owned(),
                source,
            })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut http = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| b.with_no_client_auth().with_single_cert(chain, private_key))
            .map_err(|source| TlsError::Mismatch {
                cert: cert.to_owned(),
                key: key.to_owned(),
                source,
            })?;
        http.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsFiles {
            cert_pem,
            key_pem,
            http: Arc::new(http),
        })
    }
}
