//! TLS of the TCP listeners (gRPC and the EC2 Query API) and of the links to peer regions.
//!
//! With no certificate configured the daemon keeps a CA of its own in `<data_dir>/tls`
//! (`ca.pem`, `ca.key`), made on first start and reused after, and a server certificate that
//! CA signed (`server.pem`, `server.key`), made again whenever the names it must carry
//! change (a new listen address, `tls.names`). Clients trust `ca.pem`; its SHA-256
//! fingerprint is printed at start so that it can be checked out of band.

use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tokio_rustls::rustls;

use crate::config::{Config, Listen};

/// A TLS set-up failure.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("cannot {0}")]
    Io(String, #[source] std::io::Error),
    /// A certificate or key could not be made.
    #[error("cannot make the {0}")]
    Generate(&'static str, #[source] rcgen::Error),
    /// A PEM file holds nothing usable.
    #[error("{0}")]
    Pem(String),
    /// rustls refused the certificate or key.
    #[error("the TLS certificate or key is not usable")]
    Rustls(#[from] rustls::Error),
}

/// What a TLS listener presents, and the CA clients should trust.
#[derive(Clone)]
pub struct ServerIdentity {
    /// The certificate chain, PEM.
    pub cert_pem: String,
    /// Its private key, PEM.
    pub key_pem: String,
    /// The CA file clients should trust, when known (the daemon's own or `tls.ca_file`).
    pub ca_file: Option<PathBuf>,
    /// SHA-256 fingerprint of that CA (or of the server certificate when no CA is known).
    pub fingerprint: String,
}

impl std::fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerIdentity")
            .field("ca_file", &self.ca_file)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// The folder of the daemon's own CA and certificate.
pub fn tls_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("tls")
}

/// Whether any listener speaks TLS.
pub fn needed(cfg: &Config) -> bool {
    cfg.listen
        .iter()
        .chain(&cfg.ec2_api_listen)
        .chain(&cfg.web_listen)
        .any(|l| matches!(l, Listen::Tcp(_)))
}

/// The identity the TLS listeners present: the configured certificate, or the daemon's
/// own (made or refreshed as needed).
pub fn server_identity(cfg: &Config) -> Result<ServerIdentity, TlsError> {
    if let Some((cert, key)) = &cfg.tls.cert_key {
        let cert_pem = read(cert)?;
        let key_pem = read(key)?;
        let leaf = first_cert(&cert_pem, cert)?;
        let fingerprint = match &cfg.tls.ca_file {
            Some(ca) => fingerprint(&first_cert(&read(ca)?, ca)?),
            None => fingerprint(&leaf),
        };
        return Ok(ServerIdentity {
            cert_pem,
            key_pem,
            ca_file: cfg.tls.ca_file.clone(),
            fingerprint,
        });
    }
    let dir = tls_dir(&cfg.data_dir);
    std::fs::create_dir_all(&dir)
        .map_err(|e| TlsError::Io(format!("create {}", dir.display()), e))?;
    let (ca_params, ca_key, ca_pem) = own_ca(&dir)?;
    let names = server_names(cfg);
    let (cert_pem, key_pem) = own_server_cert(&dir, &names, ca_params, ca_key)?;
    let ca_path = dir.join("ca.pem");
    Ok(ServerIdentity {
        cert_pem,
        key_pem,
        fingerprint: fingerprint(&first_cert(&ca_pem, &ca_path)?),
        ca_file: Some(ca_path),
    })
}

/// The CA certificates trusted for peer regions: `tls.ca_file`, else the daemon's own CA
/// when it has one (regions that share it), PEM.
pub fn peer_roots(cfg: &Config) -> Result<Vec<String>, TlsError> {
    if let Some(ca) = &cfg.tls.ca_file {
        return Ok(vec![read(ca)?]);
    }
    let own = tls_dir(&cfg.data_dir).join("ca.pem");
    if own.exists() {
        return Ok(vec![read(&own)?]);
    }
    Ok(Vec::new())
}

/// A rustls server configuration (HTTP/1.1) for the Query API.
pub fn http1_server_config(id: &ServerIdentity) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(id.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem(format!("the server certificate is not PEM: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(id.key_pem.as_bytes())
        .map_err(|e| TlsError::Pem(format!("the server key is not PEM: {e}")))?;
    let mut c = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)?;
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(c))
}

/// `AB:CD:...`: SHA-256 of a DER certificate, as `openssl x509 -fingerprint -sha256` shows it.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn read(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|e| TlsError::Io(format!("read {}", path.display()), e))
}

fn first_cert(pem: &str, path: &Path) -> Result<Vec<u8>, TlsError> {
    match CertificateDer::pem_slice_iter(pem.as_bytes()).next() {
        Some(Ok(c)) => Ok(c.to_vec()),
        _ => Err(TlsError::Pem(format!(
            "{} holds no PEM certificate",
            path.display()
        ))),
    }
}

/// Writes `data` to `path` through a temporary file and a rename, so that a crash leaves
/// the old file or the new one, never half of one.
fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), TlsError> {
    let tmp = path.with_extension("tmp");
    let err = |what: &str, e| TlsError::Io(format!("{what} {}", path.display()), e);
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| err("write", e))?;
    f.write_all(data).map_err(|e| err("write", e))?;
    f.sync_all().map_err(|e| err("write", e))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
        .map_err(|e| err("write", e))?;
    std::fs::rename(&tmp, path).map_err(|e| err("write", e))
}

/// The current year (UTC), for validity periods.
fn this_year() -> i32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    crate::time::rfc3339(secs)
        .get(..4)
        .and_then(|y| y.parse().ok())
        .unwrap_or(2025)
}

/// The CA's parameters. Its name derives from its key, so that the issuer of a server
/// certificate made after a restart matches the subject of the stored CA certificate.
fn ca_params(key: &KeyPair) -> CertificateParams {
    let id: String = Sha256::digest(key.public_key_raw())
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name
        .push(DnType::CommonName, format!("strato CA {id}"));
    p.distinguished_name
        .push(DnType::OrganizationName, "strato");
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let year = this_year();
    p.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    p.not_after = rcgen::date_time_ymd(year + 20, 1, 1);
    p
}

/// Loads the daemon's CA, making it on first start.
fn own_ca(dir: &Path) -> Result<(CertificateParams, KeyPair, String), TlsError> {
    let (pem_path, key_path) = (dir.join("ca.pem"), dir.join("ca.key"));
    if pem_path.exists() && key_path.exists() {
        let key = KeyPair::from_pem(&read(&key_path)?)
            .map_err(|_| TlsError::Pem(format!("{} is not a usable key", key_path.display())))?;
        return Ok((ca_params(&key), key, read(&pem_path)?));
    }
    let key = KeyPair::generate().map_err(|e| TlsError::Generate("CA key", e))?;
    let params = ca_params(&key);
    let cert = params
        .self_signed(&key)
        .map_err(|e| TlsError::Generate("CA certificate", e))?;
    // The key first: a certificate without its key would be unusable at the next start.
    write_atomic(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_atomic(&pem_path, cert.pem().as_bytes(), 0o644)?;
    // A new CA: any server certificate left from an older one is worthless.
    let _ = std::fs::remove_file(dir.join("server.names"));
    tracing::info!(dir = %dir.display(), "made a new TLS CA");
    Ok((params, key, cert.pem()))
}

/// Loads the server certificate, making it (signed by the CA) when it is missing or was
/// made for other names.
fn own_server_cert(
    dir: &Path,
    names: &[String],
    ca_params: CertificateParams,
    ca_key: KeyPair,
) -> Result<(String, String), TlsError> {
    let (pem_path, key_path, names_path) = (
        dir.join("server.pem"),
        dir.join("server.key"),
        dir.join("server.names"),
    );
    let wanted = names.join("\n");
    if pem_path.exists()
        && key_path.exists()
        && std::fs::read_to_string(&names_path).ok().as_deref() == Some(wanted.as_str())
    {
        return Ok((read(&pem_path)?, read(&key_path)?));
    }
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, "stratod");
    p.subject_alt_names = names
        .iter()
        .map(|n| match n.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => n
                .clone()
                .try_into()
                .map(SanType::DnsName)
                .map_err(|e| TlsError::Generate("server certificate", e)),
        })
        .collect::<Result<_, _>>()?;
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.use_authority_key_identifier_extension = true;
    let year = this_year();
    p.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    p.not_after = rcgen::date_time_ymd(year + 10, 1, 1);
    let key = KeyPair::generate().map_err(|e| TlsError::Generate("server key", e))?;
    let issuer = Issuer::new(ca_params, ca_key);
    let cert = p
        .signed_by(&key, &issuer)
        .map_err(|e| TlsError::Generate("server certificate", e))?;
    write_atomic(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_atomic(&pem_path, cert.pem().as_bytes(), 0o644)?;
    write_atomic(&names_path, wanted.as_bytes(), 0o644)?;
    tracing::info!(names = %names.join(","), "made a TLS server certificate");
    Ok((cert.pem(), key.serialize_pem()))
}

/// The names the daemon's own server certificate carries: loopback, the host name, every
/// TLS listener's address (the host's addresses for a wildcard one) and `tls.names`.
pub fn server_names(cfg: &Config) -> Vec<String> {
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    if let Some(h) = hostname() {
        names.push(h);
    }
    let mut wildcard = false;
    for l in cfg
        .listen
        .iter()
        .chain(&cfg.ec2_api_listen)
        .chain(&cfg.web_listen)
    {
        if let Listen::Tcp(a) = l {
            if a.ip().is_unspecified() {
                wildcard = true;
            } else {
                names.push(a.ip().to_string());
            }
        }
    }
    if wildcard {
        names.extend(host_addresses().iter().map(IpAddr::to_string));
    }
    names.extend(cfg.tls.names.iter().map(|n| n.trim().to_string()));
    let mut seen = std::collections::BTreeSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

fn hostname() -> Option<String> {
    let h = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let h = h.trim();
    // Only what a certificate's DNS name may hold.
    let ok = !h.is_empty()
        && h.len() <= 253
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    ok.then(|| h.to_string())
}

/// The host's interface addresses (this network namespace), link-local ones left out.
fn host_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list it allocated into `head`; the result is checked.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return out;
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, freed only below.
        let ifa = unsafe { &*cur };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr points to a sockaddr whose family field is always readable.
            let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
            if family == libc::AF_INET {
                // SAFETY: an AF_INET address is a sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                out.push(IpAddr::from(
                    u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
                ));
            } else if family == libc::AF_INET6 {
                // SAFETY: an AF_INET6 address is a sockaddr_in6.
                let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                if ip.segments()[0] & 0xffc0 != 0xfe80 {
                    out.push(IpAddr::V6(ip));
                }
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: `head` came from getifaddrs and is freed once, after the last use.
    unsafe { libc::freeifaddrs(head) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dir: &Path, listen: &[&str]) -> Config {
        let l: Vec<String> = listen.iter().map(|s| s.to_string()).collect();
        Config::build(None, Some(dir.to_path_buf()), &l, None).unwrap()
    }

    fn verify(id: &ServerIdentity, name: &str) -> Result<(), rustls::Error> {
        use rustls::client::danger::ServerCertVerifier;
        let ca = std::fs::read(id.ca_file.as_ref().unwrap()).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(&ca) {
            roots.add(c.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let v =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
        let chain: Vec<CertificateDer> = CertificateDer::pem_slice_iter(id.cert_pem.as_bytes())
            .map(|c| c.unwrap())
            .collect();
        let name = rustls_pki_types::ServerName::try_from(name.to_string()).unwrap();
        v.verify_server_cert(
            &chain[0],
            &chain[1..],
            &name,
            &[],
            rustls_pki_types::UnixTime::now(),
        )
        .map(|_| ())
    }

    #[test]
    fn makes_a_ca_once_and_a_server_certificate_per_name_set() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(dir.path(), &["tcp:127.0.0.1:7000"]);
        assert!(needed(&c));
        let a = server_identity(&c).unwrap();
        let ca_key = dir.path().join("tls/ca.key");
        let mode = std::fs::metadata(&ca_key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let mode = std::fs::metadata(dir.path().join("tls/server.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(a.fingerprint.len(), 32 * 3 - 1);
        verify(&a, "127.0.0.1").unwrap();
        verify(&a, "localhost").unwrap();
        assert!(
            verify(&a, "10.9.9.9").is_err(),
            "a name it was not made for"
        );

        // The next start reuses both.
        let b = server_identity(&c).unwrap();
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_eq!(a.cert_pem, b.cert_pem);

        // Another address: a new server certificate from the same CA.
        let c2 = cfg(dir.path(), &["tcp:10.9.9.9:7000"]);
        let n = server_identity(&c2).unwrap();
        assert_eq!(n.fingerprint, a.fingerprint);
        assert_ne!(n.cert_pem, a.cert_pem);
        verify(&n, "10.9.9.9").unwrap();
        assert_eq!(peer_roots(&c2).unwrap().len(), 1);
    }

    #[test]
    fn configured_certificates_are_used_as_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let made = server_identity(&cfg(dir.path(), &["tcp:127.0.0.1:1"])).unwrap();
        let other = tempfile::tempdir().unwrap();
        let (cert, key) = (other.path().join("c.pem"), other.path().join("k.pem"));
        std::fs::write(&cert, &made.cert_pem).unwrap();
        std::fs::write(&key, &made.key_pem).unwrap();
        let mut c = cfg(other.path(), &["tcp:127.0.0.1:1"]);
        c.tls.cert_key = Some((cert, key));
        c.tls.ca_file = made.ca_file.clone();
        let id = server_identity(&c).unwrap();
        assert_eq!(id.cert_pem, made.cert_pem);
        assert_eq!(id.fingerprint, made.fingerprint);
        assert!(!other.path().join("tls").exists(), "nothing made");
        http1_server_config(&id).unwrap();
    }

    #[test]
    fn fingerprints_look_like_openssls() {
        assert_eq!(
            fingerprint(b"abc"),
            "BA:78:16:BF:8F:01:CF:EA:41:41:40:DE:5D:AE:22:23:B0:03:61:A3:96:17:7A:9C:B4:10:FF:61:F2:00:15:AD"
        );
    }
}
