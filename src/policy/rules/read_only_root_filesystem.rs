//! `read-only-root-filesystem`: containers mount their root filesystem read-only.
use super::prelude::*;
use serde_json::{json, Value};

use super::pss_common::is_windows;
use crate::policy::fixutil;

pub static RULE: Rule = Rule {
    id: "read-only-root-filesystem",
    tier: Tier::Production,
    pss: None,
    summary: "containers set securityContext.readOnlyRootFilesystem=true",
    doc: "A writable root filesystem lets an attacker who gets code execution drop tools, \
rewrite binaries or plant persistence inside the container, and lets the app itself \
drift from the image it was tested as. Set `securityContext.readOnlyRootFilesystem: \
true` on every container, init container and ephemeral container, and mount an \
`emptyDir` where the app really must write (`/tmp`, caches, sockets). The fix is \
opt-in (`rules.read-only-root-filesystem.fix: on`) because an app that writes to its \
root filesystem fails at run time once it is read-only: it sets `true` only where the \
field is unset and never overrides an explicit `false`, which stays a finding. Windows \
pods (`spec.os.name: windows`) are out of scope: the field is Linux-only and the \
apiserver rejects it there, so neither the check nor the fix applies to them.",
    check: Check::Pod(check),
    fix: Fix::OptIn {
        summary: "set securityContext.readOnlyRootFilesystem: true where unset",
        apply: FixFn::Pod(fix),
    },
    cel: Cel::Findings(cel),
};

fn check(pod: &PodTemplate, _r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    if is_windows(&pod.spec) {
        return Ok(());
    }
    for c in pod.containers() {
        if c.security_context.and_then(|s| s.read_only_root_filesystem) != Some(true) {
            out.push(
                Violation::new(
                    format!("{}/securityContext/readOnlyRootFilesystem", c.path),
                    format!(
                        "read-only root filesystem (container {:?} must set securityContext.readOnlyRootFilesystem=true)",
                        c.name
                    ),
                )
                .in_container(c.name),
            );
        }
    }
    Ok(())
}

fn fix(pod: &PodTemplate, _r: &RuleCtx<'_>, obj: &mut Value) -> bool {
    // Linux-only: the apiserver rejects it on Windows pods.
    if is_windows(&pod.spec) {
        return false;
    }
    let mut changed = false;
    for c in pod.containers() {
        if c.security_context
            .and_then(|s| s.read_only_root_filesystem)
            .is_none()
        {
            changed |= fixutil::set_default(
                obj,
                &format!("{}/securityContext", c.path),
                "readOnlyRootFilesystem",
                json!(true),
            );
        }
    }
    changed
}

fn cel(_cx: &CelCtx<'_>) -> String {
    format!(
        "variables.pod.?os.?name.orValue('') == 'windows' ? [] : {}",
        containers_where(
            "c.?securityContext.?readOnlyRootFilesystem.orValue(false) != true",
            &format!(
                "'read-only root filesystem (' + {WHO} + ' must set \
                 securityContext.readOnlyRootFilesystem=true)'"
            ),
        )
    )
}

#[cfg(test)]
mod tests {
    use crate::policy::rules::testutil::{self, assert_fix_sound, run_rule};
    use crate::policy::Tier;
    use serde_json::json;

    #[test]
    fn read_only_containers_pass() {
        let mut pod = testutil::bare_pod();
        pod["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] = json!(true);
        assert!(
            run_rule("read-only-root-filesystem", &pod, Tier::Production)
                .findings
                .is_empty()
        );
    }

    #[test]
    fn writable_and_unset_fail() {
        let mut d = testutil::web_deployment();
        d["spec"]["template"]["spec"]["containers"][0]["securityContext"]
            ["readOnlyRootFilesystem"] = json!(false);
        let e = run_rule("read-only-root-filesystem", &d, Tier::Production);
        // migrate, proxy (init) and app.
        assert_eq!(e.findings.len(), 3);
        let f = &e.findings[2];
        assert_eq!(
            f.path,
            "/spec/template/spec/containers/0/securityContext/readOnlyRootFilesystem"
        );
        assert_eq!(f.container.as_deref(), Some("app"));
        assert_eq!(
            f.message,
            "read-only root filesystem (container \"app\" must set securityContext.readOnlyRootFilesystem=true)"
        );
        // The opt-in fix never overrides the explicit false, which stays a finding.
        let fixed = e.fixed.unwrap();
        assert_eq!(
            fixed["spec"]["template"]["spec"]["containers"][0]["securityContext"]
                ["readOnlyRootFilesystem"],
            json!(false)
        );
        assert_eq!(
            fixed["spec"]["template"]["spec"]["initContainers"][0]["securityContext"]
                ["readOnlyRootFilesystem"],
            json!(true)
        );
    }

    #[test]
    fn fix_is_sound_on_every_manifest() {
        for obj in testutil::workloads() {
            let fixed = assert_fix_sound("read-only-root-filesystem", &obj, Tier::Production);
            crate::policy::target::assert_parses_typed(&fixed);
        }
    }

    #[test]
    fn windows_pods_are_out_of_scope() {
        let mut pod = testutil::bare_pod();
        pod["spec"]["os"] = serde_json::json!({"name": "windows"});
        let e = run_rule("read-only-root-filesystem", &pod, Tier::Production);
        assert!(
            e.findings.is_empty() && e.patch.0.is_empty(),
            "{:?}",
            e.findings
        );
    }

    #[test]
    fn fix_is_off_unless_opted_in() {
        let engine = crate::policy::Engine::new(crate::policy::PolicyConfig::default());
        let ctx = crate::policy::Context::new(Tier::Production, crate::policy::Mode::Enforce);
        let opts = crate::policy::Options {
            only: Some(vec!["read-only-root-filesystem".into()]),
            fix: true,
            ..Default::default()
        };
        let e = engine.evaluate(&testutil::bare_pod(), &ctx, &opts).unwrap();
        assert!(!e.findings.is_empty());
        assert!(e.patch.0.is_empty());
    }
}
