//! `image-digest`: every image is pinned by an `@sha256:` digest.
use super::image_tag::ImageRef;
use super::prelude::*;

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
There is no automatic fix: resolving a tag to a digest needs the registry, and the \
policy engine does no I/O; let your CI or a tool like `crane digest` pin images.",
    check: Check::Pod(check),
    fix: Fix::None,
    cel: Cel::Findings(cel),
};

fn check(pod: &PodTemplate, _r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    for c in pod.containers() {
        let Some(image) = c.image else { continue };
        if super::image_tag::is_build_reference(image) || ImageRef::parse(image).has_sha256_digest()
        {
            continue;
        }
        out.push(
            Violation::new(
                format!("{}/image", c.path),
                format!(
                    "image digest (container {:?} must pin image {image:?} by an @sha256: digest)",
                    c.name
                ),
            )
            .in_container(c.name),
        );
    }
    Ok(())
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
    use crate::policy::rules::testutil::{self, run_rule};
    use crate::policy::Tier;
    use serde_json::json;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

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
