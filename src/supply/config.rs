//! The `images:` section of the config: which images need a signature and
//! provenance, the keys and builders trusted, and the cache and time budget
//! of verification.
use std::time::Duration;

use serde::Deserialize;

/// `images:`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ImagesConfig {
    /// The rules, first match wins (by image prefix and namespace tier).
    #[serde(default)]
    pub verify: Vec<VerifyRule>,
    /// The answer when verification cannot finish within the budget.
    #[serde(default)]
    pub on_timeout: OnTimeout,
    /// Milliseconds a request may spend verifying (inside the apiserver's
    /// `?timeout=`); 2,000 by default.
    #[serde(default = "default_budget_ms")]
    pub budget_ms: u64,
    #[serde(default)]
    pub cache: CacheConfig,
    /// Extra CA certificates (PEM) the registries' TLS is checked against.
    #[serde(default)]
    pub registry_ca: Vec<String>,
    /// A `.dockerconfigjson` file (a mounted `kubernetes.io/dockerconfigjson`
    /// Secret) with the registries' credentials; anonymous without it, and
    /// for registries it does not name.
    #[serde(default)]
    pub credentials_file: Option<String>,
}

fn default_budget_ms() -> u64 {
    2_000
}

impl Default for ImagesConfig {
    fn default() -> Self {
        ImagesConfig {
            verify: Vec::new(),
            on_timeout: OnTimeout::default(),
            budget_ms: default_budget_ms(),
            cache: CacheConfig::default(),
            registry_ca: Vec::new(),
            credentials_file: None,
        }
    }
}

/// What happens when verification runs out of time (or the registry fails).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnTimeout {
    #[default]
    Deny,
    Allow,
}

/// One rule: images under these prefixes, in namespaces of these tiers,
/// must be signed by one of these keys (and, with `provenance`, carry a SLSA
/// provenance attestation from an allowed builder).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VerifyRule {
    /// Image prefixes (`registry.example.com/team/`); `*` matches every
    /// image, and is the default (tier 5's: every image).
    #[serde(default = "every_image")]
    pub images: Vec<String>,
    /// Namespace tiers the rule applies in (5 by default).
    #[serde(default = "tier5")]
    pub tiers: Vec<u8>,
    /// Trusted public keys (PEM, as `cosign generate-key-pair` writes
    /// them).
    #[serde(default)]
    pub keys: Vec<String>,
    /// Keyless: the signer identities trusted, each an OIDC issuer and a
    /// subject (exact, or a regular expression), as the signing
    /// certificate states them; the certificate must chain to `trustRoot`.
    #[serde(default)]
    pub identities: Vec<Identity>,
    /// Keyless: a PEM file of the CA certificates (a Fulcio's, or your own
    /// PKI's root and intermediates) signing certificates must chain to. A
    /// file, so an air-gapped cluster mounts it.
    #[serde(default)]
    pub trust_root: Option<String>,
    #[serde(default)]
    pub provenance: Option<Provenance>,
}

/// A keyless signer: the certificate's OIDC issuer and its subject (the
/// e-mail or URI of its subject alternative name).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Identity {
    pub issuer: String,
    #[serde(default)]
    pub subject: Option<String>,
    /// A regular expression the whole subject must match.
    #[serde(default)]
    pub subject_reg_exp: Option<String>,
}

fn every_image() -> Vec<String> {
    vec!["*".into()]
}

fn tier5() -> Vec<u8> {
    vec![5]
}

/// SLSA provenance: the builders allowed, and the keys trusted to sign the
/// attestation (the rule's own when empty).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Provenance {
    pub builders: Vec<String>,
    #[serde(default)]
    pub keys: Vec<String>,
}

/// The verification cache.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CacheConfig {
    /// Seconds a verified digest stays verified (600).
    #[serde(default = "positive")]
    pub positive_seconds: u64,
    /// Seconds a refused digest stays refused (60).
    #[serde(default = "negative")]
    pub negative_seconds: u64,
    /// Seconds a tag's digest is reused (30).
    #[serde(default = "tag")]
    pub tag_seconds: u64,
    /// Entries kept, each cache (10,000).
    #[serde(default = "entries")]
    pub max_entries: u64,
}

fn positive() -> u64 {
    600
}
fn negative() -> u64 {
    60
}
fn tag() -> u64 {
    30
}
fn entries() -> u64 {
    10_000
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            positive_seconds: positive(),
            negative_seconds: negative(),
            tag_seconds: tag(),
            max_entries: entries(),
        }
    }
}

impl CacheConfig {
    pub fn positive_ttl(&self) -> Duration {
        Duration::from_secs(self.positive_seconds.max(1))
    }
    pub fn negative_ttl(&self) -> Duration {
        Duration::from_secs(self.negative_seconds.max(1))
    }
    pub fn tag_ttl(&self) -> Duration {
        Duration::from_secs(self.tag_seconds.max(1))
    }
}

impl ImagesConfig {
    /// What a config file must get right, checked when it is read (so a
    /// reload with a bad key is refused, not met at admission).
    pub fn validate(&self) -> Result<(), String> {
        for (i, r) in self.verify.iter().enumerate() {
            let at = format!("images.verify[{i}]");
            if r.images.is_empty() {
                return Err(format!(
                    "{at}.images: name at least one image prefix (or '*')"
                ));
            }
            if r.keys.is_empty() && r.identities.is_empty() {
                return Err(format!(
                    "{at}: give the public keys (keys) or the keyless signers (identities and \
                     trustRoot) it trusts"
                ));
            }
            if !r.identities.is_empty() && r.trust_root.is_none() {
                return Err(format!(
                    "{at}.trustRoot: keyless identities need the PEM file of the CA \
                     certificates the signing certificates chain to"
                ));
            }
            for (j, id) in r.identities.iter().enumerate() {
                let at = format!("{at}.identities[{j}]");
                if id.issuer.is_empty() {
                    return Err(format!("{at}.issuer: name the OIDC issuer"));
                }
                match (&id.subject, &id.subject_reg_exp) {
                    (Some(_), None) => {}
                    (None, Some(re)) => {
                        super::keyless::anchored(re)
                            .map_err(|e| format!("{at}.subjectRegExp: {e}"))?;
                    }
                    _ => {
                        return Err(format!(
                            "{at}: give exactly one of subject and subjectRegExp"
                        ))
                    }
                }
            }
            if let Some(t) = r.tiers.iter().find(|t| !(1..=5).contains(*t)) {
                return Err(format!("{at}.tiers: {t} is not a tier (1 to 5)"));
            }
            let keys = r.keys.iter().map(|k| ("keys", k)).chain(
                r.provenance
                    .iter()
                    .flat_map(|p| p.keys.iter().map(|k| ("provenance.keys", k))),
            );
            for (j, (field, k)) in keys.enumerate() {
                sigstore::crypto::CosignVerificationKey::try_from_pem(k.as_bytes())
                    .map_err(|e| format!("{at}.{field}: key {j} is not a PEM public key: {e}"))?;
            }
            if let Some(p) = &r.provenance {
                if p.builders.is_empty() {
                    return Err(format!(
                        "{at}.provenance.builders: name the builder ids allowed"
                    ));
                }
            }
        }
        Ok(())
    }

    /// The time a request may spend verifying.
    pub fn budget(&self) -> Duration {
        Duration::from_millis(self.budget_ms.max(1))
    }

    /// The first rule for `image` in a namespace of `tier`.
    pub fn rule_for(&self, image: &str, tier: u8) -> Option<usize> {
        self.verify.iter().position(|r| {
            r.tiers.contains(&tier)
                && r.images
                    .iter()
                    .any(|p| p == "*" || image.starts_with(p.as_str()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_rule_for_the_image_and_tier_applies() {
        let cfg: ImagesConfig = serde_saphyr::from_str(
            "verify:\n  - images: [reg.example/team/]\n    keys: [k1]\n  \
             - images: ['*']\n    tiers: [4, 5]\n    keys: [k2]\n",
        )
        .expect("config");
        assert_eq!(cfg.rule_for("reg.example/team/app:1", 5), Some(0));
        assert_eq!(cfg.rule_for("reg.example/other/app:1", 5), Some(1));
        assert_eq!(cfg.rule_for("reg.example/team/app:1", 4), Some(1));
        assert_eq!(cfg.rule_for("reg.example/team/app:1", 3), None);
        assert_eq!(cfg.budget(), Duration::from_secs(2));
        assert_eq!(cfg.on_timeout, OnTimeout::Deny);
        assert_eq!(cfg.cache.negative_ttl(), Duration::from_secs(60));
    }

    #[test]
    fn keyless_rules_need_a_trust_root_and_one_subject_each() {
        let check = |rule: &str| {
            serde_saphyr::from_str::<ImagesConfig>(&format!("verify:\n  - images: ['*']\n{rule}"))
                .expect("config")
                .validate()
        };
        let id = "    identities: [{issuer: https://oidc.example, subject: a@example.com}]\n";
        assert_eq!(
            check(&format!(
                "{id}    trustRoot: /etc/tiergate/trust/root.pem\n"
            )),
            Ok(())
        );
        let e = check(id).unwrap_err();
        assert!(e.contains("images.verify[0].trustRoot"), "{e}");
        let e = check("    tiers: [5]\n").unwrap_err();
        assert!(e.contains("keys") && e.contains("identities"), "{e}");
        let e = check(
            "    trustRoot: r.pem\n    identities: [{issuer: i, subject: s, subjectRegExp: s}]\n",
        )
        .unwrap_err();
        assert!(
            e.contains("exactly one of subject and subjectRegExp"),
            "{e}"
        );
        let e = check("    trustRoot: r.pem\n    identities: [{issuer: i, subjectRegExp: '('}]\n")
            .unwrap_err();
        assert!(e.contains("identities[0].subjectRegExp"), "{e}");
        let e = check("    trustRoot: r.pem\n    identities: [{issuer: '', subject: s}]\n")
            .unwrap_err();
        assert!(e.contains("issuer"), "{e}");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let r: Result<ImagesConfig, _> = serde_saphyr::from_str("verify: []\nonTimout: allow\n");
        assert!(r.is_err());
    }
}
