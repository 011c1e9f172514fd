//! The request side: an `admission.k8s.io/v1` AdmissionReview, parsed leniently
//! enough that a review whose *object* is malformed still gets a well-formed
//! answer (the engine judges the object; only the envelope must be right).
use k8s_openapi::api::authentication::v1::UserInfo;
use kube::core::admission::Operation;
use kube::core::GroupVersionKind;
use serde::Deserialize;
use serde_json::Value;

/// The review envelope.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawReview {
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    request: Option<RawRequest>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRequest {
    uid: String,
    #[serde(default)]
    kind: Option<GroupVersionKind>,
    #[serde(default)]
    sub_resource: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    operation: Operation,
    #[serde(default)]
    user_info: Option<UserInfo>,
    #[serde(default)]
    object: Option<Value>,
    #[serde(default)]
    old_object: Option<Value>,
    #[serde(default)]
    dry_run: Option<bool>,
}

/// One admission request, as the decision needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct AdmissionRequest {
    /// The review's apiVersion, echoed in the answer (`admission.k8s.io/v1`).
    pub api_version: String,
    pub uid: String,
    pub group: String,
    pub version: String,
    /// `request.kind.kind`, or the object's own kind when absent.
    pub kind: String,
    pub sub_resource: Option<String>,
    /// Empty when the object uses `generateName`.
    pub name: String,
    pub namespace: Option<String>,
    pub operation: Operation,
    pub username: Option<String>,
    pub groups: Vec<String>,
    /// `None` on DELETE (the apiserver sends `null`).
    pub object: Option<Value>,
    pub old_object: Option<Value>,
    /// `dryRun: true`: nothing will be persisted.
    pub dry_run: bool,
}

/// Why a body is not an AdmissionReview (answered with HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadRequest {
    #[error("empty body: expected an admission.k8s.io/v1 AdmissionReview")]
    Empty,
    #[error("malformed JSON: {0}")]
    Json(String),
    #[error("not an AdmissionReview: {0}")]
    Shape(String),
    #[error("AdmissionReview has no `request`")]
    NoRequest,
}

pub const REVIEW_API_VERSION: &str = "admission.k8s.io/v1";

impl AdmissionRequest {
    /// Parse a request body.
    pub fn from_body(body: &[u8]) -> Result<AdmissionRequest, BadRequest> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(BadRequest::Empty);
        }
        let raw: RawReview = serde_json::from_slice(body).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => BadRequest::Shape(e.to_string()),
            _ => BadRequest::Json(e.to_string()),
        })?;
        let api_version = match raw.api_version.as_deref() {
            Some(v @ ("admission.k8s.io/v1" | "admission.k8s.io/v1beta1")) => v.to_string(),
            _ => REVIEW_API_VERSION.to_string(),
        };
        let r = raw.request.ok_or(BadRequest::NoRequest)?;
        let object = r.object.filter(|o| !o.is_null());
        let old_object = r.old_object.filter(|o| !o.is_null());
        let (group, version, kind) = match r.kind {
            Some(gvk) => (gvk.group, gvk.version, gvk.kind),
            None => {
                let kind = object
                    .as_ref()
                    .and_then(|o| o.get("kind"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                (String::new(), String::new(), kind)
            }
        };
        let (username, groups) = match r.user_info {
            Some(u) => (u.username, u.groups.unwrap_or_default()),
            None => (None, Vec::new()),
        };
        Ok(AdmissionRequest {
            api_version,
            uid: r.uid,
            group,
            version,
            kind,
            sub_resource: r.sub_resource.filter(|s| !s.is_empty()),
            name: r.name.unwrap_or_default(),
            namespace: r.namespace.filter(|s| !s.is_empty()),
            operation: r.operation,
            username,
            groups,
            object,
            old_object,
            dry_run: r.dry_run.unwrap_or(false),
        })
    }

    pub fn operation_name(&self) -> &'static str {
        operation_name(&self.operation)
    }

    /// How the object is named in messages: `Pod "web"`, or its generateName.
    pub fn display(&self) -> String {
        let meta = self.object.as_ref().and_then(|o| o.get("metadata"));
        let get = |k: &str| {
            meta.and_then(|m| m.get(k))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let kind = if self.kind.is_empty() {
            "object"
        } else {
            &self.kind
        };
        if !self.name.is_empty() {
            format!("{kind} {:?}", self.name)
        } else if let Some(n) = get("name") {
            format!("{kind} {n:?}")
        } else if let Some(g) = get("generateName") {
            format!("{kind} with generateName {g:?}")
        } else {
            format!("{kind} (unnamed)")
        }
    }
}

pub fn operation_name(op: &Operation) -> &'static str {
    match op {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}
