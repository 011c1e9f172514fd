//! `image-digest`: every image is pinned by an `@sha256:` digest.
use super::image_tag::ImageRef;
use super::prelude::*;
use crate::policy::target::ContainerView;

pub static RULE: Rule = Rule {
    id: "image-digest",
    tier: Tier::Production,
    pss: None,
    summary: "every image is pinned by an @sha256: digest",
    doc: "A tag is a pointer anyone with push rights can move, so `web:1.4.2` today and \
next week may be different bytes; a digest names the content itself. Pinning every \
image by digest makes what runs exactly what was scanned, signed and tested, and makes \
rollbacks exact. Write images as `registry/repo:tag@sha256:<64 hex digits>` (keep the \
tag for people; the runtime pulls by the digest). Only `sha256` digests are accepted. \
The fix pins only what tiergate verified: where `images.verify` names an image and its \
signature was verified at admission (`image-signature`), the mutating webhook writes the \
digest it verified after the tag (`repo:tag@sha256:...`), so what runs is what was checked. \
It never pins an image that failed or could not be verified, nor, on an UPDATE, an image \
the object already ran (pinning it would roll out whatever build the tag names now). \
Without `images.verify` the fix is off; pin in CI (`crane digest`) instead.",
    check: Check::Pod(check),
    fix: Fix::Configured {
        summary: "pins each verified image to the digest tiergate verified (repo:tag@sha256:...)",
        apply: FixFn::Pod(fix),
        configured: |cfg| !cfg.images.verify.is_empty(),
    },
    cel: Cel::Findings(cel),
};

fn check(pod: &PodTemplate, r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    for (c, image) in unpinned(pod) {
        let v = Violation::new(
            format!("{}/image", c.path),
            format!(
                "image digest (container {:?} must pin image {image:?} by an @sha256: digest)",
                c.name
            ),
        )
        .in_container(c.name);
        out.push(match pin_to(image, r) {
            Err(why) => v.declined(why),
            Ok(_) => v,
        });
    }
    Ok(())
}

/// The containers whose image is not pinned by an `@sha256:` digest (build
/// references such as `ko://` aside), with the image.
fn unpinned(pod: &PodTemplate) -> impl Iterator<Item = (ContainerView<'_>, &str)> {
    pod.containers().into_iter().filter_map(|c| {
        let image = c.image?;
        let pinned = super::image_tag::is_build_reference(image)
            || ImageRef::parse(image).has_sha256_digest();
        (!pinned).then_some((c, image))
    })
}

/// The digest the fix pins `image` to, or why it does not pin it.
fn pin_to<'r>(image: &str, r: &'r RuleCtx<'_>) -> Result<&'r str, &'static str> {
    if r.config
        .images
        .rule_for(image, r.ctx.tier.number())
        .is_none()
    {
        return Err("no images.verify rule names this image, so no digest was verified");
    }
    let crate::policy::Fact::Known(facts) = &r.ctx.images else {
        return Err("its signature was not verified here (tiergate check --verify-images)");
    };
    let Some(digest) = facts.verified_digest(image) else {
        return Err("only an image whose signature was verified is pinned");
    };
    if facts.unchanged.contains(image) {
        return Err(
            "the object already runs this image: pinning it now could roll out another build",
        );
    }
    Ok(digest)
}

/// Pin every image [`pin_to`] gives a digest for.
fn fix(pod: &PodTemplate, r: &RuleCtx<'_>, obj: &mut Value) -> bool {
    let mut changed = false;
    for (c, image) in unpinned(pod) {
        let Ok(digest) = pin_to(image, r) else {
            continue;
        };
        let path = format!("{}/image", c.path);
        if let Some(slot) = obj.pointer_mut(&path) {
            if slot.as_str() == Some(image) {
                *slot = Value::String(format!("{image}@{digest}"));
                changed = true;
            }
        }
    }
    changed
}

fn cel(_cx: &CelCtx<'_>) -> String {
    let i = "c.image.trim()";
    containers_where(
        &format!(
            "c.?image.hasValue() && !{i}.startsWith('ko://') && \
             !{i}.matches('^[^@]*@sha256:[0-9a-fA-F]{{64}}$')"
        ),
        &format!(
            "'image digest (' + {WHO} + ' must pin image \"' + c.image + '\" by an @sha256: \
             digest)'"
        ),
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::policy::rules::image_signature::tests as sig;
    use crate::policy::rules::testutil::{self, run_rule, run_rule_with};
    use crate::policy::{Context, Fact, ImageFacts, ImageVerdict, Mode, Tier};
    use serde_json::json;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn verified(image: &str, unchanged: bool) -> Context {
        let mut f = ImageFacts::default();
        f.verdicts.insert(
            image.to_string(),
            ImageVerdict::Verified {
                digest: DIGEST.into(),
            },
        );
        if unchanged {
            f.unchanged.insert(image.to_string());
        }
        let mut c = Context::new(Tier::Hyperscale, Mode::Enforce);
        c.images = Fact::Known(Arc::new(f));
        c
    }

    #[test]
    fn a_verified_image_is_pinned_to_the_digest_verified_once() {
        let image = "reg.example/team/web:1.0";
        let mut pod = testutil::bare_pod();
        pod["spec"]["containers"][0]["image"] = json!(image);
        let cfg = sig::config("deny");
        let fixed =
            testutil::assert_fix_sound_with("image-digest", &pod, &verified(image, false), &cfg);
        assert_eq!(
            fixed["spec"]["containers"][0]["image"],
            json!(format!("{image}@{DIGEST}"))
        );
    }

    #[test]
    fn the_fix_declines_what_was_not_verified_and_images_already_running() {
        let image = "reg.example/team/web:1.0";
        let mut pod = testutil::bare_pod();
        pod["spec"]["containers"][0]["image"] = json!(image);
        let cfg = sig::config("deny");
        let cases: [(Context, &str); 4] = [
            (verified(image, true), "already runs this image"),
            (
                Context::new(Tier::Hyperscale, Mode::Enforce),
                "was not verified here",
            ),
            (
                {
                    let mut c = verified(image, false);
                    let mut f = ImageFacts::default();
                    f.verdicts.insert(
                        image.into(),
                        ImageVerdict::Refused {
                            digest: DIGEST.into(),
                            reason: "unsigned".into(),
                        },
                    );
                    c.images = Fact::Known(Arc::new(f));
                    c
                },
                "only an image whose signature was verified",
            ),
            (
                {
                    let mut c = verified(image, false);
                    c.tier = Tier::Enterprise;
                    c
                },
                "no images.verify rule names this image",
            ),
        ];
        for (ctx, why) in cases {
            let e = run_rule_with("image-digest", &pod, &ctx, &cfg);
            assert!(e.patch.0.is_empty(), "{why}");
            assert_eq!(e.findings.len(), 1);
            assert!(
                e.findings[0].message.contains(why),
                "{}",
                e.findings[0].message
            );
            assert!(!e.findings[0].fixable);
        }
        // Without images.verify the fix is off and the message is the plain one.
        let e = run_rule_with("image-digest", &pod, &verified(image, false), "");
        assert!(e.patch.0.is_empty());
        assert!(!e.findings[0].message.contains("not fixed"));
    }

    #[test]
    fn digests_pass_with_or_without_tag() {
        for image in [
            format!("ghcr.io/acme/web@{DIGEST}"),
            format!("registry:5000/web:1.2@{DIGEST}"),
        ] {
            let mut pod = testutil::bare_pod();
            pod["spec"]["containers"][0]["image"] = json!(image);
            assert!(
                run_rule("image-digest", &pod, Tier::Production)
                    .findings
                    .is_empty(),
                "{image}"
            );
        }
    }

    #[test]
    fn tags_and_malformed_digests_fail() {
        for image in [
            "ghcr.io/acme/backup:0.9.1".to_string(),
            "ghcr.io/acme/backup@sha256:abc".to_string(),
            format!("ghcr.io/acme/backup@sha512:{}", &DIGEST[7..]),
        ] {
            let mut cj = testutil::cronjob();
            cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"] =
                json!(image);
            let e = run_rule("image-digest", &cj, Tier::Production);
            assert_eq!(e.findings.len(), 1, "{image}");
            let f = &e.findings[0];
            assert_eq!(
                f.path,
                "/spec/jobTemplate/spec/template/spec/containers/0/image"
            );
            assert_eq!(f.container.as_deref(), Some("backup"));
            assert_eq!(
                f.message,
                format!(
                    "image digest (container \"backup\" must pin image {image:?} by an @sha256: digest)"
                )
            );
        }
    }
}
