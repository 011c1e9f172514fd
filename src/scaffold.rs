//! `tiergate scaffold`: a complete, minimal application that passes a tier.
//!
//! Generated from the catalog, not from a second copy of the standards:
//!
//! 1. A skeleton: the namespace, the workload, its Service and ConfigMap, and
//!    the objects that only exist because a rule of the tier asks for them
//!    (one step per such rule, keyed by the rule's id in [`STEPS`]: a quota
//!    for `namespace-quota`, a PDB for `pdb`, an HPA for `autoscaled`, ...).
//!    A rule above the tier adds nothing.
//! 2. The catalog's own fixes, every one of them turned on (opt-in ones too),
//!    at the tier: they harden the pod (security context, probes, graceful
//!    shutdown, topology spread, labels) exactly as `tiergate fix` would.
//! 3. The check `tiergate check --tier N --complete` makes, with the user's
//!    config: anything it reports (deny, warn or audit) is an error, and
//!    nothing is written. A scaffold always passes its own tier.
//!
//! Every rule of the catalog is accounted for in [`coverage`]: fixed by its
//! fix, built by a step, or held by the skeleton by construction (it never
//! does what the rule forbids); a new rule fails the coverage test until it
//! is placed.
use serde_json::{json, Map, Value};

use crate::cli::judge::{judge_all, Settings};
use crate::manifest;
use crate::policy::config::{MeshKind, OnOff, RuleId, RuleOverride};
use crate::policy::{rules, Engine, PolicyConfig, Tier};

/// The workload the application runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppKind {
    Deployment,
    StatefulSet,
    CronJob,
}

impl AppKind {
    pub const ALL: [AppKind; 3] = [AppKind::Deployment, AppKind::StatefulSet, AppKind::CronJob];

    fn kind(self) -> &'static str {
        match self {
            AppKind::Deployment => "Deployment",
            AppKind::StatefulSet => "StatefulSet",
            AppKind::CronJob => "CronJob",
        }
    }

    /// Long-running and serving traffic on its port (not a CronJob).
    fn serves(self) -> bool {
        !matches!(self, AppKind::CronJob)
    }
}

/// What to scaffold.
#[derive(Debug, Clone)]
pub struct Request {
    /// The application's name, also its namespace's.
    pub name: String,
    pub tier: Tier,
    pub kind: AppKind,
    /// `None`: a placeholder image (pinned by a placeholder digest from tier 2).
    pub image: Option<String>,
    pub port: u16,
    /// The Ingress host (default `<name>.example.com`).
    pub host: Option<String>,
    /// Mark the namespace a tenant's (config `tenancy.label`): its pods then
    /// run with the first sandboxed RuntimeClass of `tenancy.runtimeClasses`.
    pub tenant: Option<String>,
}

/// One file of the scaffold.
#[derive(Debug, Clone, PartialEq)]
pub struct File {
    pub name: String,
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error(
        "invalid name {0:?}: a DNS label of 1 to {MAX_NAME} lowercase letters, digits and '-', \
         starting with a letter and not ending with '-' (it names the namespace and every object)"
    )]
    Name(String),
    #[error("invalid port {0}: 1..65535")]
    Port(u16),
    #[error(
        "the scaffold would not pass tier {tier} ({tier_name}) with this config, so nothing was \
         written:\n{}", findings.join("\n")
    )]
    Fails {
        tier: u8,
        tier_name: Tier,
        findings: Vec<String>,
    },
    #[error("internal error: {0}")]
    Internal(String),
}

/// The longest name: the longest suffix added (`-allow-ingress`) must keep
/// every object name a DNS label (63).
pub const MAX_NAME: usize = 40;

/// The rules that only pass because a step of the skeleton builds something.
/// Each is a rule id; [`skeleton`] reads them through `wants`.
pub const STEPS: &[&str] = &[
    "resources",
    "no-default-namespace",
    "namespace-quota",
    "default-deny-network-policy",
    "pdb",
    "pdb-allows-disruption",
    "autoscaled",
    "min-replicas",
    "ingress-tls",
    "image-tag",
    "image-digest",
    "read-only-root-filesystem",
    "standard-labels",
    "business-labels",
    "automount-service-account-token",
    "topology-spread",
    "zone-spread-required",
    "priority-class",
    "mesh-enrolled",
    "rbac-group-subjects",
    "sandboxed-runtime",
];

/// The rules the skeleton passes by construction: it never does what they
/// forbid (no privilege, no host access, no Secret, no NodePort, RBAC that
/// reads only, current API versions; image-signature: the image is the one
/// the user names, and its signature is checked where the config's
/// `images.verify` names it, which the skeleton cannot make true).
pub const HOLDS: &[&str] = &[
    "privileged",
    "host-namespaces",
    "host-path-volumes",
    "host-ports",
    "capabilities-baseline",
    "host-probes-and-lifecycle",
    "app-armor-profile",
    "se-linux-options",
    "proc-mount",
    "seccomp-profile",
    "sysctls",
    "windows-host-process",
    "run-as-user",
    "restricted-volumes",
    "proc-mount-restricted",
    "removed-api-version",
    "secrets-in-env",
    "sensitive-configmap",
    "allowed-registries",
    "service-type",
    "cluster-admin-binding",
    "rbac-wildcards",
    "managed-secrets",
    "external-secret-store",
    "image-signature",
];

/// How each rule of the catalog is met: `fix`, `step`, `holds` (and `fix` +
/// `step` when both). Rules in none are missing from the scaffold.
pub fn coverage() -> Vec<(&'static str, Vec<&'static str>)> {
    rules::ALL
        .iter()
        .map(|r| {
            let mut how = Vec::new();
            if r.fix.exists() {
                how.push("fix");
            }
            if STEPS.contains(&r.id) {
                how.push("step");
            }
            if HOLDS.contains(&r.id) {
                how.push("holds");
            }
            (r.id, how)
        })
        .collect()
}

/// The scaffold's files (each object in its own, then `kustomization.yaml`),
/// checked against its tier with `cfg`.
pub fn scaffold(req: &Request, cfg: &PolicyConfig) -> Result<Vec<File>, ScaffoldError> {
    if !valid_name(&req.name) {
        return Err(ScaffoldError::Name(req.name.clone()));
    }
    if req.port == 0 {
        return Err(ScaffoldError::Port(req.port));
    }
    let objects = skeleton(req, cfg);
    let fixed = with_fixes(&objects, req.tier, cfg)?;
    let mut files: Vec<File> = Vec::new();
    for obj in &fixed {
        let kind = obj["kind"].as_str().unwrap_or("object").to_lowercase();
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        let file = if name == req.name || kind == "namespace" {
            format!("{kind}.yaml")
        } else {
            format!(
                "{kind}-{}.yaml",
                name.strip_prefix(&format!("{}-", req.name))
                    .unwrap_or(&name)
            )
        };
        files.push(File {
            name: file,
            text: to_yaml(obj)?,
        });
    }
    let failures = check(&files, req.tier, cfg)?;
    if !failures.is_empty() {
        return Err(ScaffoldError::Fails {
            tier: req.tier.number(),
            tier_name: req.tier,
            findings: failures,
        });
    }
    let resources: Vec<Value> = files.iter().map(|f| json!(f.name)).collect();
    // In this order (kustomize would sort the workload before its PDB and
    // HPA, which an enforcing namespace judges it by).
    let kustomization = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "sortOptions": {"order": "fifo"},
        "resources": resources,
    });
    files.push(File {
        name: "kustomization.yaml".to_string(),
        text: format!(
            "# tiergate scaffold {} --tier {} --kind {}: `kubectl apply -k .`\n{}",
            req.name,
            req.tier.number(),
            req.kind.kind().to_lowercase(),
            to_yaml(&kustomization)?
        ),
    });
    Ok(files)
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= MAX_NAME
        && n.starts_with(|c: char| c.is_ascii_lowercase())
        && !n.ends_with('-')
        && n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Plain scalars (a long image reference stays on its line), ending in a
/// newline.
fn to_yaml(v: &Value) -> Result<String, ScaffoldError> {
    let mut o = serde_saphyr::SerializerOptions::default();
    o.prefer_block_scalars = false;
    let mut s = serde_saphyr::to_string_with_options(v, o)
        .map_err(|e| ScaffoldError::Internal(e.to_string()))?;
    if !s.ends_with('\n') {
        s.push('\n');
    }
    Ok(s)
}

/// The image, and the tag its version label is taken from.
fn image_of(req: &Request, wants: &dyn Fn(&str) -> bool) -> (String, String) {
    let image = req.image.clone().unwrap_or_else(|| {
        let base = format!("registry.example.com/{}:0.1.0", req.name);
        if wants("image-digest") {
            // A placeholder digest: replace the image with your own.
            format!("{base}@sha256:{}", "0".repeat(64))
        } else {
            base
        }
    });
    let without_digest = image.split('@').next().unwrap_or(&image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    let tag = last
        .split_once(':')
        .map(|(_, t)| t.to_string())
        .filter(|t| t != "latest" && t.len() <= 63)
        .unwrap_or_else(|| "0.1.0".to_string());
    (image, tag)
}

/// The objects before the fixes: what the rules of the tier need built.
fn skeleton(req: &Request, cfg: &PolicyConfig) -> Vec<Value> {
    let tier = req.tier;
    let wants = |id: &str| rules::by_id(id).is_some_and(|r| r.tier <= tier);
    let name = req.name.as_str();
    let ns = name;
    let port = req.port;
    let (image, version) = image_of(req, &wants);
    let component = if req.kind.serves() { "server" } else { "job" };
    let sel = json!({"app.kubernetes.io/name": name});
    let mut labels = Map::new();
    labels.insert("app.kubernetes.io/name".into(), json!(name));
    if wants("standard-labels") {
        labels.insert("app.kubernetes.io/version".into(), json!(version));
        labels.insert("app.kubernetes.io/component".into(), json!(component));
    }
    labels.insert("app.kubernetes.io/part-of".into(), json!(name));
    labels.insert(
        "app.kubernetes.io/managed-by".into(),
        json!("tiergate-scaffold"),
    );
    let labels = Value::Object(labels);
    let meta = |n: String| json!({"name": n, "namespace": ns, "labels": labels.clone()});
    let mut out = Vec::new();

    // The namespace: its tier, enforced, and Pod Security Admission's level.
    let mut ns_labels = Map::new();
    ns_labels.insert("tiergate.io/tier".into(), json!(tier.number().to_string()));
    ns_labels.insert("tiergate.io/mode".into(), json!("enforce"));
    let pss = if tier >= Tier::Production {
        "restricted"
    } else {
        "baseline"
    };
    ns_labels.insert("pod-security.kubernetes.io/enforce".into(), json!(pss));
    if wants("business-labels") {
        // The business-labels fix copies these onto the workloads.
        ns_labels.insert("team".into(), json!(name));
        ns_labels.insert("environment".into(), json!("production"));
        ns_labels.insert("cost-center".into(), json!(name));
    }
    let istio = wants("mesh-enrolled") && cfg.mesh.kind == MeshKind::Istio;
    if istio {
        ns_labels.insert("istio-injection".into(), json!("enabled"));
    }
    // A tenant's namespace says so at every tier; from the tier that asks
    // for it, its pods run sandboxed.
    if let Some(t) = &req.tenant {
        ns_labels.insert(cfg.tenancy.label.clone(), json!(t));
    }
    let runtime_class = req
        .tenant
        .as_ref()
        .filter(|_| wants("sandboxed-runtime"))
        .and_then(|_| cfg.tenancy.runtime_classes.first().cloned());
    out.push(json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": ns, "labels": ns_labels}}));

    if wants("namespace-quota") {
        out.push(json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": meta(format!("{name}-quota")),
            "spec": {"hard": {"requests.cpu": "4", "requests.memory": "8Gi",
                "limits.cpu": "8", "limits.memory": "16Gi", "pods": "50"}}}));
        out.push(json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": meta(format!("{name}-limits")),
            "spec": {"limits": [{"type": "Container",
                "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
                "default": {"cpu": "500m", "memory": "256Mi"}}]}}));
    }
    if wants("default-deny-network-policy") {
        out.push(
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": meta(format!("{name}-default-deny")),
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}),
        );
        if req.kind.serves() {
            // What the app needs: its port, from its own namespace and the
            // ingress controller's.
            out.push(json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": meta(format!("{name}-allow-ingress")),
                "spec": {"podSelector": {"matchLabels": sel},
                    "policyTypes": ["Ingress"],
                    "ingress": [{"from": [{"podSelector": {}},
                        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}],
                        "ports": [{"protocol": "TCP", "port": port}]}]}}));
        }
    }
    let service_account = wants("automount-service-account-token");
    if service_account {
        out.push(
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(name.to_string()),
            "automountServiceAccountToken": false}),
        );
    }
    if wants("rbac-group-subjects") || wants("cluster-admin-binding") {
        // Least privilege for the team: read the application's objects,
        // granted to a group of the identity provider.
        out.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": meta(format!("{name}-read")),
            "rules": [{"apiGroups": ["", "apps", "batch"],
                "resources": ["pods", "pods/log", "services", "configmaps", "deployments", "statefulsets", "cronjobs", "jobs"],
                "verbs": ["get", "list", "watch"]}]}));
        out.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": meta(format!("{name}-read")),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": format!("{name}-read")},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": format!("{name}-developers")}]}));
    }
    let priority = wants("priority-class").then(|| format!("{name}-standard"));
    if let Some(p) = &priority {
        out.push(json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": p, "labels": labels.clone()},
            "value": 100000, "globalDefault": false, "preemptionPolicy": "PreemptLowerPriority",
            "description": format!("{name}: failover and capacity decisions across clusters rank by it")}));
    }
    out.push(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(format!("{name}-config")),
        "data": {"LOG_LEVEL": "info", "PORT": port.to_string()}}),
    );

    // The pod.
    let mut container = json!({"name": name, "image": image,
        "envFrom": [{"configMapRef": {"name": format!("{name}-config")}}]});
    if req.kind.serves() {
        container["ports"] = json!([{"name": "http", "containerPort": port, "protocol": "TCP"}]);
    }
    if wants("resources") {
        container["resources"] = json!({"requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": "500m", "memory": "256Mi"}});
    }
    let mut pod = json!({"containers": [container]});
    if wants("read-only-root-filesystem") {
        // The fix makes the root filesystem read-only; /tmp stays writable.
        pod["containers"][0]["volumeMounts"] = json!([{"name": "tmp", "mountPath": "/tmp"}]);
        pod["volumes"] = json!([{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]);
    }
    if service_account {
        pod["serviceAccountName"] = json!(name);
    }
    if let Some(p) = &priority {
        pod["priorityClassName"] = json!(p);
    }
    if let Some(rc) = &runtime_class {
        pod["runtimeClassName"] = json!(rc);
    }
    let replicated = req.kind.serves();
    if replicated && wants("zone-spread-required") {
        pod["topologySpreadConstraints"] = json!([{"maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": sel}}]);
    }
    let mut template_meta = json!({"labels": labels.clone()});
    if wants("mesh-enrolled") && cfg.mesh.kind == MeshKind::Linkerd {
        template_meta["annotations"] = json!({"linkerd.io/inject": "enabled"});
    }
    let template = json!({"metadata": template_meta, "spec": pod});
    let autoscaled = replicated && wants("autoscaled");
    let workload = match req.kind {
        AppKind::Deployment | AppKind::StatefulSet => {
            let mut spec = json!({"selector": {"matchLabels": sel}, "template": template});
            if !autoscaled {
                // With an HPA the replicas are its: setting them here would
                // fight it on every apply.
                spec["replicas"] = json!(if wants("min-replicas") { 2 } else { 1 });
            }
            if req.kind == AppKind::StatefulSet {
                spec["serviceName"] = json!(name);
            }
            json!({"apiVersion": "apps/v1", "kind": req.kind.kind(), "metadata": meta(name.to_string()), "spec": spec})
        }
        AppKind::CronJob => {
            let mut t = template;
            t["spec"]["restartPolicy"] = json!("OnFailure");
            json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": meta(name.to_string()),
                "spec": {"schedule": "0 3 * * *", "concurrencyPolicy": "Forbid",
                    "jobTemplate": {"metadata": {"labels": labels.clone()},
                        "spec": {"backoffLimit": 2, "template": t}}}})
        }
    };
    if req.kind.serves() {
        let mut spec = json!({"type": "ClusterIP", "selector": sel,
            "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}]});
        if req.kind == AppKind::StatefulSet {
            // The StatefulSet's governing Service: stable pod DNS names.
            spec["clusterIP"] = json!("None");
        }
        out.push(json!({"apiVersion": "v1", "kind": "Service", "metadata": meta(name.to_string()), "spec": spec}));
    }
    if replicated && wants("pdb") {
        out.push(json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta(name.to_string()),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": sel}}}));
    }
    if autoscaled {
        out.push(json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": meta(name.to_string()),
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": req.kind.kind(), "name": name},
                "minReplicas": 2, "maxReplicas": 10,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 70}}}]}}));
    }
    // The workload after what it is judged with (its PDB, HPA and
    // ServiceAccount): applied in this order, the facts exist before it does.
    out.push(workload);
    if req.kind.serves() && wants("ingress-tls") {
        let host = req
            .host
            .clone()
            .unwrap_or_else(|| format!("{name}.example.com"));
        let mut m = meta(name.to_string());
        m["annotations"] = json!({"cert-manager.io/cluster-issuer": "letsencrypt"});
        out.push(
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": m,
            "spec": {"ingressClassName": "nginx",
                "tls": [{"hosts": [host], "secretName": format!("{name}-tls")}],
                "rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix",
                    "backend": {"service": {"name": name, "port": {"name": "http"}}}}]}}]}}),
        );
    }
    out
}

/// The config for the fix pass: the user's, with every fix on (the opt-in
/// ones and the liveness probe too): the scaffold is new, nothing runs yet
/// that a fix could break.
fn all_fixes_on(cfg: &PolicyConfig) -> PolicyConfig {
    let mut c = cfg.clone();
    for r in rules::ALL.iter().filter(|r| r.fix.exists()) {
        let o = c
            .rules
            .entry(RuleId(r.id.to_string()))
            .or_insert(RuleOverride {
                action: None,
                fix: None,
            });
        o.fix = Some(OnOff(true));
    }
    c.fixes.liveness_probe = OnOff(true);
    c
}

fn sources_of(files: &[(String, String)]) -> Result<Vec<manifest::SourceFile>, ScaffoldError> {
    files
        .iter()
        .map(|(name, text)| {
            manifest::parse_source(name, None, text)
                .map_err(|e| ScaffoldError::Internal(format!("{name}: {e}")))
        })
        .collect()
}

/// The skeleton with the catalog's fixes applied at `tier`.
fn with_fixes(
    objects: &[Value],
    tier: Tier,
    cfg: &PolicyConfig,
) -> Result<Vec<Value>, ScaffoldError> {
    let texts = objects
        .iter()
        .enumerate()
        .map(|(i, o)| Ok((format!("object {i}"), to_yaml(o)?)))
        .collect::<Result<Vec<_>, ScaffoldError>>()?;
    let sources = sources_of(&texts)?;
    let engine = Engine::new(all_fixes_on(cfg));
    let settings = Settings {
        fix: true,
        complete: true,
        ..Settings::check(Some(tier))
    };
    let report = judge_all(&engine, &sources, &settings);
    if let Some(p) = report.problems.first() {
        return Err(ScaffoldError::Internal(p.message.clone()));
    }
    let mut out = objects.to_vec();
    for j in report.judged {
        if let (Some(fixed), Some(slot)) = (j.eval.fixed, out.get_mut(j.source)) {
            *slot = fixed;
        }
    }
    Ok(out)
}

/// What `tiergate check --tier N --complete` reports on the files: one line
/// per finding.
fn check(files: &[File], tier: Tier, cfg: &PolicyConfig) -> Result<Vec<String>, ScaffoldError> {
    let texts: Vec<(String, String)> = files
        .iter()
        .map(|f| (f.name.clone(), f.text.clone()))
        .collect();
    let sources = sources_of(&texts)?;
    let engine = Engine::new(cfg.clone());
    let settings = Settings {
        complete: true,
        ..Settings::check(Some(tier))
    };
    let report = judge_all(&engine, &sources, &settings);
    let mut out: Vec<String> = report.problems.iter().map(|p| p.message.clone()).collect();
    for j in &report.judged {
        for f in &j.eval.findings {
            out.push(format!(
                "{}: {} {:?}: {} ({}): {}",
                j.file, j.kind, j.name, f.rule, f.action, f.message
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The embedded defaults, as the CLI loads them.
    fn defaults() -> PolicyConfig {
        crate::config::Config::load(None).unwrap().0.policy
    }

    fn req(tier: Tier, kind: AppKind) -> Request {
        Request {
            name: "shop".into(),
            tier,
            kind,
            image: None,
            port: 8080,
            host: None,
            tenant: None,
        }
    }

    #[test]
    fn every_rule_is_met_by_a_fix_a_step_or_the_skeleton() {
        let missing: Vec<&str> = coverage()
            .into_iter()
            .filter(|(_, how)| how.is_empty())
            .map(|(id, _)| id)
            .collect();
        assert_eq!(missing, Vec::<&str>::new(), "rules the scaffold ignores");
        for id in STEPS.iter().chain(HOLDS) {
            assert!(rules::by_id(id).is_some(), "{id} is not a rule");
        }
    }

    #[test]
    fn every_tier_and_kind_passes_its_own_tier() {
        let cfg = defaults();
        for tier in Tier::ALL {
            for kind in AppKind::ALL {
                let files = scaffold(&req(tier, kind), &cfg)
                    .unwrap_or_else(|e| panic!("tier {tier} {kind:?}: {e}"));
                assert!(files.iter().any(|f| f.name == "kustomization.yaml"));
                assert!(files.iter().any(|f| f.name == "namespace.yaml"));
            }
        }
    }

    #[test]
    fn a_tier_adds_what_its_rules_ask_and_nothing_above_it() {
        let cfg = defaults();
        let names = |tier| -> Vec<String> {
            scaffold(&req(tier, AppKind::Deployment), &cfg)
                .unwrap()
                .into_iter()
                .map(|f| f.name)
                .collect()
        };
        let t1 = names(Tier::Foundation);
        assert_eq!(
            t1,
            [
                "namespace.yaml",
                "configmap-config.yaml",
                "service.yaml",
                "deployment.yaml",
                "kustomization.yaml"
            ]
        );
        let t2 = names(Tier::Production);
        for f in [
            "resourcequota-quota.yaml",
            "limitrange-limits.yaml",
            "networkpolicy-default-deny.yaml",
            "networkpolicy-allow-ingress.yaml",
            "poddisruptionbudget.yaml",
            "horizontalpodautoscaler.yaml",
            "ingress.yaml",
            "role-read.yaml",
            "rolebinding-read.yaml",
        ] {
            assert!(t2.contains(&f.to_string()), "{f} at tier 2: {t2:?}");
        }
        assert!(!t2.contains(&"serviceaccount.yaml".to_string()));
        assert!(names(Tier::Enterprise).contains(&"serviceaccount.yaml".to_string()));
        assert!(!names(Tier::Enterprise).contains(&"priorityclass-standard.yaml".to_string()));
        assert!(names(Tier::MultiCluster).contains(&"priorityclass-standard.yaml".to_string()));
    }

    #[test]
    fn the_fixes_harden_the_pod_and_the_tier_4_spread_is_required() {
        let files = scaffold(&req(Tier::MultiCluster, AppKind::Deployment), &defaults()).unwrap();
        let dep = &files
            .iter()
            .find(|f| f.name == "deployment.yaml")
            .unwrap()
            .text;
        let d: Value = manifest::parse_document(dep).unwrap().unwrap();
        let pod = &d["spec"]["template"]["spec"];
        let c = &pod["containers"][0];
        assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert!(c["readinessProbe"].is_object() && c["startupProbe"].is_object());
        assert!(c["lifecycle"]["preStop"].is_object());
        assert_eq!(
            pod["topologySpreadConstraints"][0]["whenUnsatisfiable"],
            "DoNotSchedule"
        );
        assert_eq!(d["metadata"]["labels"]["team"], "shop");
        assert!(d["spec"].get("replicas").is_none(), "the HPA owns replicas");
        let ns = &files
            .iter()
            .find(|f| f.name == "namespace.yaml")
            .unwrap()
            .text;
        assert!(ns.contains("istio-injection: enabled"), "{ns}");
    }

    #[test]
    fn a_tenant_runs_sandboxed_and_linkerd_is_enrolled_on_the_template() {
        let cfg = crate::policy::config::from_test_yaml("mesh: {kind: linkerd}\n");
        let mut r = req(Tier::Hyperscale, AppKind::StatefulSet);
        r.tenant = Some("acme".into());
        let files = scaffold(&r, &cfg).unwrap();
        let sts = &files
            .iter()
            .find(|f| f.name == "statefulset.yaml")
            .unwrap()
            .text;
        assert!(sts.contains("runtimeClassName: gvisor"), "{sts}");
        assert!(sts.contains("linkerd.io/inject: enabled"), "{sts}");
        let ns = &files
            .iter()
            .find(|f| f.name == "namespace.yaml")
            .unwrap()
            .text;
        assert!(ns.contains("tiergate.io/tenant: acme"), "{ns}");
    }

    #[test]
    fn what_cannot_pass_is_refused_with_the_findings() {
        let cfg = defaults();
        let mut r = req(Tier::Production, AppKind::Deployment);
        r.image = Some("nginx:1.27".into());
        let e = scaffold(&r, &cfg).unwrap_err().to_string();
        assert!(e.contains("would not pass tier 2 (production)"), "{e}");
        assert!(e.contains("image-digest"), "{e}");
        // At tier 1 a tag is enough.
        r.tier = Tier::Foundation;
        scaffold(&r, &cfg).unwrap();
        // A registry outside the allowed list.
        let cfg = crate::policy::config::from_test_yaml("registries: {allowed: [ghcr.io/acme/]}\n");
        let e = scaffold(&req(Tier::Enterprise, AppKind::CronJob), &cfg)
            .unwrap_err()
            .to_string();
        assert!(e.contains("allowed-registries"), "{e}");
        for bad in ["", "Shop", "-shop", "shop-", "a_b", &"x".repeat(41)] {
            let mut r = req(Tier::Foundation, AppKind::Deployment);
            r.name = bad.to_string();
            assert!(
                matches!(scaffold(&r, &cfg), Err(ScaffoldError::Name(_))),
                "{bad:?}"
            );
        }
    }
}
