//! `automount-service-account-token`: pods opt in to an API token explicitly.
use super::prelude::*;
use serde_json::{json, Value};

use crate::policy::{fixutil, Fact};

pub static RULE: Rule = Rule {
    id: "automount-service-account-token",
    tier: Tier::Enterprise,
    pss: None,
    summary: "pods set automountServiceAccountToken (false unless they need the API)",
    doc: "By default every pod gets a token for its service account mounted at \
`/var/run/secrets/kubernetes.io/serviceaccount`, and most applications never talk to \
the Kubernetes API: the token only helps an attacker who gets code execution move \
sideways into the cluster. Pods must say what they want: set \
`automountServiceAccountToken: false` in the pod spec, or `true` when the workload \
really calls the API (an explicit `true` is the opt-in and passes; operators, \
controllers and agents need it). Leaving the field unset is the finding, unless the pod's \
ServiceAccount (`serviceAccountName`, else `default`) sets \
`automountServiceAccountToken: false`: then the pod gets no token and need not repeat it \
(the ServiceAccount from the input offline, from the cluster caches online). The fix is \
opt-in (`rules.automount-service-account-token.fix: on`) because a workload that does \
use the API breaks without its token: it sets `false` where the field is unset. \
Safety: opt-in, because a workload that calls the API needs its token; it never changes an explicit value.",
    check: Check::Pod(check),
    fix: Fix::OptIn {
        summary: "set automountServiceAccountToken: false where unset",
        apply: FixFn::Pod(fix),
    },
    cel: Cel::Facts(cel),
};

/// The check in CEL: the pod's ServiceAccount from the namespace's facts.
fn cel(_cx: &CelCtx<'_>) -> String {
    let pod = "variables.pod";
    format!(
        "{pod}.?automountServiceAccountToken.hasValue() || {FACTS}.serviceAccounts.exists(a, \
         a.name == ({pod}.?serviceAccountName.hasValue() ? ({pod}.serviceAccountName != '' ? \
         {pod}.serviceAccountName : 'default') : {pod}.?serviceAccount.orValue('') != '' ? \
         {pod}.serviceAccount : 'default') && a.?automount == optional.of(false)) ? [] : \
         ['automount service account token (pod must set automountServiceAccountToken=false, or \
         true to opt in)']"
    )
}

/// The pod's ServiceAccount turns the automount off (and the pod does not
/// turn it back on): the pod gets no token, as it would saying `false`.
fn account_says_no(pod: &PodTemplate, r: &RuleCtx<'_>) -> bool {
    let Fact::Known(accounts) = &r.ctx.facts.service_accounts else {
        return false;
    };
    let name = pod
        .spec
        .service_account_name
        .as_deref()
        .or(pod.spec.service_account.as_deref())
        .filter(|n| !n.is_empty())
        .unwrap_or("default");
    accounts
        .iter()
        .any(|a| a.name == name && a.automount == Some(false))
}

fn check(pod: &PodTemplate, r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    if pod.spec.automount_service_account_token.is_none() && !account_says_no(pod, r) {
        out.push(Violation::new(
            format!("{}/automountServiceAccountToken", pod.spec_path),
            "automount service account token (pod must set automountServiceAccountToken=false, or true to opt in)",
        ));
    }
    Ok(())
}

fn fix(pod: &PodTemplate, r: &RuleCtx<'_>, obj: &mut Value) -> bool {
    if pod.spec.automount_service_account_token.is_some() || account_says_no(pod, r) {
        return false;
    }
    fixutil::set_default(
        obj,
        pod.spec_path,
        "automountServiceAccountToken",
        json!(false),
    )
}

#[cfg(test)]
mod tests {
    use crate::policy::rules::testutil::{self, assert_fix_sound, run_rule};
    use crate::policy::Tier;
    use serde_json::json;

    #[test]
    fn explicit_false_or_true_pass() {
        for v in [false, true] {
            let mut ds = testutil::daemonset_agent();
            ds["spec"]["template"]["spec"]["automountServiceAccountToken"] = json!(v);
            let e = run_rule("automount-service-account-token", &ds, Tier::Enterprise);
            assert!(e.findings.is_empty());
            assert!(e.patch.0.is_empty());
        }
    }

    #[test]
    fn a_service_account_that_says_no_is_enough() {
        use crate::policy::context::SaFact;
        use crate::policy::{Context, Fact, Mode};
        let cj = testutil::cronjob();
        let sa = cj
            .pointer("/spec/jobTemplate/spec/template/spec/serviceAccountName")
            .and_then(|v| v.as_str())
            .unwrap_or("default")
            .to_string();
        let ctx = |automount: Option<bool>, name: &str| {
            let mut c = Context::new(Tier::Enterprise, Mode::Enforce);
            std::sync::Arc::make_mut(&mut c.facts).service_accounts = Fact::Known(vec![SaFact {
                name: name.to_string(),
                automount,
            }]);
            c
        };
        let run =
            |c: &Context| testutil::run_rule_with("automount-service-account-token", &cj, c, "");
        let e = run(&ctx(Some(false), &sa));
        assert!(e.findings.is_empty(), "{:?}", e.findings);
        assert!(e.patch.0.is_empty());
        // An account that allows it, or another account, does not count.
        assert_eq!(run(&ctx(Some(true), &sa)).findings.len(), 1);
        assert_eq!(run(&ctx(None, &sa)).findings.len(), 1);
        assert_eq!(run(&ctx(Some(false), "other")).findings.len(), 1);
    }

    #[test]
    fn unset_fails() {
        let e = run_rule(
            "automount-service-account-token",
            &testutil::cronjob(),
            Tier::Enterprise,
        );
        assert_eq!(e.findings.len(), 1);
        let f = &e.findings[0];
        assert_eq!(
            f.path,
            "/spec/jobTemplate/spec/template/spec/automountServiceAccountToken"
        );
        assert_eq!(f.container, None);
        assert_eq!(
            f.message,
            "automount service account token (pod must set automountServiceAccountToken=false, or true to opt in)"
        );
    }

    #[test]
    fn fix_sets_false() {
        for obj in testutil::workloads() {
            let fixed = assert_fix_sound("automount-service-account-token", &obj, Tier::Enterprise);
            let api_version = obj["apiVersion"].as_str().unwrap();
            let spec = crate::policy::kinds::workload_of(
                crate::policy::kinds::group_of(api_version),
                obj["kind"].as_str().unwrap(),
            )
            .unwrap()
            .spec;
            assert_eq!(
                fixed.pointer(&format!("{spec}/automountServiceAccountToken")),
                Some(&json!(false))
            );
        }
    }
}
