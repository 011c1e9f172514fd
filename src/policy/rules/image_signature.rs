//! `image-signature`: images the config's `images.verify` names are signed
//! by a trusted key or keyless signer (and carry SLSA provenance from an
//! allowed builder).
use super::image_tag::is_build_reference;
use super::prelude::*;
use crate::policy::{Fact, ImageVerdict};
use crate::supply::OnTimeout;

pub static RULE: Rule = Rule {
    id: "image-signature",
    // Which tiers require it is the config's (`images.verify[].tiers`, tier 5
    // by default): the rule itself runs at every tier and requires nothing
    // where no verify rule names the image.
    tier: Tier::Foundation,
    pss: None,
    summary: "images named by images.verify are signed by a trusted key (and carry SLSA \
provenance)",
    doc: "A digest says which bytes run; a signature says who vouched for them. Each \
`images.verify` rule of the config names image prefixes (or `*`), the namespace tiers it \
applies in (tier 5 when not given), the public keys trusted to sign (as `cosign \
generate-key-pair` writes them) or keyless signers (`identities`: an OIDC issuer and a \
subject or subject pattern, as the signing certificate states them, which must chain to the \
CA certificates of `trustRoot`, checked when verifying) and, with `provenance`, the builder ids allowed in a SLSA \
provenance attestation (`cosign attest --type slsaprovenance1`, predicate \
`https://slsa.dev/provenance/v1`). At admission tiergate resolves the image's tag to its \
digest, then checks that a cosign signature by a trusted key or signer covers that very digest and, \
where asked, that a signed attestation names the digest as its subject and an allowed \
builder. Results are cached by digest and rule (`images.cache`), concurrent admissions of \
one image wait for one verification, and verification is bounded by `images.budgetMs`: \
when the registry fails or the budget runs out the answer follows `images.onTimeout` \
(`deny` by default; `allow` turns it into a warning), never a hung request, and a registry \
error is never read as \"unsigned\". With no `images.verify` rule nothing is required. \
`tiergate check --verify-images` runs the same verification from CI; without it the CLI \
says the signature was not checked. Sign the image (`cosign sign --key ...`) and attach \
its provenance in the pipeline that builds it; the `image-digest` fix then pins the tag \
to the digest verified.",
    check: Check::Pod(check),
    fix: Fix::None,
    cel: Cel::WebhookWhen {
        why: "it asks the image's registry for cosign signatures and SLSA provenance, which a \
              policy cannot; the webhook is called only for objects with an image under a \
              prefix images.verify names (never without images.verify)",
        when,
    },
};

/// Some container's image is under a prefix an `images.verify` rule names
/// (`false` with no rule: nothing to verify, the webhook is not called for
/// it).
fn when(containers: &str, cfg: &crate::policy::PolicyConfig) -> String {
    let mut prefixes: Vec<&str> = cfg
        .images
        .verify
        .iter()
        .flat_map(|r| r.images.iter().map(String::as_str))
        .collect();
    if prefixes.is_empty() {
        return "false".into();
    }
    if prefixes.contains(&"*") {
        return format!("{containers}.exists(c, has(c.image))");
    }
    prefixes.sort_unstable();
    prefixes.dedup();
    let any = prefixes
        .iter()
        .map(|p| format!("c.image.startsWith({})", cel::lit(p)))
        .collect::<Vec<_>>()
        .join(" || ");
    format!("{containers}.exists(c, has(c.image) && ({any}))")
}

fn check(pod: &PodTemplate, r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    let images = &r.config.images;
    if images.verify.is_empty() {
        return Ok(());
    }
    let tier = r.ctx.tier.number();
    for c in pod.containers() {
        let Some(image) = c.image else { continue };
        if is_build_reference(image) || images.rule_for(image, tier).is_none() {
            continue;
        }
        let who = format!("container {:?}", c.name);
        let at = format!("{}/image", c.path);
        let v = match &r.ctx.images {
            Fact::Unknown => Violation::new(
                at,
                format!(
                    "image signature unknown ({who} image {image:?} was not verified: run \
                     `tiergate check --verify-images` to ask its registry)"
                ),
            )
            .unknown(),
            Fact::Known(f) => match f.verdicts.get(image) {
                Some(ImageVerdict::Verified { .. }) => continue,
                Some(ImageVerdict::Refused { digest, reason }) => {
                    let at_digest = if digest.contains(':') {
                        format!(" at {digest}")
                    } else {
                        String::new()
                    };
                    Violation::new(
                        at,
                        format!(
                            "image signature ({who} image {image:?}{at_digest} is refused: \
                             {reason})"
                        ),
                    )
                }
                Some(ImageVerdict::Unavailable { reason }) => {
                    let msg = format!(
                        "image signature unverified ({who} image {image:?} could not be \
                         verified: {reason}; images.onTimeout is {})",
                        match images.on_timeout {
                            OnTimeout::Deny => "deny",
                            OnTimeout::Allow => "allow",
                        }
                    );
                    match images.on_timeout {
                        OnTimeout::Deny => Violation::new(at, msg),
                        OnTimeout::Allow => Violation::new(at, msg).unknown(),
                    }
                }
                None => Violation::new(
                    at,
                    format!("image signature ({who} image {image:?} was not verified)"),
                ),
            },
        };
        out.push(v.in_container(c.name));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use crate::policy::rules::testutil::{self, run_rule_with};
    use crate::policy::{Action, Context, Fact, ImageFacts, ImageVerdict, Mode, Tier};

    /// A P-256 public key (its private half was thrown away).
    pub const KEY: &str = "-----BEGIN PUBLIC KEY-----\n\
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEgQxLcFMCKvjuBkfTj8qJb7azHBuh\n\
0SN9O1l60AI7KsO/2i+HE8+GGz5HMDk2GPgFnHqgQXyJI7Vmm0DAAw+IiQ==\n\
-----END PUBLIC KEY-----\n";

    pub fn config(on_timeout: &str) -> String {
        format!(
            "images:\n  onTimeout: {on_timeout}\n  verify:\n    - images: [reg.example/]\n      \
             keys:\n        - |\n{}\n",
            KEY.lines()
                .map(|l| format!("          {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    }

    fn pod(image: &str) -> serde_json::Value {
        let mut p = testutil::bare_pod();
        p["spec"]["containers"][0]["image"] = serde_json::json!(image);
        p
    }

    fn ctx(tier: Tier, verdict: Option<ImageVerdict>, image: &str) -> Context {
        let mut c = Context::new(tier, Mode::Enforce);
        if let Some(v) = verdict {
            let mut f = ImageFacts::default();
            f.verdicts.insert(image.to_string(), v);
            c.images = Fact::Known(Arc::new(f));
        }
        c
    }

    fn judge(
        tier: Tier,
        verdict: Option<ImageVerdict>,
        image: &str,
        on_timeout: &str,
    ) -> Vec<(Action, String)> {
        run_rule_with(
            "image-signature",
            &pod(image),
            &ctx(tier, verdict, image),
            &config(on_timeout),
        )
        .findings
        .into_iter()
        .map(|f| (f.action, f.message))
        .collect()
    }

    const IMG: &str = "reg.example/team/web:1.0";

    #[test]
    fn verified_images_and_images_no_rule_names_pass() {
        let ok = ImageVerdict::Verified {
            digest: "sha256:ab".into(),
        };
        assert!(judge(Tier::Hyperscale, Some(ok), IMG, "deny").is_empty());
        // Another registry: no rule names it.
        let other = "docker.io/library/nginx:1.27";
        assert!(judge(Tier::Hyperscale, None, other, "deny").is_empty());
        // Tier 3: the rule applies at tier 5 only (its default tiers).
        assert!(judge(Tier::Enterprise, None, IMG, "deny").is_empty());
    }

    #[test]
    fn refused_images_deny_and_say_why() {
        let refused = ImageVerdict::Refused {
            digest: "sha256:ab".into(),
            reason: "no cosign signature for this digest".into(),
        };
        let f = judge(Tier::Hyperscale, Some(refused), IMG, "deny");
        assert_eq!(
            f,
            vec![(
                Action::Deny,
                format!(
                    "image signature (container \"redis\" image {IMG:?} at sha256:ab is refused: \
                     no cosign signature for this digest)"
                )
            )]
        );
    }

    #[test]
    fn an_unavailable_registry_follows_on_timeout() {
        let down = || ImageVerdict::Unavailable {
            reason: "the registry for reg.example: connection refused".into(),
        };
        let deny = judge(Tier::Hyperscale, Some(down()), IMG, "deny");
        assert_eq!(deny.len(), 1);
        assert_eq!(deny[0].0, Action::Deny);
        assert!(deny[0]
            .1
            .contains("connection refused; images.onTimeout is deny"));
        let allow = judge(Tier::Hyperscale, Some(down()), IMG, "allow");
        assert_eq!(allow.len(), 1);
        assert_eq!(allow[0].0, Action::Warn, "allow: a warning, never a denial");
    }

    #[test]
    fn not_verified_is_unknown_offline_and_a_denial_in_the_webhook() {
        // The CLI without --verify-images: a warning that says how.
        let f = judge(Tier::Hyperscale, None, IMG, "deny");
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].0, Action::Warn);
        assert!(f[0].1.contains("--verify-images"), "{}", f[0].1);
        // Known facts without this image: never passed silently.
        let mut c = ctx(Tier::Hyperscale, None, IMG);
        c.images = Fact::Known(Arc::new(ImageFacts::default()));
        let e = run_rule_with("image-signature", &pod(IMG), &c, &config("deny"));
        assert_eq!(e.findings.len(), 1);
        assert_eq!(e.findings[0].action, Action::Deny);
    }
}
