//! `default-deny-network-policy`: the namespace has a default-deny NetworkPolicy.
use super::prelude::*;
use crate::policy::rules::pdb::in_namespace;
use crate::policy::Fact;

pub static RULE: Rule = Rule {
    id: "default-deny-network-policy",
    tier: Tier::Production,
    pss: None,
    summary: "the namespace has a default-deny ingress NetworkPolicy",
    doc: "Kubernetes networking is allow-all: without a NetworkPolicy every pod in the \
cluster can reach every other pod, so one compromised workload can talk to your database. \
A default-deny NetworkPolicy (an empty `podSelector: {}` that selects every pod, \
`policyTypes` including `Ingress`, and no ingress rules) isolates the namespace; workloads \
then get explicit allow policies for the traffic they need. Workloads in a production \
namespace require one. Add it with the namespace. When the namespace's NetworkPolicies are \
not known (the CLI was not given them, or the webhook's cache has not synced) the rule says \
so in a warning instead of guessing.",
    check: Check::Object(Kinds::Workloads, check),
    fix: Fix::None,
    cel: Cel::Facts(cel),
};

/// The check in CEL, from the namespace's facts.
fn cel(_cx: &CelCtx<'_>) -> String {
    format!(
        "size({FACTS}.defaultDenyNetworkPolicies) > 0 ? [] : ['no default-deny NetworkPolicy (' \
         + {IN_NAMESPACE} + ' must have a NetworkPolicy with podSelector {{}} that denies all \
         ingress)']"
    )
}

fn check(t: &Target<'_>, r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    let ns = in_namespace(t, r);
    match &r.ctx.facts.default_deny_policies {
        Fact::Known(v) if !v.is_empty() => {}
        Fact::Known(_) => out.push(Violation::new(
            "/metadata/namespace",
            format!(
                "no default-deny NetworkPolicy ({ns} must have a NetworkPolicy with \
                 podSelector {{}} that denies all ingress)"
            ),
        )),
        Fact::Unknown => out.push(
            Violation::new(
                "/metadata/namespace",
                format!(
                    "NetworkPolicies unknown (the NetworkPolicies of {ns} are not known, so \
                     whether it has a default-deny NetworkPolicy cannot be checked)"
                ),
            )
            .unknown(),
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::policy::rules::testutil::run_rule_with;
    use crate::policy::{Action, Context, Fact, Mode, Tier};
    use serde_json::json;

    fn run(fact: Fact<Vec<String>>) -> Vec<(Action, String, String)> {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
          "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}}}});
        let mut c = Context::new(Tier::Production, Mode::Enforce);
        c.namespace = Some("shop".into());
        std::sync::Arc::make_mut(&mut c.facts).default_deny_policies = fact;
        run_rule_with("default-deny-network-policy", &d, &c, "")
            .findings
            .into_iter()
            .map(|f| (f.action, f.path, f.message))
            .collect()
    }

    #[test]
    fn a_default_deny_policy_passes() {
        assert!(run(Fact::Known(vec!["default-deny".into()])).is_empty());
    }

    #[test]
    fn missing_policy_is_named() {
        assert_eq!(
            run(Fact::Known(vec![])),
            vec![(
                Action::Deny,
                "/metadata/namespace".to_string(),
                "no default-deny NetworkPolicy (namespace \"shop\" must have a NetworkPolicy \
                 with podSelector {} that denies all ingress)"
                    .to_string()
            )]
        );
    }

    #[test]
    fn unknown_policies_warn() {
        let f = run(Fact::Unknown);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].0, Action::Warn);
        assert_eq!(
            f[0].2,
            "NetworkPolicies unknown (the NetworkPolicies of namespace \"shop\" are not known, \
             so whether it has a default-deny NetworkPolicy cannot be checked)"
        );
    }
}
