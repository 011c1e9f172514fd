//! `sandboxed-runtime`: tenants' pods run in a sandbox.
use super::prelude::*;

pub static RULE: Rule = Rule {
    id: "sandboxed-runtime",
    tier: Tier::Hyperscale,
    pss: None,
    summary: "pods in tenant namespaces use a sandboxed RuntimeClass",
    doc: "At hyperscale one cluster runs many tenants' code side by side, and the Linux \
kernel is the only wall between them: one container escape reaches every tenant on the \
node. A sandboxed runtime (gVisor, Kata Containers) gives each pod its own kernel. A \
namespace labelled `tenancy.label` (default `tiergate.io/tenant`, any value but `false`) \
holds a tenant's code, and its pods must set `spec.runtimeClassName` to one of \
`tenancy.runtimeClasses` (default `gvisor`, `kata`, `kata-qemu`, `kata-clh`, `kata-fc`). \
Other namespaces (the platform's own) are not judged. When the namespace's labels are not \
known the rule says so in a warning. No fix: a RuntimeClass must exist on the nodes, and \
some workloads do not run under a sandbox.",
    check: Check::Pod(check),
    fix: Fix::None,
    cel: Cel::Findings(cel),
};

/// The apiserver gives a policy the namespace (`namespaceObject`), so the
/// tenant label is read there; the classes come from the config.
fn cel(cx: &CelCtx<'_>) -> String {
    let t = &cx.config.tenancy;
    let class = "variables.pod.?runtimeClassName.orValue('')";
    format!(
        "{tenant} != 'false' && !({class} in {classes}) ? [{msg} + ({class} == '' ? 'none' : \
         {got}) + ')'] : []",
        tenant = ns_label_or(&t.label, "false"),
        classes = cel::list(&t.runtime_classes),
        msg = lit(&format!(
            "sandboxed runtime (pod in a tenant namespace must set runtimeClassName to one of \
             {}, got ",
            t.runtime_classes.join(", ")
        )),
        got = quoted(class),
    )
}

fn check(pod: &PodTemplate, r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    let tenancy = &r.config.tenancy;
    if !r.ctx.namespace_labels_known {
        out.push(Violation::namespace_labels_unknown(
            "tenant namespace",
            &format!("whether it is a tenant's ({})", tenancy.label),
        ));
        return Ok(());
    }
    let tenant = r
        .ctx
        .namespace_labels
        .get(&tenancy.label)
        .is_some_and(|v| v != "false");
    if !tenant {
        return Ok(());
    }
    let class = pod.spec.runtime_class_name.as_deref().unwrap_or("");
    if !tenancy.runtime_classes.iter().any(|c| c == class) {
        let got = if class.is_empty() {
            "none".to_string()
        } else {
            format!("{class:?}")
        };
        out.push(Violation::new(
            format!("{}/runtimeClassName", pod.spec_path),
            format!(
                "sandboxed runtime (pod in a tenant namespace must set runtimeClassName to one \
                 of {}, got {got})",
                tenancy.runtime_classes.join(", ")
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::policy::rules::testutil::{self, run_rule_with};
    use crate::policy::{Action, Context, Tier};
    use serde_json::json;

    fn ctx(labels: Option<&[(&str, &str)]>) -> Context {
        testutil::in_namespace_labelled(Tier::Hyperscale, labels)
    }

    #[test]
    fn tenant_pods_need_a_sandbox_others_are_not_judged() {
        let mut d = testutil::web_deployment();
        let run = |d: &serde_json::Value, c: &Context, cfg: &str| {
            run_rule_with("sandboxed-runtime", d, c, cfg).findings
        };
        let tenant = ctx(Some(&[("tiergate.io/tenant", "acme")]));
        let f = run(&d, &tenant, "");
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].path, "/spec/template/spec/runtimeClassName");
        assert_eq!(
            f[0].message,
            "sandboxed runtime (pod in a tenant namespace must set runtimeClassName to one of \
             gvisor, kata, kata-qemu, kata-clh, kata-fc, got none)"
        );
        d["spec"]["template"]["spec"]["runtimeClassName"] = json!("gvisor");
        assert!(run(&d, &tenant, "").is_empty());
        d["spec"]["template"]["spec"]["runtimeClassName"] = json!("runc");
        assert!(run(&d, &tenant, "")[0].message.ends_with("got \"runc\")"));
        // The platform's own namespaces, and `false`, are not tenants.
        assert!(run(&d, &ctx(Some(&[])), "").is_empty());
        assert!(run(&d, &ctx(Some(&[("tiergate.io/tenant", "false")])), "").is_empty());
        // Unknown labels warn.
        assert_eq!(run(&d, &ctx(None), "")[0].action, Action::Warn);
        // The label and the classes come from the config.
        let cfg = "tenancy: {label: example.com/customer, runtimeClasses: [runc]}\n";
        let c = ctx(Some(&[("example.com/customer", "x")]));
        assert!(run(&d, &c, cfg).is_empty());
    }
}
