//! The answer the apiserver reads: a typed `admission.k8s.io/v1`
//! AdmissionResponse with builder methods (in the spirit of kube-rs's
//! `kube-core` admission types), and the AdmissionReview that carries it.
//! Every answer tiergate gives is built here, so the protocol's rules hold
//! in one place: the uid is echoed, a denial carries a `Failure` status, a
//! patch is a base64 JSON Patch, warnings and annotations stay within
//! [`limits`](super::limits).
use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Serialize;

use super::limits::{cap_warnings, truncate, Annotations, MESSAGE_MAX};
use super::request::AdmissionRequest;

/// Why a request was refused: the HTTP-style code and reason of the
/// response's `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 403: the policy denies it.
    Forbidden,
    /// 400: the object cannot be judged.
    BadRequest,
    /// 500: tiergate failed.
    InternalError,
}

impl Refusal {
    fn code(self) -> u16 {
        match self {
            Refusal::Forbidden => 403,
            Refusal::BadRequest => 400,
            Refusal::InternalError => 500,
        }
    }
    fn reason(self) -> &'static str {
        match self {
            Refusal::Forbidden => "Forbidden",
            Refusal::BadRequest => "BadRequest",
            Refusal::InternalError => "InternalError",
        }
    }
}

/// `response.status` of a refused request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    /// Always `Failure`.
    pub status: &'static str,
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
}

/// `response.patchType`: the only type the apiserver accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PatchType {
    #[serde(rename = "JSONPatch")]
    JsonPatch,
}

/// `response` of an AdmissionReview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionResponse {
    pub uid: String,
    pub allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<PatchType>,
    /// Base64 of the RFC 6902 patch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub audit_annotations: BTreeMap<String, String>,
}

/// The AdmissionReview an answer is sent in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionReview {
    /// The request's own apiVersion, echoed.
    pub api_version: String,
    /// Always `AdmissionReview`.
    pub kind: &'static str,
    pub response: AdmissionResponse,
}

impl AdmissionResponse {
    /// Allowed, with nothing to say: the start of every answer.
    pub fn allow(req: &AdmissionRequest) -> Self {
        AdmissionResponse {
            uid: req.uid.clone(),
            allowed: true,
            status: None,
            patch_type: None,
            patch: None,
            warnings: Vec::new(),
            audit_annotations: BTreeMap::new(),
        }
    }

    /// Refused, with a message a person can act on (cut to the message limit).
    pub fn deny(mut self, why: Refusal, message: &str) -> Self {
        self.allowed = false;
        self.status = Some(Status {
            status: "Failure",
            code: why.code(),
            reason: why.reason(),
            message: truncate(message, MESSAGE_MAX),
        });
        self
    }

    /// Warnings for kubectl, kept within the limits (each under 120
    /// characters, all under 4 KiB, duplicates dropped).
    pub fn warn(mut self, warnings: impl IntoIterator<Item = String>) -> Self {
        self.warnings = cap_warnings(warnings);
        self
    }

    /// A JSON Patch (mutating webhook only).
    pub fn with_patch(mut self, patch: &json_patch::Patch) -> Result<Self, serde_json::Error> {
        let bytes = serde_json::to_vec(patch)?;
        self.patch_type = Some(PatchType::JsonPatch);
        self.patch = Some(base64::engine::general_purpose::STANDARD.encode(bytes));
        Ok(self)
    }

    /// The audit annotations.
    pub fn annotate(mut self, annotations: Annotations) -> Self {
        self.audit_annotations = annotations.finish();
        self
    }

    /// The review that carries this answer to the apiserver.
    pub fn into_review(self, req: &AdmissionRequest) -> AdmissionReview {
        AdmissionReview {
            api_version: req.api_version.clone(),
            kind: "AdmissionReview",
            response: self,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> AdmissionRequest {
        AdmissionRequest::from_body(
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview",
                "request":{"uid":"u-7","operation":"CREATE","object":{"kind":"Pod"}}}"#,
        )
        .unwrap()
    }

    #[test]
    fn an_allow_is_the_uid_and_allowed_only() {
        let r = AdmissionResponse::allow(&req()).into_review(&req());
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"u-7","allowed":true}}"#
        );
    }

    #[test]
    fn a_denial_carries_a_failure_status_warnings_and_annotations() {
        let mut ann = Annotations::default();
        ann.set("decision", "deny");
        let r = AdmissionResponse::allow(&req())
            .warn(["w1".to_string(), "w1".to_string()])
            .deny(Refusal::Forbidden, "no")
            .annotate(ann);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["allowed"], false);
        assert_eq!(
            v["status"],
            serde_json::json!({"status": "Failure", "code": 403, "reason": "Forbidden", "message": "no"})
        );
        assert_eq!(v["warnings"], serde_json::json!(["w1"]));
        assert_eq!(v["auditAnnotations"]["decision"], "deny");
        assert!(v.get("patch").is_none());
    }

    #[test]
    fn a_patch_is_base64_json_patch() {
        let patch: json_patch::Patch =
            serde_json::from_str(r#"[{"op":"add","path":"/a","value":1}]"#).unwrap();
        let r = AdmissionResponse::allow(&req()).with_patch(&patch).unwrap();
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["patchType"], "JSONPatch");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(v["patch"].as_str().unwrap())
            .unwrap();
        assert_eq!(bytes, br#"[{"op":"add","path":"/a","value":1}]"#);
    }
}
