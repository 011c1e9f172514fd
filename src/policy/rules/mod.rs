//! The rule catalog. One file per rule; adding a rule means adding its file and
//! one line to [`ALL`].
use super::Rule;

// Pod Security Standards
pub mod allow_privilege_escalation;
pub mod app_armor_profile;
pub mod capabilities_baseline;
pub mod capabilities_restricted;
pub mod host_namespaces;
pub mod host_path_volumes;
pub mod host_ports;
pub mod host_probes_and_lifecycle;
pub mod prelude;
pub mod privileged;
pub mod proc_mount;
pub mod proc_mount_restricted;
pub(crate) mod pss_common;
pub mod restricted_volumes;
pub mod run_as_non_root;
pub mod run_as_user;
pub mod se_linux_options;
pub mod seccomp_profile;
pub mod seccomp_profile_restricted;
pub mod sysctls;
pub mod windows_host_process;

// tiergate rules
pub mod allowed_registries;
pub mod automount_service_account_token;
pub mod business_labels;
pub mod cluster_admin_binding;
pub mod default_deny_network_policy;
pub mod graceful_shutdown;
pub mod image_digest;
pub mod image_tag;
pub mod ingress_tls;
pub mod managed_secrets;
pub mod min_replicas;
pub mod namespace_quota;
pub mod no_default_namespace;
pub mod pdb;
pub mod probes;
pub mod rbac_wildcards;
pub mod read_only_root_filesystem;
pub mod resources;
pub mod secrets_in_env;
pub mod sensitive_configmap;
pub mod service_type;
pub mod standard_labels;
pub mod startup_probe;
pub mod topology_spread;

/// Every rule, in catalog order (PSS first, then tiergate's own).
pub static ALL: &[&Rule] = &[
    &privileged::RULE,
    &host_namespaces::RULE,
    &host_path_volumes::RULE,
    &host_ports::RULE,
    &capabilities_baseline::RULE,
    &host_probes_and_lifecycle::RULE,
    &app_armor_profile::RULE,
    &se_linux_options::RULE,
    &proc_mount::RULE,
    &seccomp_profile::RULE,
    &sysctls::RULE,
    &windows_host_process::RULE,
    &run_as_non_root::RULE,
    &run_as_user::RULE,
    &capabilities_restricted::RULE,
    &allow_privilege_escalation::RULE,
    &restricted_volumes::RULE,
    &seccomp_profile_restricted::RULE,
    &proc_mount_restricted::RULE,
    &resources::RULE,
    &secrets_in_env::RULE,
    &sensitive_configmap::RULE,
    &image_tag::RULE,
    &image_digest::RULE,
    &allowed_registries::RULE,
    &probes::RULE,
    &startup_probe::RULE,
    &graceful_shutdown::RULE,
    &read_only_root_filesystem::RULE,
    &standard_labels::RULE,
    &business_labels::RULE,
    &min_replicas::RULE,
    &pdb::RULE,
    &topology_spread::RULE,
    &namespace_quota::RULE,
    &default_deny_network_policy::RULE,
    &no_default_namespace::RULE,
    &ingress_tls::RULE,
    &service_type::RULE,
    &cluster_admin_binding::RULE,
    &rbac_wildcards::RULE,
    &automount_service_account_token::RULE,
    &managed_secrets::RULE,
];

/// The rule with this id.
pub fn by_id(id: &str) -> Option<&'static Rule> {
    ALL.iter().copied().find(|r| r.id == id)
}

#[cfg(test)]
pub(crate) mod testutil;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_documented() {
        for (i, r) in ALL.iter().enumerate() {
            assert!(
                ALL[..i].iter().all(|o| o.id != r.id),
                "duplicate rule id {}",
                r.id
            );
            assert!(r.doc.len() > 80, "rule {} needs a real doc paragraph", r.id);
            assert!(!r.summary.is_empty());
            assert_eq!(
                r.fix.exists(),
                !r.fix.summary().is_empty(),
                "rule {}: a fix needs a summary",
                r.id
            );
        }
    }

    /// The rules of the `rulesa` batch, in catalog order.
    const RULESA: &[&str] = &[
        "secrets-in-env",
        "image-tag",
        "image-digest",
        "allowed-registries",
        "probes",
        "startup-probe",
        "graceful-shutdown",
        "read-only-root-filesystem",
        "standard-labels",
        "business-labels",
        "min-replicas",
        "topology-spread",
        "automount-service-account-token",
    ];

    #[test]
    fn rulesa_fixes_compose_at_tier_5() {
        use crate::policy::PolicyConfig;
        use crate::policy::{Context, Engine, Mode, Options, Tier};

        let mut yaml = String::from(
            "registries:\n  allowed: [ghcr.io/acme, docker.io, cr.fluentbit.io]\nrules:\n",
        );
        for id in RULESA {
            let rule = by_id(id).expect("registered");
            if rule.fix.exists() {
                yaml.push_str(&format!("  {id}: {{fix: on}}\n"));
            }
        }
        let mut cfg = crate::policy::config::from_test_yaml(&yaml);
        cfg.tiers = PolicyConfig::default().tiers;
        let engine = Engine::new(cfg);
        let mut ctx = Context::new(Tier::Hyperscale, Mode::Enforce);
        ctx.namespace = Some("shop".into());
        ctx.namespace_labels = [
            ("team", "storefront"),
            ("environment", "prod"),
            ("cost-center", "cc-42"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let opts = Options {
            pss: None,
            only: Some(RULESA.iter().map(|s| s.to_string()).collect()),
            fix: true,
            exact_fixable: false,
        };
        for obj in [
            testutil::web_deployment(),
            testutil::statefulset_db(),
            testutil::cronjob(),
            testutil::daemonset_agent(),
            testutil::bare_pod(),
        ] {
            let kind = obj["kind"].as_str().unwrap_or_default().to_string();
            let first = engine.evaluate(&obj, &ctx, &opts).expect("evaluate");
            assert!(
                !first.patch.0.is_empty(),
                "{kind}: fixes should change something"
            );
            let mut patched = obj.clone();
            json_patch::patch(&mut patched, &first.patch).expect("patch applies");
            assert_eq!(first.fixed.as_ref(), Some(&patched), "{kind}");
            crate::policy::target::assert_parses_typed(&patched);
            let second = engine
                .evaluate(&patched, &ctx, &opts)
                .expect("evaluate again");
            assert!(
                second.patch.0.is_empty(),
                "{kind}: second pass not empty: {:?}",
                second.patch
            );
            // What the fixes cannot decide stays: component label, digests.
            let left: Vec<&str> = second.findings.iter().map(|f| f.rule).collect();
            for rule in [
                "probes",
                "startup-probe",
                "graceful-shutdown",
                "business-labels",
                "read-only-root-filesystem",
                "automount-service-account-token",
                "topology-spread",
            ] {
                assert!(
                    !left.contains(&rule),
                    "{kind}: {rule} still reports: {:?}",
                    second.findings
                );
            }
            assert!(left.contains(&"image-digest"), "{kind}");
        }
    }
}
