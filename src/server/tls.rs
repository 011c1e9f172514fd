//! Certificates: generating a CA and serving certificate (rcgen), loading a PEM
//! pair, and a rustls resolver that serves the last good pair while the files
//! on disk are swapped.
use std::sync::{Arc, RwLock};

use anyhow::{anyhow, Context as _};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// A generated CA and a serving certificate signed by it, all PEM.
#[derive(Debug, Clone)]
pub struct Generated {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// The SANs of a Service: `NAME`, `NAME.NS`, `NAME.NS.svc`, `NAME.NS.svc.cluster.local`.
pub fn service_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_string(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

/// The SANs of the certificate `tiergate serve` makes for itself.
pub fn default_serve_names() -> Vec<String> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    names.extend(service_names("tiergate", "tiergate-system"));
    names
}

/// A new CA and a serving certificate for `names` (DNS names or IP addresses).
pub fn generate(names: &[String]) -> anyhow::Result<Generated> {
    let now = time::OffsetDateTime::now_utc();
    let ca_key = KeyPair::generate().context("generating the CA key")?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).context("CA parameters")?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "tiergate CA");
    dn.push(DnType::OrganizationName, "tiergate");
    ca.distinguished_name = dn;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_before = now - time::Duration::hours(1);
    ca.not_after = now + time::Duration::days(3650);
    let ca_cert = ca.self_signed(&ca_key).context("signing the CA")?;

    let key = KeyPair::generate().context("generating the serving key")?;
    let mut leaf = CertificateParams::new(names.to_vec()).context("serving certificate SANs")?;
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        names.first().cloned().unwrap_or_else(|| "tiergate".into()),
    );
    leaf.distinguished_name = dn;
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    leaf.not_before = now - time::Duration::hours(1);
    leaf.not_after = now + time::Duration::days(365);
    let issuer = Issuer::new(ca, &ca_key);
    let cert = leaf
        .signed_by(&key, &issuer)
        .context("signing the serving certificate")?;
    Ok(Generated {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A loaded serving pair and when its leaf expires (Unix seconds).
pub struct LoadedPair {
    pub key: Arc<CertifiedKey>,
    pub not_after: i64,
}

/// Parse and check a PEM certificate chain and private key: both present,
/// the key matches the leaf, the leaf parses as X.509.
pub fn load_pair(cert_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<LoadedPair> {
    let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<_, _>>()
        .context("reading the certificate PEM")?;
    let leaf = chain
        .first()
        .ok_or_else(|| anyhow!("no certificate in the certificate file"))?;
    let (_, x509) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| anyhow!("the certificate does not parse: {e}"))?;
    let not_after = x509.validity().not_after.timestamp();
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut &key_pem[..])
        .context("reading the key PEM")?
        .ok_or_else(|| anyhow!("no private key in the key file"))?;
    let provider = rustls::crypto::ring::default_provider();
    let certified = CertifiedKey::from_der(chain, key, &provider)
        .map_err(|e| anyhow!("certificate and key do not form a pair: {e}"))?;
    Ok(LoadedPair {
        key: Arc::new(certified),
        not_after,
    })
}

/// Serves the last good certificate; swapped atomically on reload.
#[derive(Debug)]
pub struct CertStore {
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertStore {
    pub fn new(key: Arc<CertifiedKey>) -> Self {
        CertStore {
            current: RwLock::new(key),
        }
    }
    pub fn set(&self, key: Arc<CertifiedKey>) {
        match self.current.write() {
            Ok(mut g) => *g = key,
            Err(poisoned) => *poisoned.into_inner() = key,
        }
    }
    pub fn get(&self) -> Arc<CertifiedKey> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

/// A rustls server config that asks `store` for its certificate.
pub fn server_config(store: Arc<CertStore>) -> anyhow::Result<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_cert_resolver(store);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_pairs_load_and_carry_the_sans() {
        let g = generate(&service_names("tiergate", "ns")).unwrap();
        let pair = load_pair(g.cert_pem.as_bytes(), g.key_pem.as_bytes()).unwrap();
        assert!(pair.not_after > 0);
        let der = rustls_pemfile::certs(&mut g.cert_pem.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        let (_, x) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        let san = x.subject_alternative_name().unwrap().unwrap();
        let text = format!("{:?}", san.value);
        for n in ["tiergate.ns.svc", "tiergate.ns.svc.cluster.local"] {
            assert!(text.contains(n), "{text}");
        }
    }

    #[test]
    fn mismatched_or_torn_pairs_are_errors() {
        let a = generate(&default_serve_names()).unwrap();
        let b = generate(&default_serve_names()).unwrap();
        assert!(load_pair(a.cert_pem.as_bytes(), b.key_pem.as_bytes()).is_err());
        let torn = &a.cert_pem[..a.cert_pem.len() / 2];
        assert!(load_pair(torn.as_bytes(), a.key_pem.as_bytes()).is_err());
        assert!(load_pair(b"", a.key_pem.as_bytes()).is_err());
        assert!(load_pair(a.cert_pem.as_bytes(), b"").is_err());
    }
}
