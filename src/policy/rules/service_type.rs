//! `service-type`: no NodePort Services and no `externalIPs`.
use super::prelude::*;
use k8s_openapi::api::core::v1::Service;

pub static RULE: Rule = Rule {
    id: "service-type",
    tier: Tier::Production,
    pss: None,
    summary: "Services are not NodePort and set no externalIPs",
    doc: "A NodePort Service opens the same port on every node of the cluster, bypassing \
the Ingress, its TLS and its access control, and exposes the nodes themselves. \
`spec.externalIPs` lets any namespace claim traffic for an arbitrary IP address \
(CVE-2020-8554: a man-in-the-middle of cluster traffic). Use `ClusterIP` behind an Ingress \
or Gateway, or a `LoadBalancer` Service (the node ports a LoadBalancer allocates are an \
implementation detail of the cloud load balancer and are allowed; set \
`allocateLoadBalancerNodePorts: false` where the provider supports it), and remove \
`externalIPs`.",
    check: Check::Object(Kinds::Only(&[kinds::SERVICE]), check),
    fix: Fix::None,
    cel: Cel::Findings(cel),
};

fn check(t: &Target<'_>, _r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    let svc: Service = t.typed()?;
    let Some(spec) = svc.spec else { return Ok(()) };
    let name = t.name();
    if spec.type_.as_deref() == Some("NodePort") {
        out.push(Violation::new(
            "/spec/type",
            format!(
                "NodePort Service (Service {name:?} must not use type NodePort; use ClusterIP \
                 behind an Ingress, or a LoadBalancer)"
            ),
        ));
    }
    if spec
        .external_ips
        .as_ref()
        .is_some_and(|ips| !ips.is_empty())
    {
        out.push(Violation::new(
            "/spec/externalIPs",
            format!("externalIPs (Service {name:?} must not set spec.externalIPs)"),
        ));
    }
    Ok(())
}

fn cel(_cx: &CelCtx<'_>) -> String {
    let name = "' + variables.obj.metadata.?name.orValue(request.name) + '";
    format!(
        "(variables.obj.?spec.?type.orValue('') == 'NodePort' ? ['NodePort Service (Service \
         \"{name}\" must not use type NodePort; use ClusterIP behind an Ingress, or a \
         LoadBalancer)'] : []) + (variables.obj.?spec.?externalIPs.orValue([]).size() > 0 ? \
         ['externalIPs (Service \"{name}\" must not set spec.externalIPs)'] : [])"
    )
}

#[cfg(test)]
mod tests {
    use crate::policy::rules::testutil::run_rule;
    use crate::policy::Tier;
    use serde_json::{json, Value};

    fn svc(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": spec})
    }

    fn findings(s: &Value) -> Vec<(String, String)> {
        run_rule("service-type", s, Tier::Production)
            .findings
            .into_iter()
            .map(|f| (f.path, f.message))
            .collect()
    }

    #[test]
    fn cluster_ip_and_load_balancer_pass() {
        for spec in [
            json!({"ports": [{"port": 80}]}),
            json!({"type": "ClusterIP", "ports": [{"port": 80}], "externalIPs": []}),
            json!({"type": "LoadBalancer", "ports": [{"port": 443, "nodePort": 30443}]}),
            json!({"type": "ExternalName", "externalName": "db.example.com"}),
        ] {
            assert_eq!(findings(&svc(spec)), vec![]);
        }
    }

    #[test]
    fn node_port_and_external_ips_are_findings() {
        let s = svc(
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}],
                           "externalIPs": ["203.0.113.7"]}),
        );
        assert_eq!(
            findings(&s),
            vec![
                (
                    "/spec/type".to_string(),
                    "NodePort Service (Service \"web\" must not use type NodePort; use \
                     ClusterIP behind an Ingress, or a LoadBalancer)"
                        .to_string()
                ),
                (
                    "/spec/externalIPs".to_string(),
                    "externalIPs (Service \"web\" must not set spec.externalIPs)".to_string()
                ),
            ]
        );
    }
}
