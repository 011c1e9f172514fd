//! PSS `restrictedVolumes` (restricted, v1.0+): only ephemeral and
//! API-backed volume types. Replaces `hostPathVolumes` under restricted.
use super::prelude::*;
use serde_json::Value;

use super::pss_common::{msg, q};

pub static RULE: Rule = Rule {
    id: "restricted-volumes",
    tier: Tier::Production,
    pss: Some(PssCheck {
        check_id: "restrictedVolumes",
        level: PssLevel::Restricted,
        min_minor: 0,
        overrides: &["host-path-volumes"],
    }),
    summary: "pods may only use configMap, csi, downwardAPI, emptyDir, ephemeral, image, persistentVolumeClaim, projected and secret volumes",
    doc: "In-tree volume types such as hostPath, nfs, iscsi, rbd or cephfs let a pod \
mount storage directly, bypassing the PersistentVolume layer where administrators \
decide who gets what, and several run privileged mount helpers on the node. Pod \
Security Standards restricted allows only configMap, csi, downwardAPI, emptyDir, \
ephemeral, image, persistentVolumeClaim, projected and secret volumes. Move the \
storage behind a PersistentVolumeClaim (an administrator-created PersistentVolume or \
a CSI StorageClass).",
    check: Check::Object(Kinds::Workloads, check),
    fix: Fix::None,
    cel: Cel::Findings(cel),
};

const ALLOWED: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "image",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

fn check(t: &Target<'_>, _r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    let Some(pod) = &t.pod else { return Ok(()) };
    // The raw volumes: a source type tiergate's API types do not know is still
    // a restricted one.
    let vols = t
        .raw
        .pointer(&format!("{}/volumes", pod.spec_path))
        .and_then(Value::as_array);
    for (i, v) in vols.into_iter().flatten().enumerate() {
        let Some(m) = v.as_object() else { continue };
        let sources: Vec<&str> = m
            .iter()
            .filter(|(k, v)| k.as_str() != "name" && !v.is_null())
            .map(|(k, _)| k.as_str())
            .collect();
        // No source at all is defaulted to emptyDir by the API server.
        if sources.is_empty() || sources.iter().any(|s| ALLOWED.contains(s)) {
            continue;
        }
        let name = m.get("name").and_then(Value::as_str).unwrap_or("");
        for s in sources {
            out.push(Violation::new(
                format!("{}/volumes/{i}/{s}", pod.spec_path),
                msg(
                    "restricted volume types",
                    format!("volume {} uses restricted volume type {}", q(name), q(s)),
                ),
            ));
        }
    }
    Ok(())
}

/// Every volume source of the core API that is not in [`ALLOWED`].
const RESTRICTED: &[&str] = &[
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "gitRepo",
    "glusterfs",
    "hostPath",
    "iscsi",
    "nfs",
    "photonPersistentDisk",
    "portworxVolume",
    "quobyte",
    "rbd",
    "scaleIO",
    "storageos",
    "vsphereVolume",
];

fn cel(_cx: &CelCtx<'_>) -> String {
    let has = |f: &&str| format!("v.?{f}.hasValue()");
    let allowed: Vec<String> = ALLOWED.iter().map(has).collect();
    let restricted: Vec<String> = RESTRICTED.iter().map(has).collect();
    let types: Vec<String> = RESTRICTED
        .iter()
        .map(|f| format!("(v.?{f}.hasValue() ? ['{f}'] : [])"))
        .collect();
    format!(
        "variables.pod.?volumes.orValue([]).filter(v, ({}) && !({})).map(v, 'restricted volume \
         types (volume \"' + v.name + '\" uses restricted volume type ' + ({}).join(', ') + ')')",
        restricted.join(" || "),
        allowed.join(" || "),
        types.join(" + ")
    )
}

#[cfg(test)]
mod tests {
    use crate::policy::rules::pss_common::test::deployment;
    use crate::policy::rules::testutil::run_rule;
    use crate::policy::Tier;
    use serde_json::json;

    #[test]
    fn allowed_volume_types_pass() {
        let d = deployment(
            json!({"containers": [{"name": "app", "image": "nginx:1.27"}],
            "volumes": [{"name": "implicit"}, {"name": "tmp", "emptyDir": {}},
                {"name": "cfg", "configMap": {"name": "web"}},
                {"name": "data", "persistentVolumeClaim": {"claimName": "web"}},
                {"name": "model", "image": {"reference": "registry.example/model:1"}}]}),
        );
        assert!(run_rule("restricted-volumes", &d, Tier::Production)
            .findings
            .is_empty());
    }

    #[test]
    fn replaces_host_path_volumes_under_restricted() {
        use crate::policy::pss::{PssLevel, PssVersion};
        use crate::policy::{Context, Engine, Mode, Options};
        let d = deployment(
            json!({"containers": [{"name": "app", "image": "nginx:1.27"}],
            "volumes": [{"name": "logs", "hostPath": {"path": "/var/log"}}]}),
        );
        let rules = |level| {
            let opts = Options {
                pss: Some((level, PssVersion { minor: 37 })),
                only: None,
                fix: false,
                exact_fixable: false,
                skip_covered: false,
            };
            Engine::new(Default::default())
                .evaluate(&d, &Context::new(Tier::Hyperscale, Mode::Enforce), &opts)
                .unwrap()
                .findings
                .iter()
                .filter(|f| f.path.contains("/volumes/"))
                .map(|f| f.rule)
                .collect::<Vec<_>>()
        };
        assert_eq!(rules(PssLevel::Baseline), vec!["host-path-volumes"]);
        assert_eq!(rules(PssLevel::Restricted), vec!["restricted-volumes"]);
    }

    #[test]
    fn in_tree_volume_is_a_finding() {
        let d = deployment(
            json!({"containers": [{"name": "app", "image": "nginx:1.27"}],
            "volumes": [{"name": "tmp", "emptyDir": {}},
                {"name": "share", "nfs": {"server": "nfs.local", "path": "/export"}}]}),
        );
        let e = run_rule("restricted-volumes", &d, Tier::Production);
        assert_eq!(e.findings.len(), 1);
        assert_eq!(e.findings[0].path, "/spec/template/spec/volumes/1/nfs");
        assert_eq!(
            e.findings[0].message,
            "restricted volume types (volume \"share\" uses restricted volume type \"nfs\")"
        );
    }
}
