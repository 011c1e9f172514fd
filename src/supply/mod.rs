//! Supply chain at admission: image signatures made by `cosign`, SLSA
//! provenance attached with `cosign attest`, and the digest an image was
//! verified at (for pinning).
//!
//! [`Verifier::verify`] answers for one image under one [`VerifyRule`] of
//! the config: it resolves a tag to its digest (a short-lived tag cache),
//! then checks, once per digest and rule, that a signature by a trusted key
//! or keyless signer ([`keyless`]) covers that digest and, when the rule
//! asks for provenance, that an in-toto attestation of predicate
//! `https://slsa.dev/provenance/v1`, signed the same way, names that digest
//! as its subject and an allowed builder. Cosign's objects (the
//! `sha256-<hex>.sig` and `.att` tags) are read through one `oci-client`
//! client, both at once; the `sigstore` crate parses cosign's payloads and
//! keys and checks the signatures. A registry error at any step is an
//! error, and only a missing object (`MANIFEST_UNKNOWN`) means "not signed".
//! Cosign's newer bundle format (OCI referrers, cosign 3's default) carries
//! a transparency-log entry that needs Rekor's keys, which this does not
//! read: sign with `--new-bundle-format=false` (with `--tlog-upload=false`
//! where there is no Rekor).
//!
//! Cheap when repeated, bounded when cold:
//! - outcomes are cached by digest and rule, positive and negative entries
//!   with their own TTLs, bounded in size ([`moka`]);
//! - concurrent callers for the same key wait for one verification (the
//!   cache's own single flight), which runs in a task of its own, so a
//!   caller that gives up at its time budget still leaves the result cached
//!   for the next;
//! - a registry error is an error, never "unsigned", and is not cached.
pub mod config;
mod credentials;
mod dsse;
mod facts;
mod keyless;
mod metrics;

pub use facts::{facts_from, image_facts, images_of, verify_all, Verdicts};
pub use metrics::Metrics;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;
use oci_client::Reference;
use sigstore::cosign::payload::SimpleSigning;
use sigstore::crypto::{CosignVerificationKey, Signature};

pub use config::{ImagesConfig, OnTimeout, VerifyRule};

/// What verification found for one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Signed (and, where asked, with provenance) at this digest.
    Verified { digest: String },
    /// Checked, and refused: why.
    Refused { digest: String, reason: String },
}

/// Why an image could not be checked (not a verdict on the image).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("{0:?} is not an image reference: {1}")]
    Reference(String, String),
    #[error("the registry for {image}: {reason}")]
    Registry { image: String, reason: String },
    #[error("a key of the config is not a PEM public key: {0}")]
    Key(String),
    #[error("verification of {0} did not finish within its time budget")]
    Timeout(String),
    #[error("images.credentialsFile: {0}")]
    Credentials(String),
    #[error("images.verify[{0}].trustRoot: {1}")]
    TrustRoot(usize, String),
}

/// Counts, for the metrics and the tests.
#[derive(Debug, Default)]
pub struct Counters {
    /// Verifications that ran (cache misses that reached the registry).
    pub verifications: AtomicU64,
    /// Answers from the cache (including waits on a running verification).
    pub hits: AtomicU64,
    /// Tag lookups that reached the registry.
    pub tag_lookups: AtomicU64,
}

/// Checks images against the config's rules; share it (it is cheap to
/// clone).
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: ImagesConfig,
    /// Parsed once: the keys each rule trusts to sign its provenance
    /// (signature keys are checked at start and given to sigstore as PEM).
    provenance_keys: Vec<Vec<CosignVerificationKey>>,
    /// Parsed once: the keys each rule trusts to sign the image.
    signature_keys: Vec<Vec<CosignVerificationKey>>,
    /// Keyless: each rule's trust root and identities, when it has some.
    signers: Vec<Option<keyless::Signers>>,
    /// One client (one connection pool) for every registry call.
    oci: oci_client::Client,
    /// Per registry host, from `images.credentialsFile`; anonymous
    /// elsewhere. Replaced when the file changes (a rotated Secret), with
    /// the bytes last tried, so a bad file is reported once.
    credentials: std::sync::RwLock<CredentialsState>,
    outcomes: Cache<(String, usize), Outcome>,
    tags: Cache<String, String>,
    counters: Counters,
    metrics: Metrics,
}

struct CredentialsState {
    current: Arc<credentials::Credentials>,
    tried: Option<Vec<u8>>,
}

/// The bytes of `images.credentialsFile`.
fn read_credentials(path: &str) -> Result<Vec<u8>, VerifyError> {
    std::fs::read(path).map_err(|e| VerifyError::Credentials(format!("cannot read {path}: {e}")))
}

fn parse_credentials(path: &str, bytes: &[u8]) -> Result<credentials::Credentials, VerifyError> {
    credentials::Credentials::parse(bytes)
        .map_err(|e| VerifyError::Credentials(format!("{path}: {e}")))
}

fn parse_keys(pems: &[String]) -> Result<Vec<CosignVerificationKey>, VerifyError> {
    pems.iter()
        .map(|p| {
            CosignVerificationKey::try_from_pem(p.as_bytes())
                .map_err(|e| VerifyError::Key(e.to_string()))
        })
        .collect()
}

/// Entries of each kind expire after their own TTL.
struct Ttl {
    positive: Duration,
    negative: Duration,
}

impl moka::Expiry<(String, usize), Outcome> for Ttl {
    fn expire_after_create(
        &self,
        _key: &(String, usize),
        value: &Outcome,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(match value {
            Outcome::Verified { .. } => self.positive,
            Outcome::Refused { .. } => self.negative,
        })
    }
}

impl Verifier {
    /// A verifier for this config (its keys parsed, its registry CA read),
    /// counting into metrics of its own.
    pub fn new(cfg: ImagesConfig) -> Result<Verifier, VerifyError> {
        Verifier::with_metrics(cfg, Metrics::default())
    }

    /// A verifier counting into `metrics` (the server's, kept across
    /// reloads).
    pub fn with_metrics(cfg: ImagesConfig, metrics: Metrics) -> Result<Verifier, VerifyError> {
        crate::install_crypto_provider();
        // oci-client compiles its reference grammar (a large regex, about
        // 50 ms) on first use: pay it here, at load, not in a request.
        let _ = "tiergate.invalid/warm-up:1".parse::<Reference>();
        let (credentials, tried) = match &cfg.credentials_file {
            Some(path) => {
                let bytes = read_credentials(path)?;
                (parse_credentials(path, &bytes)?, Some(bytes))
            }
            None => (credentials::Credentials::default(), None),
        };
        let mut provenance_keys = Vec::new();
        let mut signature_keys = Vec::new();
        let mut signers = Vec::new();
        for (i, rule) in cfg.verify.iter().enumerate() {
            signers.push(match (&rule.trust_root, rule.identities.is_empty()) {
                (Some(path), false) => {
                    let pem = std::fs::read(path).map_err(|e| {
                        VerifyError::TrustRoot(i, format!("cannot read {path}: {e}"))
                    })?;
                    Some(
                        keyless::Signers::new(&pem, &rule.identities)
                            .map_err(|e| VerifyError::TrustRoot(i, format!("{path}: {e}")))?,
                    )
                }
                _ => None,
            });
            // A key that does not parse is refused here, not at admission.
            let sig = parse_keys(&rule.keys)?;
            provenance_keys.push(match &rule.provenance {
                Some(p) if !p.keys.is_empty() => parse_keys(&p.keys)?,
                _ => sig.clone(),
            });
            signature_keys.push(sig);
        }
        let roots: Vec<Vec<u8>> = cfg
            .registry_ca
            .iter()
            .map(|p| p.as_bytes().to_vec())
            .collect();
        let oci = oci_client::Client::new(oci_client::client::ClientConfig {
            protocol: oci_client::client::ClientProtocol::Https,
            extra_root_certificates: roots
                .iter()
                .map(|data| oci_client::client::Certificate {
                    encoding: oci_client::client::CertificateEncoding::Pem,
                    data: data.clone(),
                })
                .collect(),
            read_timeout: Some(cfg.budget()),
            connect_timeout: Some(cfg.budget()),
            ..Default::default()
        });
        let outcomes = Cache::builder()
            .max_capacity(cfg.cache.max_entries)
            .expire_after(Ttl {
                positive: cfg.cache.positive_ttl(),
                negative: cfg.cache.negative_ttl(),
            })
            .build();
        let tags = Cache::builder()
            .max_capacity(cfg.cache.max_entries)
            .time_to_live(cfg.cache.tag_ttl())
            .build();
        Ok(Verifier {
            inner: Arc::new(Inner {
                cfg,
                provenance_keys,
                signature_keys,
                signers,
                oci,
                credentials: std::sync::RwLock::new(CredentialsState {
                    current: Arc::new(credentials),
                    tried,
                }),
                outcomes,
                tags,
                counters: Counters::default(),
                metrics,
            }),
        })
    }

    pub fn config(&self) -> &ImagesConfig {
        &self.inner.cfg
    }

    pub fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    /// The registry credentials now.
    fn credentials(&self) -> Arc<credentials::Credentials> {
        match self.inner.credentials.read() {
            Ok(s) => s.current.clone(),
            Err(poisoned) => poisoned.into_inner().current.clone(),
        }
    }

    /// Read `images.credentialsFile` again (a rotated Secret): `Ok(true)`
    /// when new credentials are in use, `Ok(false)` when the file is as last
    /// tried (or there is none), an error once per bad content (the last
    /// good credentials stay). Verdicts stay cached: they depend on the
    /// image, not on who read it; a registry error was never cached.
    pub fn reload_credentials(&self) -> Result<bool, VerifyError> {
        let Some(path) = &self.inner.cfg.credentials_file else {
            return Ok(false);
        };
        let read = read_credentials(path);
        let mut state = self.credentials_state();
        // A file gone is "tried" as empty: reported once per disappearance.
        let bytes = read.as_ref().map_or(&[][..], Vec::as_slice);
        if state.tried.as_deref() == Some(bytes) {
            return read.map(|_| false);
        }
        state.tried = Some(bytes.to_vec());
        let parsed = read.and_then(|b| parse_credentials(path, &b));
        self.inner.metrics.credentials_reload(parsed.is_ok());
        state.current = Arc::new(parsed?);
        Ok(true)
    }

    fn credentials_state(&self) -> std::sync::RwLockWriteGuard<'_, CredentialsState> {
        match self.inner.credentials.write() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Put an answer in the caches as a verification would have (the tag's
    /// digest, and the outcome for that digest and rule): for benchmarks of
    /// the cached path, which run with no registry.
    #[doc(hidden)]
    pub async fn prime(&self, image: &str, rule: usize, outcome: Outcome) {
        let digest = match &outcome {
            Outcome::Verified { digest } | Outcome::Refused { digest, .. } => digest.clone(),
        };
        if let Ok(reference) = image.parse::<Reference>() {
            if reference.digest().is_none() {
                self.inner
                    .tags
                    .insert(reference.whole(), digest.clone())
                    .await;
            }
        }
        self.inner.outcomes.insert((digest, rule), outcome).await;
    }

    /// The rule that applies to `image` in a namespace of this tier, if any.
    pub fn rule_for(&self, image: &str, tier: u8) -> Option<usize> {
        self.inner.cfg.rule_for(image, tier)
    }

    /// Verify `image` under rule `rule`, within the config's time budget.
    pub async fn verify(&self, image: &str, rule: usize) -> Result<Outcome, VerifyError> {
        // Cached: answered here, with no task and no timer.
        if let Ok(reference) = image.parse::<Reference>() {
            let digest = match reference.digest() {
                Some(d) => Some(d.to_string()),
                None => self.inner.tags.get(&reference.whole()).await,
            };
            if let Some(d) = digest {
                if let Some(o) = self.inner.outcomes.get(&(d, rule)).await {
                    self.inner.counters.hits.fetch_add(1, Ordering::Relaxed);
                    self.inner.metrics.cache("hit");
                    self.inner.metrics.verified(&Ok(o.clone()));
                    return Ok(o);
                }
            }
        }
        let budget = self.inner.cfg.budget();
        let this = self.clone();
        let image_owned = image.to_string();
        // In a task of its own: the result is cached even when this caller
        // stops waiting at its budget.
        let task = tokio::spawn(async move { this.verify_now(&image_owned, rule).await });
        let r = match tokio::time::timeout(budget, task).await {
            Ok(Ok(r)) => r,
            Ok(Err(join)) => Err(VerifyError::Registry {
                image: image.to_string(),
                reason: format!("the verification task failed: {join}"),
            }),
            Err(_) => Err(VerifyError::Timeout(image.to_string())),
        };
        self.inner.metrics.verified(&r);
        r
    }

    async fn verify_now(&self, image: &str, rule: usize) -> Result<Outcome, VerifyError> {
        let reference: Reference = image.parse().map_err(|e: oci_client::ParseError| {
            VerifyError::Reference(image.into(), e.to_string())
        })?;
        let digest = self.digest_of(&reference).await?;
        let inner = &self.inner;
        let key = (digest.clone(), rule);
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ran_in = ran.clone();
        let this = self.clone();
        let outcome = inner
            .outcomes
            .try_get_with(key, async move {
                ran_in.store(true, Ordering::SeqCst);
                this.inner
                    .counters
                    .verifications
                    .fetch_add(1, Ordering::Relaxed);
                let t0 = Instant::now();
                let r = this.check(&reference, &digest, rule).await;
                this.inner.metrics.registry("verify", t0.elapsed());
                r
            })
            .await
            .map_err(|e: Arc<VerifyError>| (*e).clone())?;
        if ran.load(Ordering::SeqCst) {
            inner.metrics.cache("miss");
        } else {
            // Another caller's verification, waited for (or finished just
            // before this one asked).
            inner.counters.hits.fetch_add(1, Ordering::Relaxed);
            inner.metrics.cache("wait");
        }
        Ok(outcome)
    }

    /// The digest `reference` names (its own, or its tag's now).
    async fn digest_of(&self, reference: &Reference) -> Result<String, VerifyError> {
        if let Some(d) = reference.digest() {
            return Ok(d.to_string());
        }
        let whole = reference.whole();
        let this = self.clone();
        let r = reference.clone();
        self.inner
            .tags
            .try_get_with(whole.clone(), async move {
                this.inner
                    .counters
                    .tag_lookups
                    .fetch_add(1, Ordering::Relaxed);
                let t0 = Instant::now();
                let auth = this.credentials().oci(r.resolve_registry());
                let d = this
                    .inner
                    .oci
                    .fetch_manifest_digest(&r, &auth)
                    .await
                    .map_err(|e| VerifyError::Registry {
                        image: r.whole(),
                        reason: e.to_string(),
                    });
                this.inner.metrics.registry("tag", t0.elapsed());
                d
            })
            .await
            .map_err(|e: Arc<VerifyError>| (*e).clone())
    }

    /// The checks themselves, for one digest.
    async fn check(
        &self,
        reference: &Reference,
        digest: &str,
        rule: usize,
    ) -> Result<Outcome, VerifyError> {
        let inner = &self.inner;
        let prov_keys = &inner.provenance_keys[rule];
        let cfg_rule = &inner.cfg.verify[rule];
        let pinned = format!(
            "{}/{}@{digest}",
            reference.resolve_registry(),
            reference.repository()
        );
        let refused = |reason: String| {
            Ok(Outcome::Refused {
                digest: digest.to_string(),
                reason,
            })
        };
        let registry_err = |e: String| VerifyError::Registry {
            image: pinned.clone(),
            reason: e,
        };
        // Cosign's signature object for this digest and, when the rule asks
        // for provenance, its attestations: fetched together.
        let sig_at = self.attached(reference, digest, "sig")?;
        let att_at = match cfg_rule.provenance {
            Some(_) => Some(self.attached(reference, digest, "att")?),
            None => None,
        };
        let (signatures, attestations) =
            futures::join!(self.layers(&sig_at, SIMPLE_SIGNING), async {
                match &att_at {
                    Some(at) => Some(self.layers(at, dsse::MEDIA_TYPE).await),
                    None => None,
                }
            });
        let signatures = match signatures {
            Ok(Some(l)) if !l.is_empty() => l,
            Ok(_) => return refused(NO_SIGNATURE.into()),
            Err(e) => return Err(registry_err(e)),
        };
        if let Err(why) = signed(
            &signatures,
            &inner.signature_keys[rule],
            inner.signers[rule].as_ref(),
            digest,
        ) {
            return refused(why);
        }
        if let (Some(p), Some(attestations)) = (&cfg_rule.provenance, attestations) {
            let envelopes = match attestations {
                Ok(Some(e)) => e,
                Ok(None) => return refused("no provenance attestation for this digest".into()),
                Err(e) => return Err(registry_err(e)),
            };
            let blobs = envelopes.iter().map(|(b, _)| b.as_slice());
            let mut r = match prov_keys.is_empty() {
                true => Err("no key trusted to sign provenance".to_string()),
                false => dsse::provenance(blobs, prov_keys, digest, &p.builders),
            };
            if let (Err(_), Some(signers)) = (&r, &inner.signers[rule]) {
                r = keyless_provenance(&envelopes, signers, digest, &p.builders);
            }
            if let Err(why) = r {
                return refused(why);
            }
        }
        Ok(Outcome::Verified {
            digest: digest.to_string(),
        })
    }

    /// The object cosign attaches to `digest` under the tag
    /// `sha256-<hex>.<suffix>` (`sig`, `att`).
    fn attached(
        &self,
        reference: &Reference,
        digest: &str,
        suffix: &str,
    ) -> Result<Reference, VerifyError> {
        let at = format!(
            "{}/{}:{}.{suffix}",
            reference.resolve_registry(),
            reference.repository(),
            digest.replace(':', "-")
        );
        at.parse()
            .map_err(|e: oci_client::ParseError| VerifyError::Reference(at.clone(), e.to_string()))
    }

    /// The layers of `media_type` at `at`, with their annotations (`None`
    /// when there is no such object). The client checks each blob against
    /// its digest.
    async fn layers(&self, at: &Reference, media_type: &str) -> Result<Option<Layers>, String> {
        let inner = &self.inner;
        let auth = self.credentials().oci(at.resolve_registry());
        let (manifest, _) = match inner.oci.pull_image_manifest(at, &auth).await {
            Ok(m) => m,
            Err(oci_client::errors::OciDistributionError::ImageManifestNotFoundError(_)) => {
                return Ok(None)
            }
            Err(oci_client::errors::OciDistributionError::RegistryError { envelope, .. })
                if envelope
                    .errors
                    .iter()
                    .any(|e| e.code == oci_client::errors::OciErrorCode::ManifestUnknown) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e.to_string()),
        };
        let mut out = Vec::new();
        for layer in manifest
            .layers
            .iter()
            .filter(|l| l.media_type == media_type)
        {
            let mut blob = Vec::new();
            inner
                .oci
                .pull_blob(at, layer, &mut blob)
                .await
                .map_err(|e| e.to_string())?;
            out.push((blob, layer.annotations.clone().unwrap_or_default()));
        }
        Ok(Some(out))
    }
}

/// Blobs with their annotations.
type Layers = Vec<(Vec<u8>, std::collections::BTreeMap<String, String>)>;

const NO_SIGNATURE: &str = "no cosign signature for this digest";
const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
const SIGNATURE: &str = "dev.cosignproject.cosign/signature";

/// Whether one of cosign's signature layers (`payload`, with the
/// signature in its annotations) covers `digest` and was made by one of
/// `keys`, or keyless by one of `signers`; why not otherwise.
fn signed(
    layers: &Layers,
    keys: &[CosignVerificationKey],
    signers: Option<&keyless::Signers>,
    digest: &str,
) -> Result<(), String> {
    let mut why = Vec::new();
    if !keys.is_empty() {
        let by_key = layers.iter().any(|(payload, ann)| {
            let Some(sig) = ann.get(SIGNATURE) else {
                return false;
            };
            covers(payload, digest)
                && keys.iter().any(|k| {
                    k.verify_signature(Signature::Base64Encoded(sig.as_bytes()), payload)
                        .is_ok()
                })
        });
        if by_key {
            return Ok(());
        }
        why.push(format!(
            "{} signature(s), none by a trusted key over {digest}",
            layers.len()
        ));
    }
    if let Some(signers) = signers {
        match keyless_signature(layers, signers, digest) {
            Ok(()) => return Ok(()),
            Err(e) => why.push(e),
        }
    }
    Err(why.join("; "))
}

/// Whether a cosign payload (SimpleSigning) names `digest`.
fn covers(payload: &[u8], digest: &str) -> bool {
    serde_json::from_slice::<SimpleSigning>(payload)
        .is_ok_and(|s| s.critical.image.docker_manifest_digest == digest)
}

/// Whether one of cosign's signature layers is a keyless signature over
/// `digest` by a trusted identity; the most telling reason why not.
fn keyless_signature(
    layers: &Layers,
    signers: &keyless::Signers,
    digest: &str,
) -> Result<(), String> {
    let mut why = "no keyless signature (none has a certificate)".to_string();
    for (payload, ann) in layers {
        let (Some(key), Some(sig)) = (signers.key_of_layer(ann), ann.get(SIGNATURE)) else {
            continue;
        };
        let key = match key {
            Ok(k) => k,
            Err(e) => {
                why = e;
                continue;
            }
        };
        if key
            .verify_signature(Signature::Base64Encoded(sig.as_bytes()), payload)
            .is_err()
        {
            why = "a keyless signature that its certificate's key did not make".into();
            continue;
        }
        if !covers(payload, digest) {
            why = "a keyless signature over another digest".into();
            continue;
        }
        return Ok(());
    }
    Err(why)
}

/// Provenance in attestations signed keyless: each envelope checked with
/// the key of its own certificate, when that names a trusted identity.
fn keyless_provenance(
    envelopes: &Layers,
    signers: &keyless::Signers,
    digest: &str,
    builders: &[String],
) -> Result<(), String> {
    let mut why = "no provenance attestation with a certificate".to_string();
    for (blob, ann) in envelopes {
        let Some(key) = signers.key_of_layer(ann) else {
            continue;
        };
        let r = key.and_then(|key| dsse::provenance([blob.as_slice()], &[key], digest, builders));
        match r {
            Ok(()) => return Ok(()),
            Err(e) => why = e,
        }
    }
    Err(why)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rules::image_signature::tests::KEY;

    fn docker_config(host: &str) -> String {
        // `auth` is base64 of `user:secret`.
        format!(r#"{{"auths": {{"{host}": {{"auth": "dXNlcjpzZWNyZXQ="}}}}}}"#)
    }

    #[tokio::test]
    async fn rotated_credentials_replace_the_old_ones_and_a_bad_file_keeps_them() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(".dockerconfigjson");
        std::fs::write(&file, docker_config("old.example")).unwrap();
        let cfg = ImagesConfig {
            verify: vec![VerifyRule {
                images: vec!["*".into()],
                tiers: vec![5],
                keys: vec![KEY.into()],
                identities: Vec::new(),
                trust_root: None,
                provenance: None,
            }],
            credentials_file: Some(file.display().to_string()),
            ..ImagesConfig::default()
        };
        let v = Verifier::new(cfg).unwrap();
        let hosts = |v: &Verifier| format!("{:?}", v.credentials());
        assert_eq!(hosts(&v), r#"["old.example"]"#);
        // Unchanged: nothing to do.
        assert_eq!(v.reload_credentials(), Ok(false));
        // Rotated: the new ones are used, and the cache is kept.
        let digest = format!("sha256:{}", "cd".repeat(32));
        v.prime(
            "reg.example/app:1",
            0,
            Outcome::Verified {
                digest: digest.clone(),
            },
        )
        .await;
        std::fs::write(&file, docker_config("new.example")).unwrap();
        assert_eq!(v.reload_credentials(), Ok(true));
        assert_eq!(hosts(&v), r#"["new.example"]"#);
        assert_eq!(
            v.verify("reg.example/app:1", 0).await,
            Ok(Outcome::Verified { digest })
        );
        // Torn or wrong: an error once, the last good ones stay.
        std::fs::write(&file, "{not json").unwrap();
        let err = v.reload_credentials().unwrap_err().to_string();
        assert!(err.contains("not a .dockerconfigjson"), "{err}");
        assert!(!err.contains("secret"), "{err}");
        assert_eq!(v.reload_credentials(), Ok(false));
        assert_eq!(hosts(&v), r#"["new.example"]"#);
        // Gone: an error, the last good ones stay.
        std::fs::remove_file(&file).unwrap();
        assert!(v.reload_credentials().is_err());
        assert_eq!(hosts(&v), r#"["new.example"]"#);
    }
}
