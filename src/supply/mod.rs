//! Supply chain at admission: image signatures made by `cosign`, SLSA
//! provenance attached with `cosign attest`, and the digest an image was
//! verified at (for pinning).
//!
//! [`Verifier::verify`] answers for one image under one [`VerifyRule`] of
//! the config: it resolves a tag to its digest (a short-lived tag cache),
//! then checks, once per digest and rule, that a signature by a trusted key
//! covers that digest (the `sigstore` crate reads cosign's signature
//! objects) and, when the rule asks for provenance, that an in-toto
//! attestation of predicate `https://slsa.dev/provenance/v1`, signed by a
//! trusted key, names that digest as its subject and an allowed builder.
//! Registry traffic goes through `oci-client`.
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
mod metrics;

pub use facts::{facts_from, image_facts, images_of, verify_all, Verdicts};
pub use metrics::Metrics;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;
use oci_client::Reference;
use sigstore::cosign::verification_constraint::{PublicKeyVerifier, VerificationConstraint};
use sigstore::cosign::{ClientBuilder, CosignCapabilities};
use sigstore::crypto::CosignVerificationKey;

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
    oci: oci_client::Client,
    oci_config: sigstore::registry::ClientConfig,
    /// Per registry host, from `images.credentialsFile`; anonymous elsewhere.
    credentials: credentials::Credentials,
    outcomes: Cache<(String, usize), Outcome>,
    tags: Cache<String, String>,
    counters: Counters,
    metrics: Metrics,
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
        let credentials = match &cfg.credentials_file {
            Some(path) => credentials::Credentials::read(std::path::Path::new(path))
                .map_err(VerifyError::Credentials)?,
            None => credentials::Credentials::default(),
        };
        let mut provenance_keys = Vec::new();
        for rule in &cfg.verify {
            // A key that does not parse is refused here, not at admission.
            let sig = parse_keys(&rule.keys)?;
            provenance_keys.push(match &rule.provenance {
                Some(p) if !p.keys.is_empty() => parse_keys(&p.keys)?,
                _ => sig,
            });
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
        let oci_config = sigstore::registry::ClientConfig {
            protocol: sigstore::registry::ClientProtocol::Https,
            extra_root_certificates: roots
                .iter()
                .map(|data| sigstore::registry::Certificate {
                    encoding: sigstore::registry::CertificateEncoding::Pem,
                    data: data.clone(),
                })
                .collect(),
            ..Default::default()
        };
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
                oci,
                oci_config,
                credentials,
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
                let auth = this.inner.credentials.oci(r.resolve_registry());
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
        // Signatures: cosign's signature object for this digest; at least
        // one layer signed by one trusted key, over this very digest (the
        // crate drops layers whose payload names another digest).
        let mut client = ClientBuilder::default()
            .with_oci_client_config(inner.oci_config.clone())
            .build()
            .map_err(|e| registry_err(e.to_string()))?;
        let oci_ref: sigstore::registry::OciReference =
            pinned
                .parse()
                .map_err(|e: sigstore::errors::SigstoreError| {
                    VerifyError::Reference(pinned.clone(), e.to_string())
                })?;
        let auth = inner.credentials.sigstore(reference.resolve_registry());
        let layers = match client.trusted_signature_layers(&auth, &oci_ref).await {
            Ok(l) => l,
            Err(e) => return Err(registry_err(e.to_string())),
        };
        if layers.is_empty() {
            return refused("no cosign signature for this digest".into());
        }
        let signed = cfg_rule.keys.iter().any(|pem| {
            PublicKeyVerifier::try_from(pem.as_bytes()).is_ok_and(|v| {
                let c: Box<dyn VerificationConstraint> = Box::new(v);
                sigstore::cosign::verify_constraints(&layers, std::iter::once(&c)).is_ok()
            })
        });
        if !signed {
            return refused(format!(
                "{} signature(s), none by a trusted key over {digest}",
                layers.len()
            ));
        }
        // Provenance: the attestations cosign attached for this digest.
        if let Some(p) = &cfg_rule.provenance {
            let att = format!(
                "{}/{}:{}.att",
                reference.resolve_registry(),
                reference.repository(),
                digest.replace(':', "-")
            );
            let att_ref: Reference = att.parse().map_err(|e: oci_client::ParseError| {
                VerifyError::Reference(att.clone(), e.to_string())
            })?;
            let envelopes = match self.envelopes(&att_ref).await {
                Ok(Some(e)) => e,
                Ok(None) => return refused("no provenance attestation for this digest".into()),
                Err(e) => return Err(registry_err(e)),
            };
            if let Err(why) = dsse::provenance(&envelopes, prov_keys, digest, &p.builders) {
                return refused(why);
            }
        }
        Ok(Outcome::Verified {
            digest: digest.to_string(),
        })
    }

    /// The DSSE envelopes attached at `att` (`None` when there is none).
    async fn envelopes(&self, att: &Reference) -> Result<Option<Vec<Vec<u8>>>, String> {
        let inner = &self.inner;
        let auth = inner.credentials.oci(att.resolve_registry());
        let (manifest, _) = match inner.oci.pull_image_manifest(att, &auth).await {
            Ok(m) => m,
            Err(oci_client::errors::OciDistributionError::ImageManifestNotFoundError(_)) => {
                return Ok(None)
            }
            Err(e) if e.to_string().contains("MANIFEST_UNKNOWN") => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        let mut out = Vec::new();
        for layer in manifest
            .layers
            .iter()
            .filter(|l| l.media_type == dsse::MEDIA_TYPE)
        {
            let mut blob = Vec::new();
            inner
                .oci
                .pull_blob(att, layer, &mut blob)
                .await
                .map_err(|e| e.to_string())?;
            out.push(blob);
        }
        Ok(Some(out))
    }
}
