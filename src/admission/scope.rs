//! What the webhooks judge, and what they pass untouched: DELETE and
//! CONNECT, subresources without a pod spec, updates that leave what the
//! rules read alone. And what a mutation may patch: only a CREATE, or an UPDATE of a
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
    unchanged_update(req)
}

/// The kinds whose unchanged UPDATEs are passed (group, kinds): the
/// pod-carrying kinds whose pod spec is under `spec`, as the webhooks'
/// rules name them.
pub const UNCHANGED_UPDATE_KINDS: &[(&str, &[&str])] = &[
    ("", &["Pod", "ReplicationController"]),
    (
        "apps",
        &["Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"],
    ),
    ("batch", &["Job", "CronJob"]),
];

/// An UPDATE that leaves alone everything the rules read: a Pod's spec (its
/// labels and annotations may change, as Pod Security Admission does), or
/// another pod-carrying object's spec, labels, annotations and owners (a
/// finalizer, a managedFields or a status write through the main
/// resource). It was judged when it was written; judging it again would
/// deny a controller's bookkeeping on an object admitted before, and a
/// patch here would start a rollout nobody asked for. The webhooks'
/// `matchConditions` ([`unchanged_update_cel`]) keep the apiserver from
/// sending these at all.
pub fn unchanged_update(req: &AdmissionRequest) -> bool {
    let (Some(new), Some(old)) = (req.object.as_ref(), req.old_object.as_ref()) else {
        return false;
    };
    let kind_listed = || {
        UNCHANGED_UPDATE_KINDS
            .iter()
            .any(|(g, ks)| *g == req.group && ks.contains(&req.kind.as_str()))
    };
    let same = |ptr: &str| new.pointer(ptr) == old.pointer(ptr);
    req.operation == Operation::Update
        && req.sub_resource.is_none()
        && kind_listed()
        && same("/spec")
        && (req.kind == "Pod"
            || (same("/metadata/labels")
                && same("/metadata/annotations")
                && same("/metadata/ownerReferences")))
}

/// [`unchanged_update`] as a CEL `matchConditions` expression: true when
/// the request is to be sent (it is not an unchanged UPDATE). It cannot
/// fail on any object: every field is tested with `has` before it is read.
pub fn unchanged_update_cel() -> String {
    unchanged_update_cel_on("object", "oldObject")
}

/// [`unchanged_update_cel`] over other names for the object and the old
/// object (`dyn(object)` where the expression is type-checked against kinds
/// without a `spec`, as in an admission policy).
pub fn unchanged_update_cel_on(object: &str, old_object: &str) -> String {
    let kinds = UNCHANGED_UPDATE_KINDS
        .iter()
        .map(|(g, ks)| {
            let list = ks
                .iter()
                .map(|k| format!("'{k}'"))
                .collect::<Vec<_>>()
                .join(", ");
            format!("(request.kind.group == '{g}' && request.kind.kind in [{list}])")
        })
        .collect::<Vec<_>>()
        .join(" || ");
    let same = |f: &str| {
        format!(
            "(has({object}.{f}) ? (has({old_object}.{f}) && {object}.{f} == {old_object}.{f}) : !has({old_object}.{f}))"
        )
    };
    format!(
        "!(request.operation == 'UPDATE' && (!has(request.subResource) || request.subResource == '') \
         && {old_object} != null && ({kinds}) && {spec} && (request.kind.kind == 'Pod' || \
         ({labels} && {annotations} && {owners})))",
        spec = same("spec"),
        labels = same("metadata.labels"),
        annotations = same("metadata.annotations"),
        owners = same("metadata.ownerReferences"),
    )
}

/// The break-glass `matchConditions` expression: true when the request is
/// to be judged (its user is not in the group `tiergate:break-glass`).
pub const BREAK_GLASS_CEL: &str =
    "!has(request.userInfo.groups) || !('tiergate:break-glass' in request.userInfo.groups)";

/// Subresources that carry a pod spec to judge.
fn judged_subresource(sub: &str) -> bool {
    sub == "ephemeralcontainers"
}

/// The object's controller (`Kind "name"`), when a controller made it: a
/// Deployment's ReplicaSet, a ReplicaSet's or a Job's Pod, a CronJob's Job.
pub fn controller_of(obj: &Value) -> Option<String> {
    obj.pointer("/metadata/ownerReferences")?
        .as_array()?
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .map(|r| {
            let get = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or_default();
            format!("{} {:?}", get("kind"), get("name"))
        })
}

/// Whether the mutating webhook may patch this request: a CREATE, or an
/// UPDATE of a kind whose pod template may be changed (a patch there
/// applies), never a subresource, and never an object a controller made:
/// only the object a person writes is patched, so a ReplicaSet's template
/// always equals its Deployment's (a difference makes the deployment
/// controller create ReplicaSets in a loop).
pub fn may_patch(req: &AdmissionRequest) -> bool {
    let owned = req.object.as_ref().and_then(controller_of).is_some();
    !owned
        && req.sub_resource.is_none()
        && match req.operation {
            Operation::Create => true,
            Operation::Update => kinds::template_mutable_on_update(&req.group, &req.kind),
            _ => false,
        }
}

/// The object to judge: the request's own object, borrowed (never copied:
/// a deep copy of the whole object is a large part of a request's cost). For an
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
    // The rules follow the object, the tier guard and the patch scope follow
    // request.kind: they must agree, or the object is not judged as what it is.
    let object_kind = obj.get("kind").and_then(Value::as_str);
    let object_group = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .map(crate::policy::kinds::group_of);
    let agrees =
        object_kind.is_none_or(|k| k == req.kind) && object_group.is_none_or(|g| g == req.group);
    if !agrees {
        return Err(format!(
            "request.kind is {}/{} but the object is {}/{}",
            req.group,
            req.kind,
            object_group.unwrap_or_default(),
            object_kind.unwrap_or_default()
        ));
    }
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
