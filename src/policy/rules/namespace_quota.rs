//! `namespace-quota`: the namespace has a ResourceQuota and a LimitRange.
use super::prelude::*;
use crate::policy::rules::pdb::in_namespace;
use crate::policy::Fact;

pub static RULE: Rule = Rule {
    id: "namespace-quota",
    tier: Tier::Production,
    pss: None,
    summary: "the namespace has a ResourceQuota and a LimitRange",
    doc: "A namespace without a ResourceQuota can consume the whole cluster: one runaway \
HPA or a bad loop creating Jobs starves every other team. A LimitRange gives containers \
that forget their requests and limits sane defaults and caps what a single pod may ask for. \
Workloads in a production namespace therefore require both a ResourceQuota and a LimitRange \
in that namespace; the finding names the one that is missing. Create them with the \
namespace (for example from your namespace template or Helm chart). When the namespace's \
quotas or limit ranges are not known (the CLI was not given them, or the webhook's cache has \
not synced) the rule says so in a warning instead of guessing.",
    check: Check::Object(Kinds::Workloads, check),
    fix: Fix::None,
    cel: Cel::Facts(cel),
};

/// The check in CEL, from the namespace's facts.
fn cel(_cx: &CelCtx<'_>) -> String {
    let msg = |what: &str, article: &str| {
        format!("['no {what} (' + {IN_NAMESPACE} + ' must have {article})']")
    };
    format!(
        "size({FACTS}.resourceQuotas) == 0 && size({FACTS}.limitRanges) == 0 ? {both} : \
         size({FACTS}.resourceQuotas) == 0 ? {quota} : size({FACTS}.limitRanges) == 0 ? \
         {limits} : []",
        both = msg(
            "ResourceQuota and LimitRange",
            "a ResourceQuota and a LimitRange"
        ),
        quota = msg("ResourceQuota", "a ResourceQuota"),
        limits = msg("LimitRange", "a LimitRange"),
    )
}

fn check(t: &Target<'_>, r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    let facts = &r.ctx.facts;
    let mut missing = Vec::new();
    let mut unknown = Vec::new();
    for (name, fact) in [
        ("ResourceQuota", &facts.resource_quotas),
        ("LimitRange", &facts.limit_ranges),
    ] {
        match fact {
            Fact::Unknown => unknown.push(name),
            Fact::Known(v) if v.is_empty() => missing.push(name),
            Fact::Known(_) => {}
        }
    }
    let ns = in_namespace(t, r);
    if !missing.is_empty() {
        let what = missing.join(" and ");
        let article = missing
            .iter()
            .map(|m| format!("a {m}"))
            .collect::<Vec<_>>()
            .join(" and ");
        out.push(Violation::new(
            "/metadata/namespace",
            format!("no {what} ({ns} must have {article})"),
        ));
    }
    if !unknown.is_empty() {
        let what = unknown
            .iter()
            .map(|u| format!("{u}s"))
            .collect::<Vec<_>>()
            .join(" and ");
        out.push(
            Violation::new(
                "/metadata/namespace",
                format!(
                    "{what} unknown (the {what} of {ns} are not known, so whether it has them \
                     cannot be checked)"
                ),
            )
            .unknown(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::policy::rules::testutil::run_rule_with;
    use crate::policy::{Action, Context, Fact, Mode, Tier};
    use serde_json::{json, Value};

    fn pod() -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "shop"},
               "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}})
    }

    fn ctx(quotas: Fact<Vec<String>>, limits: Fact<Vec<String>>) -> Context {
        let mut c = Context::new(Tier::Production, Mode::Enforce);
        std::sync::Arc::make_mut(&mut c.facts).resource_quotas = quotas;
        std::sync::Arc::make_mut(&mut c.facts).limit_ranges = limits;
        c
    }

    fn run(c: &Context) -> Vec<(Action, String, String)> {
        run_rule_with("namespace-quota", &pod(), c, "")
            .findings
            .into_iter()
            .map(|f| (f.action, f.path, f.message))
            .collect()
    }

    #[test]
    fn quota_and_limit_range_pass() {
        let c = ctx(
            Fact::Known(vec!["compute".into()]),
            Fact::Known(vec!["defaults".into()]),
        );
        assert!(run(&c).is_empty());
    }

    #[test]
    fn missing_ones_are_named() {
        let c = ctx(Fact::Known(vec![]), Fact::Known(vec![]));
        assert_eq!(
            run(&c),
            vec![(
                Action::Deny,
                "/metadata/namespace".to_string(),
                "no ResourceQuota and LimitRange (namespace \"shop\" must have a ResourceQuota \
                 and a LimitRange)"
                    .to_string()
            )]
        );
        let c = ctx(Fact::Known(vec!["q".into()]), Fact::Known(vec![]));
        assert_eq!(
            run(&c)[0].2,
            "no LimitRange (namespace \"shop\" must have a LimitRange)"
        );
    }

    #[test]
    fn unknown_facts_warn() {
        let c = ctx(Fact::Known(vec![]), Fact::Unknown);
        let f = run(&c);
        assert_eq!(f.len(), 2);
        assert_eq!(
            f[0],
            (
                Action::Deny,
                "/metadata/namespace".to_string(),
                "no ResourceQuota (namespace \"shop\" must have a ResourceQuota)".to_string()
            )
        );
        assert_eq!(f[1].0, Action::Warn);
        assert_eq!(
            f[1].2,
            "LimitRanges unknown (the LimitRanges of namespace \"shop\" are not known, so \
             whether it has them cannot be checked)"
        );
        let f = run(&ctx(Fact::Unknown, Fact::Unknown));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].0, Action::Warn);
        assert!(f[0].2.starts_with("ResourceQuotas and LimitRanges unknown"));
    }
}
