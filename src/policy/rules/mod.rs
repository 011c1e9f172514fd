//! The rule catalog. One file per rule; adding a rule means adding its file and
//! one line to [`ALL`].
use super::Rule;

// Pod Security Standards
pub mod privileged;

// tiergate rules
pub mod resources;

/// Every rule, in catalog order (PSS first, then tiergate's own).
pub static ALL: &[&Rule] = &[&privileged::RULE, &resources::RULE];

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
