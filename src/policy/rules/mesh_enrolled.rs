//! `mesh-enrolled`: workloads talk mTLS through the cluster's service mesh.
use super::prelude::*;

use crate::policy::config::MeshKind;

pub static RULE: Rule = Rule {
    id: "mesh-enrolled",
    tier: Tier::MultiCluster,
    pss: None,
    summary: "the namespace is enrolled in the service mesh (mTLS) and no pod opts out",
    doc: "Traffic between clusters crosses networks nobody in the team controls; the \
reference's tier 4 asks for service-mesh mTLS between workloads, which only holds when every \
namespace is enrolled and no pod slips out of it. The mesh is `mesh.kind` in the config \
(default `istio`). Istio: the namespace carries `istio-injection: enabled`, an \
`istio.io/rev` label, or `istio.io/dataplane-mode: ambient`; a pod opts out with \
`sidecar.istio.io/inject: \"false\"` (label or annotation) or `istio.io/dataplane-mode: \
none`. Linkerd: the pod template is annotated `linkerd.io/inject: enabled` (Linkerd's \
namespace annotation is not in the labels a webhook is given, so set it on the template, \
or exempt the namespace with a reason); `linkerd.io/inject: disabled` opts out. Cilium: \
mutual authentication is required by CiliumNetworkPolicies, which admission of a workload \
does not see, so only opt-outs are checked (the `io.cilium.mtls/disabled` annotation is \
a finding). When the namespace's labels are not known (the CLI was not given its Namespace, \
or the webhook's cache does not have it) the enrolment is reported as unknown. No fix: \
enrolling a namespace restarts nothing by itself, but the next rollout puts every pod \
through the mesh, which only the owner can plan.",
    check: Check::Pod(check),
    fix: Fix::None,
    cel: Cel::Findings(cel),
};

/// The check's two steps in CEL: an opt-out first, then the enrolment (the
/// namespace's labels are the apiserver's `namespaceObject`).
fn cel(cx: &CelCtx<'_>) -> String {
    let (opt_out, enrolled) = match cx.config.mesh.kind {
        MeshKind::Istio => (
            format!(
                "{} || {}",
                pod_tag_is("sidecar.istio.io/inject", "false"),
                pod_tag_is("istio.io/dataplane-mode", "none")
            ),
            format!(
                "{} == 'enabled' || {} || {} == 'ambient'",
                ns_label_or("istio-injection", ""),
                ns_has_label("istio.io/rev"),
                ns_label_or("istio.io/dataplane-mode", "")
            ),
        ),
        MeshKind::Linkerd => (
            pod_tag_is("linkerd.io/inject", "disabled"),
            pod_tag_is("linkerd.io/inject", "enabled"),
        ),
        MeshKind::Cilium => (pod_has_tag("io.cilium.mtls/disabled"), "true".to_string()),
    };
    let what = match cx.config.mesh.kind {
        MeshKind::Istio => {
            "the namespace must be labelled istio-injection=enabled, istio.io/rev or \
             istio.io/dataplane-mode=ambient"
        }
        _ => "the pod template must be annotated linkerd.io/inject=enabled",
    };
    format!(
        "({opt_out}) ? [{}] : !({enrolled}) ? [{}] : []",
        lit("mesh opt-out (pod must not opt out of the service mesh's mTLS)"),
        lit(&format!("mesh enrolment ({what})"))
    )
}

fn check(pod: &PodTemplate, r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    let kind = r.config.mesh.kind;
    let tag = |key: &str| {
        let labels = pod.meta.labels.as_ref().and_then(|l| l.get(key));
        let annotations = pod.meta.annotations.as_ref().and_then(|a| a.get(key));
        labels.or(annotations).map(String::as_str)
    };
    let meta = pod.meta_path;
    let opt_out = match kind {
        MeshKind::Istio => {
            if tag("sidecar.istio.io/inject") == Some("false") {
                Some(format!("{meta}/annotations/sidecar.istio.io~1inject"))
            } else if tag("istio.io/dataplane-mode") == Some("none") {
                Some(format!("{meta}/labels/istio.io~1dataplane-mode"))
            } else {
                None
            }
        }
        MeshKind::Linkerd => (tag("linkerd.io/inject") == Some("disabled"))
            .then(|| format!("{meta}/annotations/linkerd.io~1inject")),
        MeshKind::Cilium => (tag("io.cilium.mtls/disabled").is_some())
            .then(|| format!("{meta}/annotations/io.cilium.mtls~1disabled")),
    };
    if let Some(path) = opt_out {
        out.push(Violation::new(
            path,
            "mesh opt-out (pod must not opt out of the service mesh's mTLS)".to_string(),
        ));
        return Ok(());
    }
    let ns = &r.ctx.namespace_labels;
    let enrolled = match kind {
        MeshKind::Istio => {
            if !r.ctx.namespace_labels_known {
                out.push(Violation::namespace_labels_unknown(
                    "mesh enrolment",
                    "whether it is enrolled in the mesh",
                ));
                return Ok(());
            }
            ns.get("istio-injection").map(String::as_str) == Some("enabled")
                || ns.contains_key("istio.io/rev")
                || ns.get("istio.io/dataplane-mode").map(String::as_str) == Some("ambient")
        }
        MeshKind::Linkerd => tag("linkerd.io/inject") == Some("enabled"),
        MeshKind::Cilium => true,
    };
    if !enrolled {
        let (path, what) = match kind {
            MeshKind::Istio => (
                "/metadata/namespace".to_string(),
                "the namespace must be labelled istio-injection=enabled, istio.io/rev or \
                 istio.io/dataplane-mode=ambient",
            ),
            _ => (
                format!("{meta}/annotations/linkerd.io~1inject"),
                "the pod template must be annotated linkerd.io/inject=enabled",
            ),
        };
        out.push(Violation::new(path, format!("mesh enrolment ({what})")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::policy::rules::testutil::{self, run_rule_with};
    use crate::policy::{Action, Context, Tier};
    use serde_json::json;

    fn ctx(labels: Option<&[(&str, &str)]>) -> Context {
        testutil::in_namespace_labelled(Tier::MultiCluster, labels)
    }

    fn messages(obj: &serde_json::Value, c: &Context, config: &str) -> Vec<(Action, String)> {
        run_rule_with("mesh-enrolled", obj, c, config)
            .findings
            .into_iter()
            .map(|f| (f.action, f.message))
            .collect()
    }

    #[test]
    fn istio_namespaces_are_enrolled_by_label_and_pods_may_not_opt_out() {
        let d = testutil::web_deployment();
        for labels in [
            &[("istio-injection", "enabled")][..],
            &[("istio.io/rev", "1-24")],
            &[("istio.io/dataplane-mode", "ambient")],
        ] {
            assert!(
                messages(&d, &ctx(Some(labels)), "").is_empty(),
                "{labels:?}"
            );
        }
        let f = messages(&d, &ctx(Some(&[])), "");
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].0, Action::Deny);
        assert!(
            f[0].1
                .starts_with("mesh enrolment (the namespace must be labelled"),
            "{f:?}"
        );
        // Unknown labels warn, never deny.
        let f = messages(&d, &ctx(None), "");
        assert_eq!(f[0].0, Action::Warn);
        // An opt-out is a finding even in an enrolled namespace.
        let mut out = d.clone();
        out["spec"]["template"]["metadata"]["annotations"] =
            json!({"sidecar.istio.io/inject": "false"});
        let f = messages(&out, &ctx(Some(&[("istio-injection", "enabled")])), "");
        assert_eq!(f.len(), 1);
        assert!(f[0].1.starts_with("mesh opt-out"), "{f:?}");
    }

    #[test]
    fn linkerd_and_cilium_follow_their_own_conventions() {
        let linkerd = "mesh: {kind: linkerd}\n";
        let mut d = testutil::web_deployment();
        let f = messages(&d, &ctx(None), linkerd);
        assert_eq!(f.len(), 1);
        assert!(f[0].1.contains("linkerd.io/inject=enabled"), "{f:?}");
        d["spec"]["template"]["metadata"]["annotations"] = json!({"linkerd.io/inject": "enabled"});
        assert!(messages(&d, &ctx(None), linkerd).is_empty());
        d["spec"]["template"]["metadata"]["annotations"] = json!({"linkerd.io/inject": "disabled"});
        assert!(messages(&d, &ctx(None), linkerd)[0]
            .1
            .starts_with("mesh opt-out"));

        let cilium = "mesh: {kind: cilium}\n";
        let d = testutil::web_deployment();
        assert!(messages(&d, &ctx(None), cilium).is_empty());
    }
}
