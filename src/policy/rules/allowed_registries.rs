//! `allowed-registries`: images come from the registries the config allows.
use super::image_tag::ImageRef;
use super::prelude::*;

pub static RULE: Rule = Rule {
    id: "allowed-registries",
    tier: Tier::Enterprise,
    pss: None,
    summary: "images come from a registry in registries.allowed",
    doc: "Every registry a cluster pulls from is part of its supply chain: an image from \
an unvetted registry bypasses scanning, signing and mirroring, and a typo-squatted \
Docker Hub name is one letter away. List the registries (or registry paths) you trust \
under `registries.allowed` in the config, e.g. `ghcr.io/acme/` or `registry.k8s.io`; \
each entry is a prefix of the fully qualified image name matched on a path boundary \
(`ghcr.io/acme` allows `ghcr.io/acme/web` but not `ghcr.io/acme-evil/web`). Docker Hub \
short names are expanded first (`nginx` is `docker.io/library/nginx`, `index.docker.io` \
is `docker.io`). The rule is inactive while the list is empty. There is no automatic \
fix: mirror the image into an allowed registry and point the manifest at the mirror.",
    check: Check::Pod(check),
    fix: Fix::None,
    cel: Cel::Findings(cel),
};

/// Whether the fully qualified `name` lies under the allow-list entry `prefix`.
pub fn allowed_by(name: &str, prefix: &str) -> bool {
    let Some(p) = normalise_entry(prefix) else {
        return false;
    };
    match name.strip_prefix(p.as_str()) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// An allow-list entry as names are compared with it: trimmed, without
/// trailing `/`, its registry normalised like an image's; `None` when
/// nothing is left.
fn normalise_entry(prefix: &str) -> Option<String> {
    let p = prefix.trim().trim_end_matches('/');
    if p.is_empty() {
        return None;
    }
    Some(match p.split_once('/') {
        Some((host, rest)) => format!("{}/{rest}", normalise_host(host)),
        None => normalise_host(p),
    })
}

fn normalise_host(host: &str) -> String {
    let h = host.to_ascii_lowercase();
    if h == "index.docker.io" || h == "registry-1.docker.io" {
        "docker.io".to_string()
    } else {
        h
    }
}

/// How many allow-list entries a message names.
const MAX_SHOWN: usize = 3;

/// The allow-list as the messages show it.
fn shown(allowed: &[String]) -> String {
    let mut shown = allowed
        .iter()
        .take(MAX_SHOWN)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if allowed.len() > MAX_SHOWN {
        shown.push_str(", …");
    }
    shown
}

fn check(pod: &PodTemplate, r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    let allowed = &r.config.registries.allowed;
    if allowed.is_empty() {
        return Ok(());
    }
    // Keep messages short enough for a kubectl warning line.
    let shown = shown(allowed);
    for c in pod.containers() {
        let Some(image) = c.image else { continue };
        let name = ImageRef::parse(image).full_name();
        if allowed.iter().any(|p| allowed_by(&name, p)) {
            continue;
        }
        out.push(
            Violation::new(
                format!("{}/image", c.path),
                format!(
                    "allowed registries (container {:?} image {image:?} is {name}, which must be under one of: {})",
                    c.name,
                    shown
                ),
            )
            .in_container(c.name),
        );
    }
    Ok(())
}

/// CEL: the findings. Each container with an image becomes
/// `[name, image, full name]`, the full name built in steps as
/// [`ImageRef::parse`] and [`ImageRef::full_name`] build it (CEL has no
/// local bindings: each step is a `map`); the allow-list is normalised here.
fn cel(cx: &CelCtx<'_>) -> String {
    let allowed = &cx.config.registries.allowed;
    if allowed.is_empty() {
        return "[]".to_string();
    }
    let entries: Vec<String> = allowed.iter().filter_map(|p| normalise_entry(p)).collect();
    format!(
        "variables.containers.filter(c, c.?image.hasValue())\
         .map(c, [string(c.name), string(c.image), c.image.trim().split('@')[0]])\
         .map(t, t[2].matches('{registry}') ? [t[0], t[1], \
         t[2].substring(0, t[2].indexOf('/')).lowerAscii(), t[2].substring(t[2].indexOf('/') + 1)] \
         : [t[0], t[1], 'docker.io', t[2]])\
         .map(t, [t[0], t[1], t[2] in ['index.docker.io', 'registry-1.docker.io'] ? 'docker.io' : t[2], \
         t[3].lastIndexOf(':') >= 0 ? t[3].substring(0, t[3].lastIndexOf(':')) : t[3]])\
         .map(t, [t[0], t[1], t[2] == 'docker.io' && !t[3].contains('/') ? \
         'docker.io/library/' + t[3] : t[2] + '/' + t[3]])\
         .filter(t, !{entries}.exists(p, t[2] == p || t[2].startsWith(p + '/')))\
         .map(t, 'allowed registries (container \"' + t[0] + '\" image \"' + t[1] + '\" is ' + \
         t[2] + ', which must be under one of: ' + {shown} + ')')",
        registry = super::image_tag::REGISTRY_RE,
        entries = cel::list(&entries),
        shown = lit(&shown(allowed)),
    )
}

#[cfg(test)]
mod tests {
    use super::allowed_by;
    use crate::policy::rules::testutil::{self, run_rule_with};
    use crate::policy::{Context, Mode, Tier};
    use serde_json::json;

    const ALLOW: &str =
        "registries:\n  allowed: [\"ghcr.io/acme/\", \"registry.k8s.io\", docker.io/library]\n";

    #[test]
    fn prefixes_match_on_path_boundaries() {
        assert!(allowed_by("ghcr.io/acme/web", "ghcr.io/acme/"));
        assert!(allowed_by("ghcr.io/acme/web", "ghcr.io/acme"));
        assert!(!allowed_by("ghcr.io/acme-evil/web", "ghcr.io/acme"));
        assert!(!allowed_by("registry.k8s.io.evil.com/x", "registry.k8s.io"));
        assert!(allowed_by("docker.io/library/nginx", "index.docker.io"));
        assert!(allowed_by("registry.local:5000/app", "registry.local:5000"));
        assert!(!allowed_by(
            "registry.local:5001/app",
            "registry.local:5000"
        ));
        assert!(!allowed_by("ghcr.io/acme/web", ""));
    }

    #[test]
    fn inactive_without_an_allow_list() {
        let ctx = Context::new(Tier::Enterprise, Mode::Enforce);
        let e = run_rule_with("allowed-registries", &testutil::bare_pod(), &ctx, "");
        assert!(e.findings.is_empty());
    }

    #[test]
    fn allowed_images_pass_and_short_names_normalise() {
        let ctx = Context::new(Tier::Enterprise, Mode::Enforce);
        // web uses ghcr.io/acme/*, the bare pod uses `redis:7.2` (docker.io/library/redis).
        for obj in [testutil::web_deployment(), testutil::bare_pod()] {
            let e = run_rule_with("allowed-registries", &obj, &ctx, ALLOW);
            assert!(e.findings.is_empty(), "{:?}", e.findings);
        }
    }

    #[test]
    fn long_allow_lists_are_shortened_in_messages() {
        let ctx = Context::new(Tier::Enterprise, Mode::Enforce);
        let cfg = "registries:\n  allowed: [a.io, b.io, c.io, d.io]\n";
        let e = run_rule_with("allowed-registries", &testutil::bare_pod(), &ctx, cfg);
        assert_eq!(
            e.findings[0].message,
            "allowed registries (container \"redis\" image \"redis:7.2\" is \
docker.io/library/redis, which must be under one of: a.io, b.io, c.io, …)"
        );
    }

    #[test]
    fn other_registries_fail() {
        let ctx = Context::new(Tier::Enterprise, Mode::Enforce);
        let mut d = testutil::web_deployment();
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("bitnami/nginx:1.27");
        let e = run_rule_with("allowed-registries", &d, &ctx, ALLOW);
        assert_eq!(e.findings.len(), 1);
        let f = &e.findings[0];
        assert_eq!(f.path, "/spec/template/spec/containers/0/image");
        assert_eq!(f.container.as_deref(), Some("app"));
        assert_eq!(
            f.message,
            "allowed registries (container \"app\" image \"bitnami/nginx:1.27\" is \
docker.io/bitnami/nginx, which must be under one of: ghcr.io/acme/, registry.k8s.io, docker.io/library)"
        );
    }
}
