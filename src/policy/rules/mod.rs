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
pub mod resources;

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
                r.apply_fix.is_some(),
                r.fix != crate::policy::FixKind::None,
                "rule {} fix kind and fix fn disagree",
                r.id
            );
        }
    }
}
