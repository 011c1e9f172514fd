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
    kind: Option<String>,
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
            other => {
                return Err(BadRequest::Shape(format!(
                    "apiVersion is {}, expected admission.k8s.io/v1 (or v1beta1)",
                    other.map_or("missing".to_string(), |v| format!("{v:?}"))
                )))
            }
        };
        if raw.kind.as_deref() != Some("AdmissionReview") {
            return Err(BadRequest::Shape(format!(
                "kind is {}, expected AdmissionReview",
                raw.kind
                    .as_deref()
                    .map_or("missing".to_string(), |k| format!("{k:?}"))
            )));
        }
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

/// Builds the AdmissionReview an apiserver would send for an object (for
/// tests, benchmarks, examples and tools): `request.kind` and `resource` from
/// the object's `apiVersion` and `kind`, the name and namespace from its
/// metadata (namespace `shop` when it has none), user `alice` in
/// `system:authenticated`, no old object, not a dry run.
#[derive(Debug, Clone)]
pub struct ReviewBuilder {
    review: Value,
}

impl ReviewBuilder {
    pub fn new(uid: &str, operation: &str, object: Value) -> Self {
        let kind = object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("Pod")
            .to_string();
        let api_version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("v1");
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), api_version.to_string()),
        };
        let namespace = object
            .pointer("/metadata/namespace")
            .cloned()
            .unwrap_or_else(|| Value::from("shop"));
        let name = object
            .pointer("/metadata/name")
            .cloned()
            .unwrap_or_else(|| Value::from(""));
        let resource = plural(&kind);
        ReviewBuilder {
            review: serde_json::json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "request": {"uid": uid,
                    "kind": {"group": group, "version": version, "kind": kind},
                    "resource": {"group": group, "version": version, "resource": resource},
                    "name": name, "namespace": namespace, "operation": operation,
                    "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
                    "object": object, "oldObject": null, "dryRun": false}}),
        }
    }

    /// The request's namespace (`None`: cluster-scoped, sent as `null`).
    pub fn namespace(mut self, ns: Option<&str>) -> Self {
        self.review["request"]["namespace"] = ns.map_or(Value::Null, Value::from);
        self
    }
    pub fn name(mut self, name: &str) -> Self {
        self.review["request"]["name"] = Value::from(name);
        self
    }
    /// `request.kind`, when it differs from the object's (old clusters'
    /// `EphemeralContainers`, say).
    pub fn kind(mut self, group: &str, version: &str, kind: &str) -> Self {
        self.review["request"]["kind"] =
            serde_json::json!({"group": group, "version": version, "kind": kind});
        self
    }
    pub fn old(mut self, old: Value) -> Self {
        self.review["request"]["oldObject"] = old;
        self
    }
    pub fn user(mut self, name: &str, groups: &[&str]) -> Self {
        self.review["request"]["userInfo"] =
            serde_json::json!({"username": name, "groups": groups});
        self
    }
    pub fn sub_resource(mut self, sub: &str) -> Self {
        self.review["request"]["subResource"] = Value::from(sub);
        self
    }
    pub fn dry_run(mut self, on: bool) -> Self {
        self.review["request"]["dryRun"] = Value::from(on);
        self
    }
    /// Any other field of `request` (`options`, `requestKind`, ...).
    pub fn with(mut self, field: &str, value: Value) -> Self {
        self.review["request"][field] = value;
        self
    }
    pub fn build(self) -> Value {
        self.review
    }
    /// The review as the bytes of a request body.
    pub fn body(self) -> Vec<u8> {
        self.review.to_string().into_bytes()
    }
}

/// The resource name of a kind, as the apiserver pluralises the common ones.
fn plural(kind: &str) -> String {
    let k = kind.to_ascii_lowercase();
    if k.ends_with('s') {
        format!("{k}es")
    } else if let Some(stem) = k.strip_suffix('y') {
        format!("{stem}ies")
    } else {
        format!("{k}s")
    }
}
