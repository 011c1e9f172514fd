//! PSS `seLinuxOptions` (baseline, v1.0+; `container_engine_t` allowed from
//! v1.31): only the container SELinux types, no custom user or role.
use super::prelude::*;
use k8s_openapi::api::core::v1::SELinuxOptions;

use super::pss_common::{msg, pod_sc_path, q, sc_path, who};

pub static RULE: Rule = Rule {
    id: "se-linux-options",
    tier: Tier::Foundation,
    pss: Some(PssCheck {
        check_id: "seLinuxOptions",
        level: PssLevel::Baseline,
        min_minor: 0,
        overrides: &[],
    }),
    summary: "SELinux options may only pick a container type, never a user or role",
    doc: "SELinux labels are what keep a container's processes away from the host's \
files on SELinux nodes; a custom type such as `spc_t` (super-privileged container) \
or a custom user or role undoes that. Pod Security Standards baseline allows \
`seLinuxOptions.type` to be empty, `container_t`, `container_init_t` or \
`container_kvm_t` (plus `container_engine_t` from v1.31) and forbids setting \
`seLinuxOptions.user` and `seLinuxOptions.role`, at pod and container level. Remove \
them; `level` stays free.",
    check: Check::Pod(check),
    fix: Fix::None,
    cel: Cel::Findings(cel),
};

const TYPES_1_0: &[&str] = &["", "container_t", "container_init_t", "container_kvm_t"];

fn type_allowed(t: &str, minor: u32) -> bool {
    TYPES_1_0.contains(&t) || (minor >= 31 && t == "container_engine_t")
}

fn check(pod: &PodTemplate, r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    let mut visit = |opts: &SELinuxOptions, base: String, setter: &str, container: Option<&str>| {
        let ty = opts.type_.as_deref().unwrap_or("");
        let mut bad: Vec<(&str, String)> = Vec::new();
        if !type_allowed(ty, r.pss_minor) {
            bad.push(("type", format!("type {}", q(ty))));
        }
        if opts.user.as_deref().is_some_and(|u| !u.is_empty()) {
            bad.push(("user", "user may not be set".to_string()));
        }
        if opts.role.as_deref().is_some_and(|u| !u.is_empty()) {
            bad.push(("role", "role may not be set".to_string()));
        }
        for (field, what) in bad {
            let mut v = Violation::new(
                format!("{base}/seLinuxOptions/{field}"),
                msg(
                    "seLinuxOptions",
                    format!("{setter} set forbidden securityContext.seLinuxOptions: {what}"),
                ),
            );
            if let Some(name) = container {
                v = v.in_container(name);
            }
            out.push(v);
        }
    };
    if let Some(o) = pod
        .spec
        .security_context
        .as_ref()
        .and_then(|s| s.se_linux_options.as_ref())
    {
        visit(o, pod_sc_path(pod), "pod", None);
    }
    for c in pod.containers() {
        if let Some(o) = c.security_context.and_then(|s| s.se_linux_options.as_ref()) {
            visit(o, sc_path(&c), &who(&c), Some(c.name));
        }
    }
    Ok(())
}

fn cel(cx: &CelCtx<'_>) -> String {
    let mut types: Vec<&str> = TYPES_1_0.to_vec();
    if cx.pss_has(PssChange::SelinuxContainerEngineType) {
        types.push("container_engine_t");
    }
    let types = cel::list(&types);
    let bad = |o: &str| {
        format!(
            "({o}.hasValue() && (!({o}.value().?type.orValue('') in {types}) || \
             {o}.value().?user.orValue('') != '' || {o}.value().?role.orValue('') != ''))"
        )
    };
    let pod = bad("variables.pod.?securityContext.?seLinuxOptions");
    let containers = containers_where(
        &bad("c.?securityContext.?seLinuxOptions"),
        &format!("'seLinuxOptions (' + {WHO} + ' set forbidden securityContext.seLinuxOptions)'"),
    );
    format!(
        "({pod} ? ['seLinuxOptions (pod set forbidden securityContext.seLinuxOptions)'] : []) + \
         {containers}"
    )
}

#[cfg(test)]
mod tests {
    use crate::policy::pss::{PssLevel, PssVersion};
    use crate::policy::rules::pss_common::test::pod;
    use crate::policy::rules::testutil::run_rule;
    use crate::policy::{Context, Engine, Mode, Options, Tier};
    use serde_json::json;

    #[test]
    fn container_types_and_level_pass() {
        let p = pod(
            json!({"seLinuxOptions": {"type": "container_init_t", "level": "s0:c1,c2"}}),
            json!({"securityContext": {"seLinuxOptions": {"type": "container_t"}}}),
        );
        assert!(run_rule("se-linux-options", &p, Tier::Foundation)
            .findings
            .is_empty());
    }

    #[test]
    fn forbidden_type_and_user_are_findings() {
        let p = pod(
            json!({"seLinuxOptions": {"type": "spc_t"}}),
            json!({"securityContext": {"seLinuxOptions": {"user": "system_u"}}}),
        );
        let e = run_rule("se-linux-options", &p, Tier::Foundation);
        assert_eq!(e.findings.len(), 2);
        assert_eq!(
            e.findings[0].path,
            "/spec/securityContext/seLinuxOptions/user"
        );
        assert_eq!(
            e.findings[0].message,
            "seLinuxOptions (pod set forbidden securityContext.seLinuxOptions: user may not be set)"
        );
        assert_eq!(
            e.findings[1].path,
            "/spec/containers/0/securityContext/seLinuxOptions/type"
        );
        assert_eq!(e.findings[1].container.as_deref(), Some("app"));
        assert_eq!(
            e.findings[1].message,
            "seLinuxOptions (container \"app\" set forbidden securityContext.seLinuxOptions: type \"spc_t\")"
        );
    }

    #[test]
    fn container_engine_t_is_allowed_from_v1_31() {
        let p = pod(
            json!({"seLinuxOptions": {"type": "container_engine_t"}}),
            json!({}),
        );
        let at = |minor| {
            Engine::new(Default::default())
                .evaluate(
                    &p,
                    &Context::new(Tier::Foundation, Mode::Enforce),
                    &Options {
                        pss: Some((PssLevel::Baseline, PssVersion { minor })),
                        only: None,
                        fix: false,
                        exact_fixable: false,
                        skip_covered: false,
                    },
                )
                .unwrap()
                .findings
                .len()
        };
        assert_eq!(at(30), 1);
        assert_eq!(at(31), 0);
    }
}
