//! The rule catalog. One file per rule; adding a rule means adding its file and
//! one line to [`ALL`].
use super::Rule;

// Pod Security Standards
pub mod privileged;

// tiergate rules
pub mod cluster_admin_binding;
pub mod default_deny_network_policy;
pub mod ingress_tls;
pub mod managed_secrets;
pub mod namespace_quota;
pub mod no_default_namespace;
pub mod pdb;
pub mod rbac_wildcards;
pub mod resources;
pub mod sensitive_configmap;
pub mod service_type;

/// Every rule, in catalog order (PSS first, then tiergate's own).
pub static ALL: &[&Rule] = &[
    &privileged::RULE,
    &resources::RULE,
    &sensitive_configmap::RULE,
    &pdb::RULE,
    &namespace_quota::RULE,
    &default_deny_network_policy::RULE,
    &no_default_namespace::RULE,
    &ingress_tls::RULE,
    &service_type::RULE,
    &cluster_admin_binding::RULE,
    &rbac_wildcards::RULE,
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
                r.apply_fix.is_some(),
                r.fix != crate::policy::FixKind::None,
                "rule {} fix kind and fix fn disagree",
                r.id
            );
        }
    }
}
