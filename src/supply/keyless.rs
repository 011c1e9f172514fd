//! Keyless signatures: cosign signs with a short-lived key whose
//! certificate (from a Fulcio, or from your own PKI with `cosign sign
//! --certificate`) names the signer: an OIDC issuer (Fulcio's extension
//! 1.3.6.1.4.1.57264.1.8, or the older .1.1) and a subject (the e-mail or URI
//! of the subject alternative name). A signature counts when its
//! certificate chains to the config's trust root for code signing, names a
//! trusted identity, and its key made the signature.
//!
//! The chain is checked at the time of verification. Without a
//! transparency log there is no trusted record of when a signature was
//! made, and a certificate's validity cannot be stretched back to it: a
//! Fulcio certificate (ten minutes) therefore verifies only while it is
//! valid, and keyless verification is for CAs whose signing certificates
//! outlive the images they sign (an air-gapped cluster's own PKI). Rekor
//! bundles are not read.
use regex::Regex;
use rustls::pki_types::{CertificateDer, TrustAnchor, UnixTime};
use sigstore::crypto::CosignVerificationKey;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::config::Identity;

/// The layer annotations cosign writes a keyless signature into.
const CERTIFICATE: &str = "dev.sigstore.cosign/certificate";
const CHAIN: &str = "dev.sigstore.cosign/chain";

/// id-kp-codeSigning (1.3.6.1.5.5.7.3.3), DER contents.
const CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];
const ISSUER_V2: &str = "1.3.6.1.4.1.57264.1.8";
const ISSUER_V1: &str = "1.3.6.1.4.1.57264.1.1";

/// `re` as a pattern the whole subject must match.
pub fn anchored(re: &str) -> Result<Regex, String> {
    Regex::new(&format!("^(?:{re})$")).map_err(|e| e.to_string())
}

enum Subject {
    Exact(String),
    Pattern(Regex),
}

impl Subject {
    fn matches(&self, s: &str) -> bool {
        match self {
            Subject::Exact(e) => e == s,
            Subject::Pattern(p) => p.is_match(s),
        }
    }
}

/// The trusted roots and identities of one `images.verify` rule.
pub struct Signers {
    roots: Vec<TrustAnchor<'static>>,
    identities: Vec<(String, Subject)>,
}

/// The certificates of a PEM text, in order.
fn certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not PEM certificates: {e}"))
}

impl Signers {
    /// From the trust root's PEM and the rule's identities (validated with
    /// the config).
    pub fn new(trust_root: &[u8], identities: &[Identity]) -> Result<Signers, String> {
        let ders = certs(trust_root)?;
        if ders.is_empty() {
            return Err("no CA certificate in it".into());
        }
        let mut roots = Vec::new();
        for (i, der) in ders.iter().enumerate() {
            let anchor = webpki::anchor_from_trusted_cert(der)
                .map_err(|e| format!("certificate {i} cannot be a trust anchor: {e}"))?;
            roots.push(anchor.to_owned());
        }
        let mut ids = Vec::new();
        for id in identities {
            let subject = match (&id.subject, &id.subject_reg_exp) {
                (Some(s), _) => Subject::Exact(s.clone()),
                (None, Some(re)) => Subject::Pattern(anchored(re)?),
                (None, None) => return Err("an identity without a subject".into()),
            };
            ids.push((id.issuer.clone(), subject));
        }
        Ok(Signers {
            roots,
            identities: ids,
        })
    }

    /// The key of a layer's keyless signature, from the certificate (and
    /// chain) in its annotations, checked now; `None` for a layer without a
    /// certificate.
    pub fn key_of_layer(
        &self,
        annotations: &std::collections::BTreeMap<String, String>,
    ) -> Option<Result<CosignVerificationKey, String>> {
        let cert = annotations.get(CERTIFICATE)?;
        let chain = annotations.get(CHAIN).map(String::as_str);
        Some(self.key_of(cert, chain, UnixTime::now()))
    }

    /// The public key of `cert_pem` (with the intermediates of
    /// `chain_pem`) when it chains to the trust root for code signing at
    /// `now` and names a trusted identity; why not otherwise.
    pub fn key_of(
        &self,
        cert_pem: &str,
        chain_pem: Option<&str>,
        now: UnixTime,
    ) -> Result<CosignVerificationKey, String> {
        let leaf = certs(cert_pem.as_bytes())?
            .into_iter()
            .next()
            .ok_or("the signature's certificate annotation holds no certificate")?;
        let intermediates = match chain_pem {
            Some(c) => certs(c.as_bytes())?,
            None => Vec::new(),
        };
        let ee = webpki::EndEntityCert::try_from(&leaf)
            .map_err(|e| format!("the signing certificate does not parse: {e}"))?;
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &self.roots,
            &intermediates,
            now,
            // Every certificate of the path that states usages must allow
            // code signing; the signing certificate must state it (below).
            webpki::KeyUsage::required_if_present(CODE_SIGNING),
            None,
            None,
        )
        .map_err(|e| {
            format!("the signing certificate does not chain to the trust root for code signing now ({e})")
        })?;
        let (_, cert) = X509Certificate::from_der(&leaf)
            .map_err(|e| format!("the signing certificate does not parse: {e}"))?;
        let code_signing = matches!(
            cert.extended_key_usage(),
            Ok(Some(eku)) if eku.value.code_signing
        );
        if !code_signing {
            return Err("the signing certificate is not for code signing".into());
        }
        let issuer = issuer_of(&cert).ok_or("the signing certificate names no OIDC issuer")?;
        let subjects = subjects_of(&cert);
        if subjects.is_empty() {
            return Err("the signing certificate names no e-mail or URI subject".into());
        }
        let trusted = self
            .identities
            .iter()
            .any(|(iss, subject)| *iss == issuer && subjects.iter().any(|s| subject.matches(s)));
        if !trusted {
            return Err(format!(
                "signed by {} from {issuer}, not a trusted identity",
                subjects.join(", ")
            ));
        }
        CosignVerificationKey::try_from_der(cert.public_key().raw)
            .map_err(|e| format!("the signing certificate's key: {e}"))
    }
}

/// Fulcio's OIDC issuer extension: the DER UTF8String of .1.8, else the
/// raw text of the older .1.1.
fn issuer_of(cert: &X509Certificate<'_>) -> Option<String> {
    let ext = |oid: &str| {
        cert.extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == oid)
            .map(|e| e.value)
    };
    if let Some(v) = ext(ISSUER_V2) {
        let (_, obj) = x509_parser::der_parser::der::parse_der_utf8string(v).ok()?;
        return obj.as_str().ok().map(str::to_string);
    }
    ext(ISSUER_V1).and_then(|v| std::str::from_utf8(v).ok().map(str::to_string))
}

/// The e-mails and URIs of the subject alternative name.
fn subjects_of(cert: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::RFC822Name(s) | GeneralName::URI(s) => Some(s.to_string()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
        ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, SanType, SigningKey,
    };

    /// A test PKI: a root CA, an intermediate, and a signing certificate
    /// for `subject` from `issuer` (Fulcio's extension), valid for a day
    /// from `not_before_days_ago` days ago.
    pub struct Pki {
        pub root_pem: String,
        pub chain_pem: String,
        pub leaf_pem: String,
        pub leaf_key: KeyPair,
    }

    fn utf8string(s: &str) -> Vec<u8> {
        let mut v = vec![0x0c, s.len() as u8];
        v.extend_from_slice(s.as_bytes());
        v
    }

    fn named(cn: &str) -> DistinguishedName {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        dn
    }

    pub fn pki(subject: &str, issuer: &str, code_signing: bool, days_ago: i64) -> Pki {
        let root_key = KeyPair::generate().unwrap();
        let mut root = CertificateParams::new(Vec::<String>::new()).unwrap();
        root.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        root.distinguished_name = named("tiergate test root");
        let root_cert = root.self_signed(&root_key).unwrap();
        let root_issuer = Issuer::new(root, root_key);
        let mid_key = KeyPair::generate().unwrap();
        let mut mid = CertificateParams::new(Vec::<String>::new()).unwrap();
        mid.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        mid.distinguished_name = named("tiergate test intermediate");
        let mid_cert = mid.signed_by(&mid_key, &root_issuer).unwrap();
        let mid_issuer = Issuer::new(mid, mid_key);
        let leaf_key = KeyPair::generate().unwrap();
        let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
        leaf.distinguished_name = DistinguishedName::new();
        leaf.subject_alt_names = vec![if subject.contains('@') && !subject.contains("://") {
            SanType::Rfc822Name(subject.try_into().unwrap())
        } else {
            SanType::URI(subject.try_into().unwrap())
        }];
        if code_signing {
            leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        }
        leaf.custom_extensions = vec![CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 4, 1, 57264, 1, 8],
            utf8string(issuer),
        )];
        let start = time::OffsetDateTime::now_utc() - time::Duration::days(days_ago);
        leaf.not_before = start;
        leaf.not_after = start + time::Duration::days(1);
        let leaf_cert = leaf.signed_by(&leaf_key, &mid_issuer).unwrap();
        Pki {
            root_pem: root_cert.pem(),
            chain_pem: mid_cert.pem(),
            leaf_pem: leaf_cert.pem(),
            leaf_key,
        }
    }

    fn identity(issuer: &str, subject: Option<&str>, re: Option<&str>) -> Identity {
        Identity {
            issuer: issuer.into(),
            subject: subject.map(Into::into),
            subject_reg_exp: re.map(Into::into),
        }
    }

    const ISSUER: &str = "https://oidc.example";
    const SUBJECT: &str = "https://ci.example/acme/app/release@refs/heads/main";

    fn now() -> UnixTime {
        UnixTime::now()
    }

    #[test]
    fn a_certificate_of_a_trusted_identity_gives_its_key() {
        let p = pki(SUBJECT, ISSUER, true, 0);
        let exact = Signers::new(
            p.root_pem.as_bytes(),
            &[identity(ISSUER, Some(SUBJECT), None)],
        )
        .unwrap();
        let key = exact
            .key_of(&p.leaf_pem, Some(&p.chain_pem), now())
            .unwrap();
        // The key is the certificate's: it verifies what the leaf key signs.
        let payload = b"payload";
        let sig = p.leaf_key.sign(payload);
        assert!(key
            .verify_signature(sigstore::crypto::Signature::Raw(&sig.unwrap()), payload)
            .is_ok());
        let pattern = Signers::new(
            p.root_pem.as_bytes(),
            &[identity(ISSUER, None, Some("https://ci\\.example/acme/.*"))],
        )
        .unwrap();
        assert!(pattern
            .key_of(&p.leaf_pem, Some(&p.chain_pem), now())
            .is_ok());
    }

    #[test]
    fn other_identities_roots_usages_and_times_are_refused() {
        let p = pki(SUBJECT, ISSUER, true, 0);
        let signers = |ids: &[Identity]| Signers::new(p.root_pem.as_bytes(), ids).unwrap();
        let ok = [identity(ISSUER, Some(SUBJECT), None)];
        // Another subject, another issuer, a pattern that matches a part only.
        for ids in [
            [identity(ISSUER, Some("https://ci.example/other"), None)],
            [identity("https://other.example", Some(SUBJECT), None)],
            [identity(ISSUER, None, Some("https://ci\\.example/acme"))],
        ] {
            let e = signers(&ids)
                .key_of(&p.leaf_pem, Some(&p.chain_pem), now())
                .unwrap_err();
            assert!(e.contains("not a trusted identity"), "{e}");
            assert!(e.contains(SUBJECT) && e.contains(ISSUER), "{e}");
        }
        // Without the intermediate: no chain.
        let e = signers(&ok).key_of(&p.leaf_pem, None, now()).unwrap_err();
        assert!(e.contains("does not chain"), "{e}");
        // Why `leaf`'s certificate is refused under `root`.
        let refusal = |root: &Pki, leaf: &Pki| {
            Signers::new(root.root_pem.as_bytes(), &ok)
                .unwrap()
                .key_of(&leaf.leaf_pem, Some(&leaf.chain_pem), now())
                .unwrap_err()
        };
        // Another PKI's root.
        let e = refusal(&pki(SUBJECT, ISSUER, true, 0), &p);
        assert!(e.contains("does not chain"), "{e}");
        // Not for code signing.
        let tls = pki(SUBJECT, ISSUER, false, 0);
        let e = refusal(&tls, &tls);
        assert!(e.contains("not for code signing"), "{e}");
        // Expired (valid for a day, two days ago).
        let old = pki(SUBJECT, ISSUER, true, 2);
        let e = refusal(&old, &old);
        assert!(e.contains("does not chain"), "{e}");
    }

    #[test]
    fn a_bad_trust_root_is_refused() {
        let ok = [identity(ISSUER, Some(SUBJECT), None)];
        assert!(Signers::new(b"", &ok).is_err());
        assert!(Signers::new(
            b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n",
            &ok
        )
        .is_err());
        assert!(anchored("(").is_err());
    }
}
