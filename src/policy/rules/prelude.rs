//! What every rule file uses: `use super::prelude::*;`.
pub use serde_json::Value;

pub use crate::policy::cel::{
    self, containers_where, lit, ns_has_label, ns_label_or, pod_has_tag, pod_tag_is, quoted,
    selector_selects, Cel, CelCtx, PatchCtx, FACTS, IN_NAMESPACE, KIND_AND_NAME, TEMPLATE_LABELS,
    WHO,
};
pub use crate::policy::kinds::{self, GroupKind};
pub use crate::policy::pss::{PssChange, PssCheck, PssLevel};
pub use crate::policy::rule::{Check, Fix, FixFn, Kinds, RuleCtx};
pub use crate::policy::target::PodTemplate;
pub use crate::policy::{EngineError, Rule, Target, Tier, Violation};
