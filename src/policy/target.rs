//! The object under judgement: the raw JSON plus the typed parts rules read.
use k8s_openapi::api::core::v1::{
    ContainerPort, EnvVar, Lifecycle, PodSpec, Probe, ResourceRequirements, SecurityContext,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use serde_json::Value;

use super::kinds;
use super::EngineError;

/// A pod template: its metadata and spec, typed, and where they are.
#[derive(Debug, Clone)]
pub struct PodTemplate {
    /// The kind that carries it (a Deployment's template knows it is one).
    pub workload: &'static kinds::Workload,
    pub meta: ObjectMeta,
    pub spec: PodSpec,
    pub meta_path: &'static str,
    pub spec_path: &'static str,
}

/// Which list a container is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerKind {
    Init,
    Regular,
    Ephemeral,
}

impl ContainerKind {
    /// The pod spec field of the list.
    pub fn field(self) -> &'static str {
        match self {
            ContainerKind::Init => "initContainers",
            ContainerKind::Regular => "containers",
            ContainerKind::Ephemeral => "ephemeralContainers",
        }
    }
}

/// The JSON pointer of a container, formatted on demand (rules run on every
/// request; most containers produce no finding and need no string).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainerPath {
    pub base: &'static str,
    pub kind: ContainerKind,
    pub index: usize,
}

impl std::fmt::Display for ContainerPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.base, self.kind.field(), self.index)
    }
}

/// One container of any list, with the fields rules read.
#[derive(Debug, Clone)]
pub struct ContainerView<'a> {
    pub kind: ContainerKind,
    /// JSON pointer of the container in the object (formats as
    /// `/spec/template/spec/containers/0`; built only when printed).
    pub path: ContainerPath,
    pub name: &'a str,
    pub image: Option<&'a str>,
    pub security_context: Option<&'a SecurityContext>,
    pub ports: Option<&'a [ContainerPort]>,
    pub env: Option<&'a [EnvVar]>,
    pub resources: Option<&'a ResourceRequirements>,
    pub liveness_probe: Option<&'a Probe>,
    pub readiness_probe: Option<&'a Probe>,
    pub startup_probe: Option<&'a Probe>,
    pub lifecycle: Option<&'a Lifecycle>,
    /// `restartPolicy: Always` on an init container makes it a sidecar.
    pub restart_policy: Option<&'a str>,
}

/// A [`ContainerView`] of a `Container` or an `EphemeralContainer` (the two
/// types share the fields rules read).
macro_rules! container_view {
    ($kind:expr, $index:expr, $base:expr, $c:expr) => {
        ContainerView {
            kind: $kind,
            path: ContainerPath {
                base: $base,
                kind: $kind,
                index: $index,
            },
            name: &$c.name,
            image: $c.image.as_deref(),
            security_context: $c.security_context.as_ref(),
            ports: $c.ports.as_deref(),
            env: $c.env.as_deref(),
            resources: $c.resources.as_ref(),
            liveness_probe: $c.liveness_probe.as_ref(),
            readiness_probe: $c.readiness_probe.as_ref(),
            startup_probe: $c.startup_probe.as_ref(),
            lifecycle: $c.lifecycle.as_ref(),
            restart_policy: $c.restart_policy.as_deref(),
        }
    };
}

impl ContainerView<'_> {
    /// A sidecar: an init container that keeps running (`restartPolicy: Always`).
    pub fn is_sidecar(&self) -> bool {
        self.kind == ContainerKind::Init && self.restart_policy == Some("Always")
    }
}

impl PodTemplate {
    /// Every container: init, then regular, then ephemeral (PSA's order).
    pub fn containers(&self) -> Vec<ContainerView<'_>> {
        let base = self.spec_path;
        let s = &self.spec;
        let mut out = Vec::new();
        for (i, c) in s.init_containers.iter().flatten().enumerate() {
            out.push(container_view!(ContainerKind::Init, i, base, c));
        }
        for (i, c) in s.containers.iter().enumerate() {
            out.push(container_view!(ContainerKind::Regular, i, base, c));
        }
        for (i, c) in s.ephemeral_containers.iter().flatten().enumerate() {
            out.push(container_view!(ContainerKind::Ephemeral, i, base, c));
        }
        out
    }
}

/// An object ready for the rules.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    pub raw: &'a Value,
    /// The API group of `apiVersion` (`""` for the core group).
    pub group: &'a str,
    pub kind: &'a str,
    pub meta: ObjectMeta,
    /// Set for kinds with a pod template.
    pub pod: Option<PodTemplate>,
}

impl<'a> Target<'a> {
    pub fn parse(raw: &'a Value) -> Result<Self, EngineError> {
        let obj = raw
            .as_object()
            .ok_or_else(|| EngineError::NotAnObject("expected a JSON/YAML mapping".into()))?;
        let kind = obj
            .get("kind")
            .and_then(Value::as_str)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| EngineError::NotAnObject("missing `kind`".into()))?;
        let api_version = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .ok_or_else(|| EngineError::NotAnObject(format!("{kind} is missing `apiVersion`")))?;
        let invalid = |name: &str, what: &str, e: serde_json::Error| EngineError::Invalid {
            kind: kind.to_string(),
            name: name.to_string(),
            reason: format!("{what}: {e}"),
        };
        let meta = match obj.get("metadata") {
            None | Some(Value::Null) => ObjectMeta::default(),
            Some(m) => ObjectMeta::deserialize(m).map_err(|e| invalid("", "metadata", e))?,
        };
        let name = meta
            .name
            .clone()
            .or_else(|| meta.generate_name.clone())
            .unwrap_or_default();
        let group = kinds::group_of(api_version);
        let pod = match kinds::workload_of(group, kind) {
            None => None,
            Some(w) => {
                let (meta_path, spec_path) = (w.meta, w.spec);
                let spec_v = raw.pointer(spec_path).ok_or_else(|| EngineError::Invalid {
                    kind: kind.to_string(),
                    name: name.clone(),
                    reason: format!("missing pod spec at {spec_path}"),
                })?;
                let spec = PodSpec::deserialize(spec_v)
                    .map_err(|e| invalid(&name, &format!("pod spec at {spec_path}"), e))?;
                let pmeta = if kind == "Pod" {
                    meta.clone()
                } else {
                    match raw.pointer(meta_path) {
                        None | Some(Value::Null) => ObjectMeta::default(),
                        Some(m) => ObjectMeta::deserialize(m).map_err(|e| {
                            invalid(&name, &format!("pod template metadata at {meta_path}"), e)
                        })?,
                    }
                };
                Some(PodTemplate {
                    workload: w,
                    meta: pmeta,
                    spec,
                    meta_path,
                    spec_path,
                })
            }
        };
        Ok(Target {
            raw,
            group,
            kind,
            meta,
            pod,
        })
    }

    /// The object's name (or its `generateName` prefix) for messages.
    pub fn name(&self) -> &str {
        self.meta
            .name
            .as_deref()
            .or(self.meta.generate_name.as_deref())
            .unwrap_or("")
    }

    /// Parse the raw object as a typed k8s-openapi value (for non-pod rules).
    pub fn typed<T: for<'de> Deserialize<'de>>(&self) -> Result<T, EngineError> {
        T::deserialize(self.raw).map_err(|e| EngineError::Invalid {
            kind: self.kind.to_string(),
            name: self.name().to_string(),
            reason: e.to_string(),
        })
    }
}

/// Test helper: the object parses as its kind's k8s-openapi type.
#[cfg(test)]
pub fn assert_parses_typed(v: &Value) {
    use k8s_openapi::api::{apps::v1 as apps, batch::v1 as batch, core::v1 as core};
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
    let r = match kind {
        "Pod" => core::Pod::deserialize(v).map(drop),
        "PodTemplate" => core::PodTemplate::deserialize(v).map(drop),
        "ReplicationController" => core::ReplicationController::deserialize(v).map(drop),
        "Deployment" => apps::Deployment::deserialize(v).map(drop),
        "ReplicaSet" => apps::ReplicaSet::deserialize(v).map(drop),
        "StatefulSet" => apps::StatefulSet::deserialize(v).map(drop),
        "DaemonSet" => apps::DaemonSet::deserialize(v).map(drop),
        "Job" => batch::Job::deserialize(v).map(drop),
        "CronJob" => batch::CronJob::deserialize(v).map(drop),
        "Service" => core::Service::deserialize(v).map(drop),
        "ConfigMap" => core::ConfigMap::deserialize(v).map(drop),
        "Secret" => core::Secret::deserialize(v).map(drop),
        _ => Ok(()),
    };
    if let Err(e) = r {
        panic!("fixed {kind} no longer parses: {e}");
    }
}
