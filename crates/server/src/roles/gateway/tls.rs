//! TLS to the MQTT broker (`--mqtt-config tls=true`, `ca_file=…`, `client_cert_file=…`, `client_key_file=…`).
//!
//! rustls with the *ring* provider, passed to rumqttc as a ready `ClientConfig`: rumqttc's own default
//! would pull aws-lc (a C build with cmake) and panics when the system's roots cannot be read; here every
//! failure is a typed error at start, naming the file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

/// Largest certificate or key file read, in bytes.
const MAX_PEM_BYTES: u64 = 1 << 20;

/// How the gateway verifies the broker, and proves itself if the broker asks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// The CA certificates (PEM) the broker's certificate must chain to; `None`: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// A client certificate (PEM) and its key, for brokers that require one.
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} is larger than {MAX_PEM_BYTES} bytes")]
    TooLarge { path: String },
    #[error("{path} holds no {what} in PEM form")]
    Empty { path: String, what: &'static str },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("no trusted roots: the system's could not be read ({0}); give ca_file=…")]
    NoRoots(String),
    #[error("client_cert_file and client_key_file go together")]
    HalfAPair,
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|source| TlsError::Read {
        path: shown.clone(),
        source,
    })?;
    if meta.len() > MAX_PEM_BYTES {
        return Err(TlsError::TooLarge { path: shown });
    }
    std::fs::read(path).map_err(|source| TlsError::Read { path: shown, source })
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Invalid {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            path: path.display().to_string(),
            what: "certificate",
        });
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| TlsError::Invalid {
            path: path.display().to_string(),
            message: e.to_string(),
        })?
        .ok_or_else(|| TlsError::Empty {
            path: path.display().to_string(),
            what: "private key",
        })
}

/// The rustls configuration for `options`, every file read and checked now.
pub fn client_config(options: &TlsOptions) -> Result<Arc<ClientConfig>, TlsError> {
    if options.client_cert_file.is_some() != options.client_key_file.is_some() {
        return Err(TlsError::HalfAPair);
    }
    let mut roots = RootCertStore::empty();
    match &options.ca_file {
        Some(path) => {
            for cert in certificates(path)? {
                roots.add(cert).map_err(|e| TlsError::Invalid {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            // Unreadable or malformed system certificates are skipped, as browsers do; none at all is an error.
            let (added, _ignored) = roots.add_parsable_certificates(native.certs);
            if added == 0 {
                let why = native
                    .errors
                    .first()
                    .map_or("none found".to_owned(), ToString::to_string);
                return Err(TlsError::NoRoots(why));
            }
        }
    }
    // Deprecated in rustls 0.23.48 for lacking post-quantum key exchange, which only the aws-lc provider
    // has (a cmake build); classical X25519/P-256 is what MQTT brokers offer today.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let config = match (&options.client_cert_file, &options.client_key_file) {
        (Some(cert), Some(key)) => builder.with_client_auth_cert(certificates(cert)?, private_key(key)?)?,
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}
