//! The kinds tiergate knows, by API group and kind, never by kind alone (a
//! custom resource may well be called `Deployment`): which carry a pod
//! template and where, and which a mutation may patch on UPDATE.

/// An API group and kind (`apps`, `Deployment`; the core group is `""`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKind {
    pub group: &'static str,
    pub kind: &'static str,
}

impl GroupKind {
    pub const fn new(group: &'static str, kind: &'static str) -> Self {
        GroupKind { group, kind }
    }
    pub fn is(&self, group: &str, kind: &str) -> bool {
        self.group == group && self.kind == kind
    }
}

const fn core(kind: &'static str) -> GroupKind {
    GroupKind::new("", kind)
}
const fn apps(kind: &'static str) -> GroupKind {
    GroupKind::new("apps", kind)
}
const fn batch(kind: &'static str) -> GroupKind {
    GroupKind::new("batch", kind)
}
const fn rbac(kind: &'static str) -> GroupKind {
    GroupKind::new("rbac.authorization.k8s.io", kind)
}
/// The pre-1.16 group of Deployments, DaemonSets and ReplicaSets (and of
/// Ingresses before 1.22), still found in old manifests.
const fn extensions(kind: &'static str) -> GroupKind {
    GroupKind::new("extensions", kind)
}

pub const POD: GroupKind = core("Pod");
pub const NAMESPACE: GroupKind = core("Namespace");
pub const SERVICE: GroupKind = core("Service");
pub const CONFIG_MAP: GroupKind = core("ConfigMap");
pub const SECRET: GroupKind = core("Secret");
pub const DEPLOYMENT: GroupKind = apps("Deployment");
pub const STATEFUL_SET: GroupKind = apps("StatefulSet");
pub const REPLICA_SET: GroupKind = apps("ReplicaSet");
pub const ROLE: GroupKind = rbac("Role");
pub const CLUSTER_ROLE: GroupKind = rbac("ClusterRole");
pub const ROLE_BINDING: GroupKind = rbac("RoleBinding");
pub const CLUSTER_ROLE_BINDING: GroupKind = rbac("ClusterRoleBinding");
pub const POD_DISRUPTION_BUDGET: GroupKind = GroupKind::new("policy", "PodDisruptionBudget");
pub const INGRESS: GroupKind = GroupKind::new("networking.k8s.io", "Ingress");
/// Ingresses as served before 1.22.
pub const INGRESS_EXTENSIONS: GroupKind = extensions("Ingress");
pub const INGRESSES: &[GroupKind] = &[INGRESS, INGRESS_EXTENSIONS];

/// A kind that carries a pod template.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    pub gk: GroupKind,
    /// JSON pointer of the pod template's metadata.
    pub meta: &'static str,
    /// JSON pointer of the pod spec.
    pub spec: &'static str,
    /// Whether an UPDATE may change the pod template (so a patch there
    /// applies); a Pod's or a Job's template is immutable.
    pub template_mutable: bool,
}

const fn workload(
    gk: GroupKind,
    meta: &'static str,
    spec: &'static str,
    mutable: bool,
) -> Workload {
    Workload {
        gk,
        meta,
        spec,
        template_mutable: mutable,
    }
}

const TEMPLATE: (&str, &str) = ("/spec/template/metadata", "/spec/template/spec");

/// Every kind with a pod template, and where it is.
pub static WORKLOADS: &[Workload] = &[
    workload(POD, "/metadata", "/spec", false),
    workload(
        core("PodTemplate"),
        "/template/metadata",
        "/template/spec",
        true,
    ),
    workload(DEPLOYMENT, TEMPLATE.0, TEMPLATE.1, true),
    workload(REPLICA_SET, TEMPLATE.0, TEMPLATE.1, true),
    workload(STATEFUL_SET, TEMPLATE.0, TEMPLATE.1, true),
    workload(apps("DaemonSet"), TEMPLATE.0, TEMPLATE.1, true),
    workload(batch("Job"), TEMPLATE.0, TEMPLATE.1, false),
    workload(
        batch("CronJob"),
        "/spec/jobTemplate/spec/template/metadata",
        "/spec/jobTemplate/spec/template/spec",
        true,
    ),
    workload(core("ReplicationController"), TEMPLATE.0, TEMPLATE.1, true),
    workload(extensions("Deployment"), TEMPLATE.0, TEMPLATE.1, true),
    workload(extensions("ReplicaSet"), TEMPLATE.0, TEMPLATE.1, true),
    workload(extensions("DaemonSet"), TEMPLATE.0, TEMPLATE.1, true),
];

/// Kinds tiergate judges or reads, besides the workloads: what a config's
/// `kinds` is checked against for a miscased name.
const OTHER_KINDS: &[&str] = &[
    "Namespace",
    "Service",
    "ConfigMap",
    "Secret",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "Ingress",
    "NetworkPolicy",
    "PodDisruptionBudget",
    "HorizontalPodAutoscaler",
    "ResourceQuota",
    "LimitRange",
    "ServiceAccount",
];

/// Whether `kind` can name a Kubernetes kind, as a config writes it; the
/// error says what is wrong (`daemonset` is `DaemonSet`: kinds are matched
/// exactly, as the apiserver spells them).
pub fn check_kind_name(kind: &str) -> Result<(), String> {
    let known = WORKLOADS
        .iter()
        .map(|w| w.gk.kind)
        .chain(OTHER_KINDS.iter().copied());
    let mut known = known;
    if let Some(k) = known.find(|k| k.eq_ignore_ascii_case(kind)) {
        if k == kind {
            return Ok(());
        }
        return Err(format!(
            "unknown kind {kind:?}: kinds are matched exactly; did you mean {k:?}?"
        ));
    }
    let pascal = kind.starts_with(|c: char| c.is_ascii_uppercase())
        && kind.chars().all(|c| c.is_ascii_alphanumeric());
    if pascal {
        Ok(())
    } else {
        Err(format!(
            "unknown kind {kind:?}: a kind is written as the apiserver spells it (PascalCase, \
             e.g. DaemonSet)"
        ))
    }
}

/// The workload kind of `group`/`kind`, if it carries a pod template.
pub fn workload_of(group: &str, kind: &str) -> Option<&'static Workload> {
    WORKLOADS.iter().find(|w| w.gk.is(group, kind))
}

/// Whether an UPDATE of this kind may be patched (its pod template may change).
pub fn template_mutable_on_update(group: &str, kind: &str) -> bool {
    workload_of(group, kind).is_some_and(|w| w.template_mutable)
}

/// The group of an `apiVersion` (`apps/v1` → `apps`, `v1` → `""`).
pub fn group_of(api_version: &str) -> &str {
    api_version.split_once('/').map_or("", |(g, _)| g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_matched_with_their_group() {
        assert!(workload_of("apps", "Deployment").is_some());
        assert!(workload_of("", "Deployment").is_none());
        assert!(workload_of("example.com", "Deployment").is_none());
        assert_eq!(group_of("apps/v1"), "apps");
        assert_eq!(group_of("v1"), "");
        assert!(template_mutable_on_update("apps", "Deployment"));
        assert!(!template_mutable_on_update("", "Pod"));
        assert!(!template_mutable_on_update("batch", "Job"));
    }
}
