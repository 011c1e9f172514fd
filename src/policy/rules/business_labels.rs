//! `business-labels`: `team`, `environment` and `cost-center` labels.
use super::prelude::*;
use serde_json::{json, Value};

use crate::policy::fixutil;

pub static RULE: Rule = Rule {
    id: "business-labels",
    tier: Tier::Enterprise,
    pss: None,
    summary: "objects carry team, environment and cost-center labels",
    doc: "At enterprise scale someone must be paged for every workload, every cost must \
land on a budget, and production must be told apart from staging without guessing from \
names. Set the `team`, `environment` and `cost-center` labels on the object's \
`metadata.labels`. Most namespaces belong to one team, environment and cost center, so \
the fix copies each missing label from the namespace's labels when the namespace has \
it (a label the object already has is never changed); a label the namespace does not \
have either stays a finding: label the namespace, or the object. \
Safety: it only adds labels the namespace already carries; it never changes one.",
    check: Check::Object(Kinds::Workloads, check),
    fix: Fix::Safe {
        summary: "copy missing team/environment/cost-center labels from the namespace",
        apply: FixFn::Object(fix),
        cel: Some(fix_cel),
    },
    cel: Cel::Findings(cel),
};

/// The check reads the object's own labels only (the namespace's matter
/// to the fix, which runs before any validation: a MutatingAdmissionPolicy
/// or the mutating webhook).
fn cel(_cx: &CelCtx<'_>) -> String {
    format!(
        "{}.filter(k, !(k in variables.obj.metadata.?labels.orValue({{}}))).map(k, \
         'business labels (metadata.labels must set ' + k + ')')",
        cel::list(&LABELS)
    )
}

const LABELS: [&str; 3] = ["team", "environment", "cost-center"];

/// The fix as CEL: each label the object lacks and its namespace has,
/// copied (a missing labels map added whole). Its matchCondition reads the
/// object alone (the labels it lacks); the patch reads the namespace.
fn fix_cel(p: &PatchCtx<'_>) -> cel::CelPatch {
    let ns = "(namespaceObject != null ? namespaceObject.metadata.?labels.orValue({}) : {})";
    let own = "object.metadata.?labels.orValue({})";
    let entries: Vec<String> = LABELS
        .iter()
        .map(|k| {
            let k = lit(k);
            format!(
                "?{k}: !({k} in {own}) && {k} in variables.business_labels_ns ? \
                 optional.of(string(variables.business_labels_ns[{k}])) : optional.none()"
            )
        })
        .collect();
    let add = "variables.business_labels_add";
    let each = cel::patch_add("'/metadata/labels/' + k", &format!("{add}[k]"));
    cel::CelPatch {
        when: format!("{}.exists(k, !(k in {own}))", cel::list(&LABELS)),
        patch: if p.is_ensured(cel::Field::Labels) {
            // An earlier part of the patch has added the map if missing.
            format!("{add}.map(k, {each})")
        } else {
            format!(
                "object.metadata.?labels.hasValue() ? {add}.map(k, {each}) : size({add}) > 0 ? \
                 [{}] : []",
                cel::patch_add("'/metadata/labels'", add)
            )
        },
        variables: vec![
            ("business_labels_ns".to_string(), ns.to_string()),
            (
                "business_labels_add".to_string(),
                format!("{{{}}}", entries.join(", ")),
            ),
        ],
        writes: vec![cel::Field::Labels],
        writes_where: vec![(cel::Field::Labels, format!("size({add}) > 0"))],
        ..Default::default()
    }
}

fn check(t: &Target<'_>, r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    let labels = t.meta.labels.as_ref();
    for key in LABELS {
        if labels.is_some_and(|l| l.contains_key(key)) {
            continue;
        }
        let v = Violation::new(
            format!("/metadata/labels/{}", fixutil::escape(key)),
            format!("business labels (metadata.labels must set {key})"),
        );
        // The fix copies from the namespace; what it does not carry, the
        // fix cannot add (and says so).
        out.push(if r.ctx.namespace_labels.contains_key(key) {
            v
        } else {
            v.declined("the namespace has no such label to copy")
        });
    }
    Ok(())
}

fn fix(t: &Target<'_>, r: &RuleCtx<'_>, obj: &mut Value) -> bool {
    let labels = t.meta.labels.as_ref();
    let mut changed = false;
    for key in LABELS {
        if labels.is_some_and(|l| l.contains_key(key)) {
            continue;
        }
        if let Some(v) = r.ctx.namespace_labels.get(key) {
            changed |= fixutil::set_default(obj, "/metadata/labels", key, json!(v));
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use crate::policy::rules::testutil::{self, assert_fix_sound_with, run_rule, run_rule_with};
    use crate::policy::{Context, Mode, Tier};
    use serde_json::json;

    fn ns_ctx(labels: &[(&str, &str)]) -> Context {
        let mut ctx = Context::new(Tier::Enterprise, Mode::Enforce);
        ctx.namespace = Some("shop".into());
        ctx.namespace_labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ctx
    }

    #[test]
    fn labelled_objects_pass() {
        let mut d = testutil::web_deployment();
        d["metadata"]["labels"]["team"] = json!("storefront");
        d["metadata"]["labels"]["environment"] = json!("prod");
        d["metadata"]["labels"]["cost-center"] = json!("cc-1042");
        assert!(run_rule("business-labels", &d, Tier::Enterprise)
            .findings
            .is_empty());
    }

    #[test]
    fn missing_labels_fail() {
        let mut pod = testutil::bare_pod();
        pod["metadata"]["labels"]["team"] = json!("platform");
        let e = run_rule("business-labels", &pod, Tier::Enterprise);
        let got: Vec<_> = e
            .findings
            .iter()
            .map(|f| (f.path.as_str(), f.message.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "/metadata/labels/environment",
                    "business labels (metadata.labels must set environment); not fixed: the namespace has no such label to copy"
                ),
                (
                    "/metadata/labels/cost-center",
                    "business labels (metadata.labels must set cost-center); not fixed: the namespace has no such label to copy"
                ),
            ]
        );
        assert!(
            e.patch.0.is_empty(),
            "nothing to copy from an unlabelled namespace"
        );
    }

    #[test]
    fn fix_copies_from_the_namespace_without_overriding() {
        let ctx = ns_ctx(&[
            ("team", "payments"),
            ("environment", "prod"),
            ("cost-center", "cc-7"),
            ("kubernetes.io/metadata.name", "shop"),
        ]);
        let mut d = testutil::web_deployment();
        d["metadata"]["labels"]["team"] = json!("storefront");
        let fixed = assert_fix_sound_with("business-labels", &d, &ctx, "");
        assert_eq!(
            fixed["metadata"]["labels"],
            json!({"app": "web", "team": "storefront", "environment": "prod", "cost-center": "cc-7"})
        );
        // Pod template labels are not touched.
        assert_eq!(
            fixed["spec"]["template"]["metadata"],
            d["spec"]["template"]["metadata"]
        );
        for obj in [
            testutil::statefulset_db(),
            testutil::cronjob(),
            testutil::daemonset_agent(),
            testutil::bare_pod(),
        ] {
            assert_fix_sound_with("business-labels", &obj, &ctx, "");
        }
        // A label the namespace lacks stays a finding.
        let ctx = ns_ctx(&[("team", "payments")]);
        let e = run_rule_with("business-labels", &testutil::bare_pod(), &ctx, "");
        let fixed = e.fixed.unwrap();
        assert_eq!(fixed["metadata"]["labels"]["team"], "payments");
        let again = run_rule_with("business-labels", &fixed, &ctx, "");
        assert_eq!(again.findings.len(), 2);
        assert!(again.patch.0.is_empty());
    }
}
