//! Small helpers shared by the Pod Security Standards rules (the PSS rule
//! files of this folder): where fields live, how PSA words things, and the two pod facts
//! several checks branch on (Windows pods, user-namespace pods).
use k8s_openapi::api::core::v1::PodSpec;

use crate::policy::fixutil;
use crate::policy::target::{ContainerView, PodTemplate};
use crate::policy::Violation;

/// `spec.os.name == windows`: from policy v1.25 the restricted checks that
/// only make sense on Linux skip such pods, and fixes never add Linux-only
/// fields to them.
pub fn is_windows(spec: &PodSpec) -> bool {
    spec.os.as_ref().is_some_and(|os| os.name == "windows")
}

/// `spec.hostUsers == false`: the pod runs in its own user namespace.
pub fn user_namespace(spec: &PodSpec) -> bool {
    spec.host_users == Some(false)
}

/// Whether a container is known not to run as root: a non-zero `runAsUser`,
/// or `runAsNonRoot: true` without `runAsUser: 0` (the container's own
/// settings win over the pod's). An image may start as root otherwise: the
/// official nginx, redis, postgres, mysql images do, and need CHOWN, SETUID
/// and SETGID to switch to their own user.
pub fn known_non_root(pod: &PodTemplate, c: &ContainerView<'_>) -> bool {
    let psc = pod.spec.security_context.as_ref();
    let user = c
        .security_context
        .and_then(|s| s.run_as_user)
        .or_else(|| psc.and_then(|s| s.run_as_user));
    let non_root = c
        .security_context
        .and_then(|s| s.run_as_non_root)
        .or_else(|| psc.and_then(|s| s.run_as_non_root));
    match user {
        Some(u) => u > 0,
        None => non_root == Some(true),
    }
}

/// A PSA-style message: `<reason> (<detail>)`.
pub fn msg(reason: &str, detail: impl std::fmt::Display) -> String {
    format!("{reason} ({detail})")
}

/// A string quoted as Go's `%q` would (close enough for messages).
pub fn q(s: &str) -> String {
    format!("{s:?}")
}

/// `container "name"` for messages.
pub fn who(c: &ContainerView<'_>) -> String {
    format!("container {}", q(c.name))
}

/// JSON pointer of a container's `securityContext`.
pub fn sc_path(c: &ContainerView<'_>) -> String {
    format!("{}/securityContext", c.path)
}

/// JSON pointer of the pod's `securityContext`.
pub fn pod_sc_path(pod: &PodTemplate) -> String {
    format!("{}/securityContext", pod.spec_path)
}

/// JSON pointer of one annotation of the pod template.
pub fn annotation_path(pod: &PodTemplate, key: &str) -> String {
    format!("{}/annotations/{}", pod.meta_path, fixutil::escape(key))
}

/// A violation about one container's field.
pub fn in_container(c: &ContainerView<'_>, path: String, message: String) -> Violation {
    Violation::new(path, message).in_container(c.name)
}

/// The pod template's annotations, sorted by key (PSA sorts what it lists).
pub fn annotations(pod: &PodTemplate) -> Vec<(&str, &str)> {
    pod.meta
        .annotations
        .iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// From v1.25 the restricted checks that only make sense on Linux skip
/// Windows pods: `findings` guarded so.
pub fn windows_exempt(cx: &crate::policy::cel::CelCtx<'_>, findings: String) -> String {
    if cx.pss_has(crate::policy::pss::PssChange::WindowsPodsExempt) {
        format!("variables.pod.?os.?name.orValue('') == 'windows' ? [] : {findings}")
    } else {
        findings
    }
}

#[cfg(test)]
pub mod test {
    //! Pods and workloads for the PSS rule tests.
    use serde_json::{json, Value};

    /// A pod with one container `app` carrying `sc` as its securityContext,
    /// and `spec_extra` merged into the spec.
    pub fn pod(sc: Value, spec_extra: Value) -> Value {
        let mut spec =
            json!({"containers": [{"name": "app", "image": "nginx:1.27", "securityContext": sc}]});
        merge(&mut spec, spec_extra);
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec})
    }

    /// A realistic Deployment whose pod spec is `spec`.
    pub fn deployment(spec: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
              "template": {"metadata": {"labels": {"app": "web"},
                  "annotations": {"prometheus.io/scrape": "true"}},
                "spec": spec}}})
    }

    /// A realistic CronJob whose pod spec is `spec`.
    pub fn cronjob(spec: Value) -> Value {
        json!({"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "report", "namespace": "shop"},
            "spec": {"schedule": "0 3 * * *", "concurrencyPolicy": "Forbid",
              "jobTemplate": {"spec": {"backoffLimit": 2, "template": {
                "metadata": {"labels": {"app": "report"}},
                "spec": spec}}}}})
    }

    fn merge(into: &mut Value, extra: Value) {
        if let (Some(a), Value::Object(b)) = (into.as_object_mut(), extra) {
            for (k, v) in b {
                a.insert(k, v);
            }
        }
    }
}
