//! What the webhooks judge, and what they pass untouched: DELETE and
//! CONNECT, subresources without a pod spec, Pod updates that leave the spec
//! alone. And what a mutation may patch: only a CREATE, or an UPDATE of a
//! kind whose pod template may change.
use std::borrow::Cow;

use kube::core::admission::Operation;
use serde_json::{json, Value};

use super::request::AdmissionRequest;
use crate::policy::kinds;

/// Why a request is passed without judging it, if it is.
pub fn skipped(req: &AdmissionRequest) -> bool {
    if matches!(req.operation, Operation::Delete | Operation::Connect) {
        return true;
    }
    if req
        .sub_resource
        .as_deref()
        .is_some_and(|s| !judged_subresource(s))
    {
        return true;
    }
    // A Pod update that leaves the spec alone (labels, annotations,
    // finalizers) is not judged again, as Pod Security Admission does.
    req.operation == Operation::Update
        && req.group.is_empty()
        && req.kind == "Pod"
        && req.sub_resource.is_none()
        && req.old_object.is_some()
        && req.object.as_ref().and_then(|o| o.get("spec"))
            == req.old_object.as_ref().and_then(|o| o.get("spec"))
}

/// Subresources that carry a pod spec to judge.
fn judged_subresource(sub: &str) -> bool {
    sub == "ephemeralcontainers"
}

/// Whether the mutating webhook may patch this request: a CREATE, or an
/// UPDATE of a kind whose pod template may be changed (a patch there
/// applies), never a subresource.
pub fn may_patch(req: &AdmissionRequest) -> bool {
    req.sub_resource.is_none()
        && match req.operation {
            Operation::Create => true,
            Operation::Update => kinds::template_mutable_on_update(&req.group, &req.kind),
            _ => false,
        }
}

/// The object to judge: the request's own object, borrowed (a deep copy of a
/// Value tree costs about a tenth of a request). For an
/// `ephemeralcontainers` update of kind `EphemeralContainers` (clusters
/// before 1.22), the Pod is rebuilt from the old Pod (when given) with the
/// new ephemeral containers.
pub fn object_to_judge(req: &AdmissionRequest) -> Result<Cow<'_, Value>, String> {
    let obj = req.object.as_ref().ok_or_else(|| {
        format!(
            "the request has no object to judge for {}",
            req.operation_name()
        )
    })?;
    if req.kind != "EphemeralContainers" {
        return Ok(Cow::Borrowed(obj));
    }
    let ephemeral = obj
        .get("ephemeralContainers")
        .cloned()
        .unwrap_or_else(|| json!([]));
    let meta = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let mut pod = match &req.old_object {
        Some(old) if old.get("kind").and_then(Value::as_str) == Some("Pod") => old.clone(),
        _ => {
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {"containers": []}})
        }
    };
    match pod.get_mut("spec").and_then(Value::as_object_mut) {
        Some(spec) => {
            spec.insert("ephemeralContainers".into(), ephemeral);
        }
        None => pod["spec"] = json!({"containers": [], "ephemeralContainers": ephemeral}),
    }
    Ok(Cow::Owned(pod))
}
