//! PSS `hostPathVolumes` (baseline, v1.0+): no hostPath volumes.
use super::prelude::*;
use super::pss_common::{msg, q};

pub static RULE: Rule = Rule {
    id: "host-path-volumes",
    tier: Tier::Foundation,
    pss: Some(PssCheck {
        check_id: "hostPathVolumes",
        level: PssLevel::Baseline,
        min_minor: 0,
        overrides: &[],
    }),
    summary: "pods must not mount hostPath volumes",
    doc: "A hostPath volume mounts a directory of the node into the container: the \
container runtime socket, the kubelet's credentials or /etc are one path away, and \
writes land on the node itself. Pod Security Standards baseline forbids hostPath \
volumes. Use an emptyDir for scratch space, a PersistentVolumeClaim for data, or a \
ConfigMap/Secret for files; node agents that truly need the host belong in an \
exempted system namespace.",
    check: Check::Pod(check),
    fix: Fix::None,
    cel: Cel::Findings(cel),
};

fn check(pod: &PodTemplate, _r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    for (i, v) in pod.spec.volumes.iter().flatten().enumerate() {
        if v.host_path.is_some() {
            out.push(Violation::new(
                format!("{}/volumes/{i}/hostPath", pod.spec_path),
                msg("hostPath volumes", format!("volume {}", q(&v.name))),
            ));
        }
    }
    Ok(())
}

fn cel(_cx: &CelCtx<'_>) -> String {
    "variables.pod.?volumes.orValue([]).filter(v, v.?hostPath.hasValue())\
     .map(v, 'hostPath volumes (volume \"' + v.name + '\")')"
        .to_string()
}

#[cfg(test)]
mod tests {
    use crate::policy::rules::pss_common::test::{cronjob, pod};
    use crate::policy::rules::testutil::run_rule;
    use crate::policy::Tier;
    use serde_json::json;

    #[test]
    fn other_volumes_pass() {
        let p = pod(
            json!({}),
            json!({"volumes": [{"name": "tmp", "emptyDir": {}}]}),
        );
        assert!(run_rule("host-path-volumes", &p, Tier::Foundation)
            .findings
            .is_empty());
    }

    #[test]
    fn host_path_is_named() {
        let c = cronjob(json!({"restartPolicy": "OnFailure",
            "containers": [{"name": "app", "image": "busybox:1.36"}],
            "volumes": [{"name": "tmp", "emptyDir": {}},
                        {"name": "docker", "hostPath": {"path": "/var/run/docker.sock"}}]}));
        let e = run_rule("host-path-volumes", &c, Tier::Foundation);
        assert_eq!(e.findings.len(), 1);
        assert_eq!(
            e.findings[0].path,
            "/spec/jobTemplate/spec/template/spec/volumes/1/hostPath"
        );
        assert_eq!(
            e.findings[0].message,
            "hostPath volumes (volume \"docker\")"
        );
    }
}
