//! `admissionPolicies: managed`: the replica that holds the
//! `tiergate-admission-policies` Lease keeps the apiserver's own policies
//! (`tiergate export admission-policies`, for the apiserver's version) in
//! step with the config in force: it applies them (server-side apply, field
//! manager `tiergate`) once it leads, after every reload and every 10
//! minutes (so a hand edit is put back), and deletes the tiergate policies
//! and bindings the config no longer makes. Another `admissionPolicies`
//! value leaves them alone (a GitOps pipeline owns them then).
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::Client;
use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use serde_json::Value;
use tracing::{info, warn};

use super::http::AppState;
use crate::export::{self, ExportOptions, KUBE_MINORS};
use crate::policy::config::AdmissionPolicies;

/// The Lease one replica holds to apply the policies.
pub const LEASE: &str = "tiergate-admission-policies";
/// How often the leader applies them again with no reload.
const REPAIR: Duration = Duration::from_secs(600);
/// The label every generated object carries.
const MANAGED: &str = "app.kubernetes.io/managed-by=tiergate";

/// The kinds the export makes, with their plurals, in the order stale ones
/// are deleted (bindings before their policies).
const KINDS: [(&str, &str); 4] = [
    (
        "ValidatingAdmissionPolicyBinding",
        "validatingadmissionpolicybindings",
    ),
    ("ValidatingAdmissionPolicy", "validatingadmissionpolicies"),
    (
        "MutatingAdmissionPolicyBinding",
        "mutatingadmissionpolicybindings",
    ),
    ("MutatingAdmissionPolicy", "mutatingadmissionpolicies"),
];

/// `tiergate_admission_policies_*`.
#[derive(Clone)]
pub struct PolicyMetrics {
    syncs: IntCounterVec,
    objects: IntGauge,
    leader: IntGauge,
}

impl PolicyMetrics {
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let syncs = IntCounterVec::new(
            Opts::new(
                "tiergate_admission_policies_syncs_total",
                "Times the leader applied the admission policies, by result (ok or error).",
            ),
            &["result"],
        )?;
        let objects = IntGauge::new(
            "tiergate_admission_policies_objects",
            "Admission policies and bindings the last successful sync applied.",
        )?;
        let leader = IntGauge::new(
            "tiergate_admission_policies_leader",
            "1 on the replica that holds the admission-policies Lease.",
        )?;
        registry.register(Box::new(syncs.clone()))?;
        registry.register(Box::new(objects.clone()))?;
        registry.register(Box::new(leader.clone()))?;
        Ok(PolicyMetrics {
            syncs,
            objects,
            leader,
        })
    }
}

/// Why a sync failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("the apiserver's version {0:?} is not one the export targets (1.30 to 1.37)")]
    Version(String),
    #[error(transparent)]
    Export(#[from] export::ExportError),
    #[error("{0}")]
    Api(#[from] kube::Error),
}

/// Start the loop (it waits for `admissionPolicies: managed` and the
/// Lease); `None` without a namespace for the Lease.
pub fn spawn(
    client: Client,
    state: Arc<AppState>,
    metrics: PolicyMetrics,
) -> Option<tokio::task::JoinHandle<()>> {
    let Some(ns) = super::audit::own_namespace() else {
        if state.active().engine.config().admission_policies == AdmissionPolicies::Managed {
            warn!("admissionPolicies: managed needs TIERGATE_NAMESPACE (or POD_NAMESPACE) for its Lease: the policies are not applied");
        }
        return None;
    };
    Some(tokio::spawn(run_loop(client, state, metrics, ns)))
}

async fn run_loop(client: Client, state: Arc<AppState>, metrics: PolicyMetrics, ns: String) {
    // Take part in the election only once the config asks for it.
    while state.active().engine.config().admission_policies != AdmissionPolicies::Managed {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let (mut leader, _lease_task, identity) = super::audit::lease(&client, &ns, LEASE).await;
    let mut applied: Option<(String, Instant)> = None;
    loop {
        let leading = *leader.borrow_and_update();
        metrics.leader.set(i64::from(leading));
        let active = state.active();
        let managed = active.engine.config().admission_policies == AdmissionPolicies::Managed;
        let due = match &applied {
            Some((digest, at)) => *digest != active.digest || at.elapsed() >= REPAIR,
            None => true,
        };
        if leading && managed && due {
            let cfg = active.config();
            match sync(&client, &cfg, &active.digest, &ns).await {
                Ok(n) => {
                    metrics.syncs.with_label_values(&["ok"]).inc();
                    metrics.objects.set(n as i64);
                    info!(identity, objects = n, config = %active.digest, "admission policies applied");
                    applied = Some((active.digest.clone(), Instant::now()));
                }
                Err(e) => {
                    metrics.syncs.with_label_values(&["error"]).inc();
                    warn!(error = %e, "applying the admission policies failed; retrying in 10 s (RBAC: admissionregistration.k8s.io validating/mutatingadmissionpolicies and their bindings: get, list, patch, delete)");
                    applied = None;
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    continue;
                }
            }
        }
        if !leading {
            applied = None;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            r = leader.changed() => {
                if r.is_err() {
                    return;
                }
            }
        }
    }
}

/// The apiserver's minor version, as the export targets it.
async fn kube_minor(client: &Client) -> Result<u32, SyncError> {
    let v = client.apiserver_version().await?;
    let minor: u32 = v
        .minor
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .map_err(|_| SyncError::Version(v.git_version.clone()))?;
    if minor < *KUBE_MINORS.start() {
        return Err(SyncError::Version(v.git_version));
    }
    // A newer apiserver serves everything the newest target uses.
    Ok(minor.min(*KUBE_MINORS.end()))
}

/// Apply the policies of `cfg`; delete tiergate's others. The number of
/// objects applied.
pub async fn sync(
    client: &Client,
    cfg: &crate::config::Config,
    digest: &str,
    own_ns: &str,
) -> Result<usize, SyncError> {
    let mut opts = ExportOptions {
        kube_minor: kube_minor(client).await?,
        config_digest: digest.to_string(),
        ..ExportOptions::default()
    };
    if !opts.excluded_namespaces.iter().any(|n| n == own_ns) {
        opts.excluded_namespaces.push(own_ns.to_string());
    }
    let exported = export::admission_policies(cfg, &opts)?;
    let pp = PatchParams::apply("tiergate").force();
    for obj in &exported.objects {
        let kind = obj["kind"].as_str().unwrap_or_default();
        let Some((_, plural)) = KINDS.iter().find(|(k, _)| *k == kind) else {
            continue;
        };
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        api(client, kind, plural)
            .patch(name, &pp, &Patch::Apply(obj))
            .await?;
    }
    for (kind, plural) in KINDS {
        if kind.starts_with("Mutating") && opts.kube_minor < export::MUTATING_FIRST_MINOR {
            continue;
        }
        let a = api(client, kind, plural);
        let existing = a.list(&ListParams::default().labels(MANAGED)).await?;
        for o in existing.items {
            let Some(name) = o.metadata.name.as_deref() else {
                continue;
            };
            if !wanted(&exported.objects, kind, name) && name.starts_with("tiergate-") {
                info!(
                    kind,
                    name, "deleting an admission policy the config no longer makes"
                );
                a.delete(name, &DeleteParams::default()).await?;
            }
        }
    }
    Ok(exported.objects.len())
}

fn wanted(objects: &[Value], kind: &str, name: &str) -> bool {
    objects
        .iter()
        .any(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}

fn api(client: &Client, kind: &str, plural: &str) -> Api<DynamicObject> {
    let ar = crate::audit::api_resource("admissionregistration.k8s.io", "v1", kind, plural);
    Api::all_with(client.clone(), &ar)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_configs_objects_are_wanted() {
        let objects = vec![
            json!({"kind": "ValidatingAdmissionPolicy", "metadata": {"name": "tiergate-deny"}}),
            json!({"kind": "ValidatingAdmissionPolicyBinding", "metadata": {"name": "tiergate-deny"}}),
        ];
        assert!(wanted(
            &objects,
            "ValidatingAdmissionPolicy",
            "tiergate-deny"
        ));
        assert!(!wanted(
            &objects,
            "ValidatingAdmissionPolicy",
            "tiergate-warn"
        ));
        assert!(!wanted(
            &objects,
            "MutatingAdmissionPolicy",
            "tiergate-deny"
        ));
        // Every kind the export makes has its plural here.
        let cfg = crate::config::Config::from_yaml("defaults: {tier: 3}\n", "t").expect("config");
        let e = export::admission_policies(&cfg, &ExportOptions::default()).expect("export");
        for o in &e.objects {
            let kind = o["kind"].as_str().unwrap_or_default();
            assert!(KINDS.iter().any(|(k, _)| *k == kind), "{kind}");
        }
    }
}
