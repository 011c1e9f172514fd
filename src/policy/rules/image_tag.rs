//! `image-tag`: every image names a tag other than `latest` (or a digest).
//!
//! Also home of [`ImageRef`], the image reference parser `image-digest`,
//! `allowed-registries` and `standard-labels` share.
use super::prelude::*;

pub static RULE: Rule = Rule {
    id: "image-tag",
    tier: Tier::Production,
    pss: None,
    summary: "every image names a tag other than latest, or a digest",
    doc: "An image without a tag means `latest`, and `latest` moves: two nodes pulling \
the same manifest an hour apart can run different code, a rollback redeploys whatever \
`latest` is today, and nobody can tell from the manifest what is running. Give every \
container, init container and ephemeral container an explicit version tag \
(`ghcr.io/acme/web:1.4.2`) or pin it by digest (`...@sha256:<64 hex>`, which counts as \
pinned on its own). A registry port (`registry:5000/app`) is not a tag. Build-time \
references (`ko://...`, which ko and Tekton replace with a pushed, pinned image) are not \
judged. There is no automatic fix: only a person knows which version was meant.",
    check: Check::Pod(check),
    fix: Fix::None,
    cel: Cel::Findings(cel),
};

/// A parsed image reference: `[registry[:port]/]repository[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef<'a> {
    /// The registry host (and port) when the reference names one.
    pub registry: Option<&'a str>,
    /// The repository path without registry, tag or digest.
    pub repository: &'a str,
    pub tag: Option<&'a str>,
    /// Everything after `@`, e.g. `sha256:…`.
    pub digest: Option<&'a str>,
}

/// A build-time image reference (`ko://github.com/org/app/cmd/x`, as Tekton
/// and ko use): the build replaces it with a pushed, pinned image, so the
/// manifest's reference has no tag or digest to judge.
pub fn is_build_reference(image: &str) -> bool {
    image.trim_start().starts_with("ko://")
}

impl<'a> ImageRef<'a> {
    /// Parse like the container runtimes do: the first path component is a
    /// registry when it contains `.` or `:` or is `localhost`; a `:` after the
    /// registry separates the tag; `@` starts the digest.
    pub fn parse(image: &'a str) -> ImageRef<'a> {
        let image = image.trim();
        let (rest, digest) = match image.split_once('@') {
            Some((r, d)) => (r, Some(d)),
            None => (image, None),
        };
        let (registry, path) = match rest.split_once('/') {
            Some((first, remainder))
                if first.contains('.')
                    || first.contains(':')
                    || first == "localhost"
                    || first.chars().any(|c| c.is_ascii_uppercase()) =>
            {
                (Some(first), remainder)
            }
            _ => (None, rest),
        };
        let (repository, tag) = match path.rsplit_once(':') {
            Some((r, t)) => (r, Some(t).filter(|t| !t.is_empty())),
            None => (path, None),
        };
        ImageRef {
            registry,
            repository,
            tag,
            digest: digest.filter(|d| !d.is_empty()),
        }
    }

    /// The fully qualified repository name, Docker Hub short names expanded:
    /// `nginx` → `docker.io/library/nginx`, `bitnami/redis` →
    /// `docker.io/bitnami/redis`, `index.docker.io/x` → `docker.io/x`.
    pub fn full_name(&self) -> String {
        let registry = match self.registry {
            None => "docker.io".to_string(),
            Some(r) => {
                let r = r.to_ascii_lowercase();
                if r == "index.docker.io" || r == "registry-1.docker.io" {
                    "docker.io".to_string()
                } else {
                    r
                }
            }
        };
        if registry == "docker.io" && !self.repository.contains('/') {
            format!("docker.io/library/{}", self.repository)
        } else {
            format!("{registry}/{}", self.repository)
        }
    }

    /// Pinned by a well-formed `sha256` digest.
    pub fn has_sha256_digest(&self) -> bool {
        self.digest
            .and_then(|d| d.strip_prefix("sha256:"))
            .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    }

    /// Pinned: a digest, or a tag that is not `latest`.
    pub fn is_pinned(&self) -> bool {
        self.digest.is_some() || self.tag.is_some_and(|t| t != "latest")
    }
}

fn check(pod: &PodTemplate, _r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    for c in pod.containers() {
        let Some(image) = c.image else { continue };
        if is_build_reference(image) || ImageRef::parse(image).is_pinned() {
            continue;
        }
        out.push(
            Violation::new(
                format!("{}/image", c.path),
                format!(
                    "image tag (container {:?} must pin image {image:?} to a tag other than latest or to a digest)",
                    c.name
                ),
            )
            .in_container(c.name),
        );
    }
    Ok(())
}

/// The regex (CEL's RE2) for an image whose first path component is a
/// registry, as [`ImageRef::parse`] decides it.
pub const REGISTRY_RE: &str = "^([^/]*[.:A-Z][^/]*|localhost)/";

/// CEL: whether the image string `i` (trimmed) names a tag other than
/// latest or a digest, as [`ImageRef::is_pinned`] parses it.
pub fn pinned_cel(i: &str) -> String {
    let rest = format!("{i}.split('@')[0]");
    let path = format!(
        "({rest}.matches('{REGISTRY_RE}') ? \
         {rest}.substring({rest}.indexOf('/') + 1) : {rest})"
    );
    format!(
        "({i}.matches('^[^@]*@.') || ({path}.matches(':[^:]+$') && \
         !{path}.matches(':latest$')))"
    )
}

fn cel(_cx: &CelCtx<'_>) -> String {
    let i = "c.image.trim()";
    containers_where(
        &format!(
            "c.?image.hasValue() && !{i}.startsWith('ko://') && !{}",
            pinned_cel(i)
        ),
        &format!(
            "'image tag (' + {WHO} + ' must pin image \"' + c.image + '\" to a tag other than \
             latest or to a digest)'"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::ImageRef;
    use crate::policy::rules::testutil::{self, run_rule};
    use crate::policy::Tier;
    use serde_json::json;

    #[test]
    fn build_time_references_are_not_judged() {
        let mut p = testutil::bare_pod();
        p["spec"]["containers"][0]["image"] =
            json!("ko://github.com/tektoncd/pipeline/cmd/controller");
        assert!(run_rule("image-tag", &p, Tier::Production)
            .findings
            .is_empty());
        assert!(run_rule("image-digest", &p, Tier::Production)
            .findings
            .is_empty());
    }

    #[test]
    fn parses_registries_ports_tags_and_digests() {
        let r = ImageRef::parse("registry.local:5000/team/app");
        assert_eq!(r.registry, Some("registry.local:5000"));
        assert_eq!(r.repository, "team/app");
        assert_eq!(r.tag, None);
        let r = ImageRef::parse("localhost:5000/app:1.2");
        assert_eq!(
            (r.registry, r.repository, r.tag),
            (Some("localhost:5000"), "app", Some("1.2"))
        );
        let r = ImageRef::parse("nginx:1.27@sha256:abc");
        assert_eq!((r.tag, r.digest), (Some("1.27"), Some("sha256:abc")));
        assert_eq!(r.full_name(), "docker.io/library/nginx");
        assert_eq!(
            ImageRef::parse("bitnami/redis:7").full_name(),
            "docker.io/bitnami/redis"
        );
        assert_eq!(
            ImageRef::parse("index.docker.io/library/nginx").full_name(),
            "docker.io/library/nginx"
        );
        assert_eq!(
            ImageRef::parse("docker.io/nginx").full_name(),
            "docker.io/library/nginx"
        );
        assert_eq!(
            ImageRef::parse("Registry.Example.com/a/b").full_name(),
            "registry.example.com/a/b"
        );
    }

    #[test]
    fn pinned_images_pass() {
        for image in [
            "nginx:1.27",
            "registry:5000/app:2.0.1",
            "ghcr.io/acme/web@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            let mut pod = testutil::bare_pod();
            pod["spec"]["containers"][0]["image"] = json!(image);
            assert!(
                run_rule("image-tag", &pod, Tier::Production)
                    .findings
                    .is_empty(),
                "{image}"
            );
        }
    }

    #[test]
    fn latest_and_untagged_images_fail_everywhere() {
        for image in [
            "nginx",
            "nginx:latest",
            "registry:5000/app",
            "localhost:5000/app",
        ] {
            let mut d = testutil::web_deployment();
            d["spec"]["template"]["spec"]["initContainers"][0]["image"] = json!(image);
            let e = run_rule("image-tag", &d, Tier::Production);
            assert_eq!(e.findings.len(), 1, "{image}");
            let f = &e.findings[0];
            assert_eq!(f.path, "/spec/template/spec/initContainers/0/image");
            assert_eq!(f.container.as_deref(), Some("migrate"));
            assert_eq!(
                f.message,
                format!("image tag (container \"migrate\" must pin image {image:?} to a tag other than latest or to a digest)")
            );
        }
    }

    #[test]
    fn not_required_below_production() {
        let mut pod = testutil::bare_pod();
        pod["spec"]["containers"][0]["image"] = json!("redis");
        let ctx = crate::policy::Context::new(Tier::Foundation, crate::policy::Mode::Enforce);
        let engine = crate::policy::Engine::new(crate::policy::PolicyConfig::default());
        let e = engine
            .evaluate(&pod, &ctx, &crate::policy::Options::default())
            .unwrap();
        assert!(e.findings.iter().all(|f| f.rule != "image-tag"));
    }
}
