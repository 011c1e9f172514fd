//! The audit: every existing object of the kinds the webhook judges, judged
//! as admission would judge its write (the same namespace → Context
//! resolver, the same cluster facts from the same watch caches, the same
//! exemptions and TierExceptions), and what it means for switching each
//! namespace to `enforce`.
//!
//! - Objects are listed a page at a time (`limit`/`continue`) and dropped
//!   once judged: only the results are kept.
//! - An object a controller made is judged at its owner (a Deployment's
//!   ReplicaSets and Pods are not separate offenders); bare Pods and objects
//!   whose owner is not listed here are judged themselves. Owners are listed
//!   before what they own, so this needs only the owners' uids.
//! - Each object is judged in `enforce` at its namespace's tier (and at the
//!   next tier, for "what would it cost"); its findings are reported with the
//!   action the namespace's own mode takes.
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::Client;
use serde_json::Value;

pub mod report;

use crate::cli::judge::Judged;
use crate::cluster::{self, CacheMetrics, Caches};
use crate::policy::namespace::{self, NamespaceInput};
use crate::policy::{Action, Engine, Evaluation, Mode, Options, Tier};

/// A kind the audit lists: the webhook's kinds, owners before what they own.
struct Listed {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
}

const fn listed(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
) -> Listed {
    Listed {
        group,
        version,
        kind,
        plural,
        namespaced,
    }
}

/// Owners first (CronJobs before Jobs, Deployments before ReplicaSets,
/// everything before Pods).
const KINDS: &[Listed] = &[
    listed("", "v1", "Namespace", "namespaces", false),
    listed("batch", "v1", "CronJob", "cronjobs", true),
    listed("apps", "v1", "Deployment", "deployments", true),
    listed("apps", "v1", "StatefulSet", "statefulsets", true),
    listed("apps", "v1", "DaemonSet", "daemonsets", true),
    listed(
        "",
        "v1",
        "ReplicationController",
        "replicationcontrollers",
        true,
    ),
    listed("batch", "v1", "Job", "jobs", true),
    listed("apps", "v1", "ReplicaSet", "replicasets", true),
    listed("", "v1", "Pod", "pods", true),
    listed("", "v1", "PodTemplate", "podtemplates", true),
    listed("", "v1", "Service", "services", true),
    listed("", "v1", "ConfigMap", "configmaps", true),
    listed("", "v1", "Secret", "secrets", true),
    listed("networking.k8s.io", "v1", "Ingress", "ingresses", true),
    listed(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
    ),
    listed("rbac.authorization.k8s.io", "v1", "Role", "roles", true),
    listed(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        true,
    ),
    listed(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        false,
    ),
    listed(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
    ),
];

/// The dynamic API of a resource.
pub fn api_resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.to_string(),
        version: version.to_string(),
        api_version: if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        },
        kind: kind.to_string(),
        plural: plural.to_string(),
    }
}

/// The namespaces the shipped webhook configurations never send (so the
/// audit does not judge them either).
pub const EXCLUDED: &[&str] = &["kube-system", "kube-node-lease", "tiergate-system"];

/// What to audit.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// Only this namespace (and no cluster-scoped objects).
    pub namespace: Option<String>,
    /// Judge every object at this tier, whatever its namespace says.
    pub tier: Option<Tier>,
    pub exclude: Vec<String>,
    /// Objects per list page.
    pub page: u32,
    /// How long to wait for the watch caches to sync.
    pub sync_timeout: Duration,
    /// Kinds not listed (the server skips Secrets: listing them would give
    /// it every credential of the cluster; admission judges their writes).
    pub skip_kinds: Vec<String>,
    /// List requests per second at most.
    pub qps: u32,
    /// Keep every judged object (the CLI prints them all), or only the
    /// failing ones, at most this many per namespace (the server: its
    /// memory stays bounded whatever the cluster's size; everything is
    /// still counted).
    pub keep_per_namespace: Option<usize>,
}

/// What switching a namespace to `enforce` would do.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Readiness {
    pub tier: u8,
    pub mode: String,
    pub objects: usize,
    /// Objects with a deny finding in `enforce` at the namespace's tier.
    pub denied_in_enforce: usize,
    /// Of those, the ones every deny finding of which a fix covers (they
    /// pass on their next write, which the mutating webhook fixes).
    pub pass_after_fixes: usize,
    /// The others: what breaks the next apply once the namespace enforces.
    pub blocking: usize,
    /// Blocking objects by rule, most first.
    pub top_rules: Vec<(String, usize)>,
    /// Blocking objects at the next tier up (none at tier 5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_tier_blocking: Option<usize>,
}

impl Readiness {
    pub fn ready(&self) -> bool {
        self.blocking == 0
    }

    pub fn verdict(&self) -> String {
        if self.ready() {
            "ready".to_string()
        } else {
            format!("not ready ({} blocking objects)", self.blocking)
        }
    }
}

/// The audit's result: each judged object (its findings with the action its
/// namespace's mode takes), and the readiness of each namespace ("" for
/// cluster-scoped objects).
#[derive(Debug, Default)]
pub struct Audit {
    pub judged: Vec<Judged>,
    /// For each of `judged`: its apiVersion and uid (for reports).
    pub refs: Vec<(String, String)>,
    /// Objects judged at their owner instead.
    pub at_owner: usize,
    /// Kinds that could not be listed (forbidden, not served), with why.
    pub not_listed: Vec<String>,
    pub readiness: BTreeMap<String, Readiness>,
    /// Every object and result counted, kept or not: by namespace, the
    /// objects with no finding and the results (fail, warn, skip).
    pub passed: BTreeMap<String, usize>,
    pub counts: BTreeMap<String, report::Counts>,
    /// Objects by (tier, mode, result) and findings by (tier, rule,
    /// action), for the gauges.
    pub objects_by: BTreeMap<(u8, String, &'static str), i64>,
    pub findings_by: BTreeMap<(u8, &'static str, &'static str), i64>,
    /// Objects judged.
    pub total: usize,
}

impl Audit {
    /// Count one judged object (its findings with their actions capped by
    /// the namespace's mode); whether it has anything to report.
    pub fn count(&mut self, ns: &str, tier: Tier, mode: &str, eval: &Evaluation) -> bool {
        self.total += 1;
        let failing = !eval.findings.is_empty() || !eval.exempted.is_empty();
        let result = if eval.findings.is_empty() {
            "pass"
        } else {
            "fail"
        };
        *self
            .objects_by
            .entry((tier.number(), mode.to_string(), result))
            .or_default() += 1;
        let c = self.counts.entry(ns.to_string()).or_default();
        for f in &eval.findings {
            if f.action == Action::Warn {
                c.warn += 1;
            } else {
                c.fail += 1;
            }
            *self
                .findings_by
                .entry((tier.number(), f.rule, f.action.name()))
                .or_default() += 1;
        }
        c.skip += eval
            .exempted
            .iter()
            .map(|e| e.findings.len())
            .sum::<usize>();
        if !failing {
            *self.passed.entry(ns.to_string()).or_default() += 1;
        }
        failing
    }
}

/// Start the watch caches, wait for them, and audit.
pub async fn run(client: Client, engine: &Engine, opts: &AuditOptions) -> anyhow::Result<Audit> {
    let metrics = CacheMetrics::new()?;
    let watches = cluster::spawn(client.clone(), metrics);
    let caches = watches.caches.clone();
    let t0 = std::time::Instant::now();
    while !caches.synced() {
        if t0.elapsed() > opts.sync_timeout {
            anyhow::bail!(
                "the cluster caches did not sync within {} s (can this identity list \
                 namespaces, networkpolicies, resourcequotas, limitranges, poddisruptionbudgets, \
                 horizontalpodautoscalers, serviceaccounts, clusterroles and tierexceptions?)",
                opts.sync_timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(run_with(&client, &caches, engine, opts, None).await)
}

/// Audit with caches that have synced (the server's own).
/// With a `verifier`, the images `images.verify` names are verified too
/// (the webhook's verifier: what the audit verifies, a rollout finds
/// cached).
pub async fn run_with(
    client: &Client,
    caches: &Arc<Caches>,
    engine: &Engine,
    opts: &AuditOptions,
    verifier: Option<&crate::supply::Verifier>,
) -> Audit {
    let mut audit = Audit::default();
    let mut owners: HashSet<String> = HashSet::new();
    let mut state = State::default();
    let gap = Duration::from_secs(1) / opts.qps.max(1);
    let mut last: Option<tokio::time::Instant> = None;
    for k in KINDS {
        if (!k.namespaced && opts.namespace.is_some())
            || opts.skip_kinds.iter().any(|x| x == k.kind)
        {
            continue;
        }
        let ar = api_resource(k.group, k.version, k.kind, k.plural);
        let api: Api<DynamicObject> = match (&opts.namespace, k.namespaced) {
            (Some(ns), true) => Api::namespaced_with(client.clone(), ns, &ar),
            _ => Api::all_with(client.clone(), &ar),
        };
        let mut lp = ListParams::default().limit(opts.page);
        loop {
            // The apiserver's budget: at most `qps` lists a second.
            if let Some(t) = last {
                tokio::time::sleep_until(t + gap).await;
            }
            last = Some(tokio::time::Instant::now());
            let page = match api.list(&lp).await {
                Ok(p) => p,
                Err(e) => {
                    audit.not_listed.push(format!("{}: {e}", k.plural));
                    break;
                }
            };
            for item in page.items {
                let mut obj = match serde_json::to_value(&item) {
                    Ok(v) => v,
                    Err(_) => continue,
                };
                obj["apiVersion"] = Value::String(ar.api_version.clone());
                obj["kind"] = Value::String(ar.kind.clone());
                let verdicts = match verifier {
                    Some(v) => {
                        let images = crate::supply::images_of(&obj);
                        Some(crate::supply::verify_all(v, &images).await)
                    }
                    None => None,
                };
                judge(
                    engine,
                    caches,
                    opts,
                    &mut owners,
                    &mut state,
                    &mut audit,
                    obj,
                    verdicts.as_ref(),
                );
            }
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(c) => lp = lp.continue_token(&c),
                None => break,
            }
        }
    }
    audit.readiness = state.finish();
    audit
}

/// Readiness counters as objects are judged.
#[derive(Default)]
struct State {
    by_ns: BTreeMap<String, (Readiness, BTreeMap<String, usize>, usize)>,
    index: usize,
    /// Failing objects kept, by namespace (with `keep_per_namespace`).
    kept: BTreeMap<String, usize>,
}

impl State {
    fn finish(self) -> BTreeMap<String, Readiness> {
        self.by_ns
            .into_iter()
            .map(|(ns, (mut r, rules, next))| {
                let mut top: Vec<(String, usize)> = rules.into_iter().collect();
                top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                r.top_rules = top;
                if r.tier < 5 {
                    r.next_tier_blocking = Some(next);
                }
                (ns, r)
            })
            .collect()
    }
}

/// Whether an evaluation in `enforce` would deny, and whether fixes cover
/// every denial.
fn denial(e: &Evaluation) -> Option<bool> {
    let denies: Vec<_> = e
        .findings
        .iter()
        .filter(|f| f.action == Action::Deny)
        .collect();
    (!denies.is_empty()).then(|| denies.iter().all(|f| f.fixable))
}

#[allow(clippy::too_many_arguments)]
fn judge(
    engine: &Engine,
    caches: &Arc<Caches>,
    opts: &AuditOptions,
    owners: &mut HashSet<String>,
    state: &mut State,
    audit: &mut Audit,
    obj: Value,
    verdicts: Option<&crate::supply::Verdicts>,
) {
    let s = |p: &str| obj.pointer(p).and_then(Value::as_str).map(str::to_string);
    let kind = s("/kind").unwrap_or_default();
    let name = s("/metadata/name").unwrap_or_default();
    let own_ns = if kind == "Namespace" {
        Some(name.clone())
    } else {
        s("/metadata/namespace")
    };
    if own_ns
        .as_deref()
        .is_some_and(|n| opts.exclude.iter().any(|x| x == n))
    {
        return;
    }
    if let Some(uid) = s("/metadata/uid") {
        owners.insert(uid);
    }
    // Judged at its owner, when the owner was listed (and so judged).
    let owner_uid = obj
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .and_then(|refs| {
            refs.iter()
                .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        })
        .and_then(|r| r.get("uid"))
        .and_then(Value::as_str);
    if owner_uid.is_some_and(|u| owners.contains(u)) {
        audit.at_owner += 1;
        return;
    }
    let ns_key = own_ns.clone().unwrap_or_default();
    let (labels, facts) = match (&own_ns, kind.as_str()) {
        (Some(_), "Namespace") => (
            Some(namespace::labels_of(Some(&obj))),
            caches.facts(&ns_key),
        ),
        (Some(ns), _) => (
            caches.namespaces.get(ns).map(|s| s.payload.0.clone()),
            caches.facts(ns),
        ),
        (None, _) => (None, caches.cluster_facts()),
    };
    let facts = Arc::new(facts);
    let now = crate::clock::now();
    // Resolved once: the namespace's own mode caps the action reported;
    // readiness is judged in enforce, at the tier and at the next one.
    let own = namespace::resolve(
        NamespaceInput {
            name: own_ns.as_deref(),
            labels: labels.as_ref(),
            facts,
            requester: None,
            tier: opts.tier,
            mode: None,
            now,
        },
        engine.config(),
    );
    let tier = own.ctx.tier;
    let mut enforce = own.ctx.clone();
    enforce.mode = Mode::Enforce;
    // What the verifier found, at the tier judged.
    let images = verdicts.map(|v| (v, crate::supply::images_of(&obj)));
    let image_facts = |t: Tier| match &images {
        Some((v, i)) => crate::policy::Fact::Known(Arc::new(crate::supply::facts_from(
            v,
            &engine.config().images,
            i,
            t.number(),
        ))),
        None => crate::policy::Fact::Unknown,
    };
    enforce.images = image_facts(tier);
    let o = Options {
        pss: None,
        only: None,
        fix: false,
        exact_fixable: true,
        // Every rule, also those the apiserver's policies judge.
        skip_covered: false,
    };
    let mut eval = match engine.evaluate(&obj, &enforce, &o) {
        Ok(e) => e,
        Err(e) => {
            audit
                .not_listed
                .push(format!("{kind} {ns_key}/{name}: cannot be judged: {e}"));
            return;
        }
    };
    let next = tier.next().and_then(|t| {
        let mut at = enforce.clone();
        at.tier = t;
        at.images = image_facts(t);
        engine.evaluate(&obj, &at, &o).ok().and_then(|e| denial(&e))
    });
    let entry = state.by_ns.entry(ns_key).or_insert_with(|| {
        (
            Readiness {
                tier: tier.number(),
                mode: own.ctx.mode.name().to_string(),
                ..Readiness::default()
            },
            BTreeMap::new(),
            0,
        )
    });
    let (r, rules, next_blocking) = entry;
    r.objects += 1;
    match denial(&eval) {
        Some(true) => {
            r.denied_in_enforce += 1;
            r.pass_after_fixes += 1;
        }
        Some(false) => {
            r.denied_in_enforce += 1;
            r.blocking += 1;
            let mut seen: Vec<&str> = Vec::new();
            for f in eval
                .findings
                .iter()
                .filter(|f| f.action == Action::Deny && !f.fixable)
            {
                if !seen.contains(&f.rule) {
                    seen.push(f.rule);
                    *rules.entry(f.rule.to_string()).or_default() += 1;
                }
            }
        }
        None => {}
    }
    if next == Some(false) {
        *next_blocking += 1;
    }
    // What admission does today: the namespace's mode caps the action.
    let cap = own.ctx.mode.cap();
    for f in &mut eval.findings {
        f.action = f.action.min(cap);
    }
    eval.findings.sort_by_key(|f| std::cmp::Reverse(f.action));
    state.index += 1;
    // Counted, whether kept or not.
    let ns_key = own_ns.clone().unwrap_or_default();
    let failing = audit.count(&ns_key, tier, own.ctx.mode.name(), &eval);
    if let Some(max) = opts.keep_per_namespace {
        let kept = state.kept.entry(ns_key).or_default();
        if !failing || *kept >= max {
            return;
        }
        *kept += 1;
    }
    audit.refs.push((
        s("/apiVersion").unwrap_or_default(),
        s("/metadata/uid").unwrap_or_default(),
    ));
    audit.judged.push(Judged {
        file: "cluster".to_string(),
        source: 0,
        document: state.index,
        item: Vec::new(),
        line: 0,
        kind,
        namespace: s("/metadata/namespace"),
        name,
        tier,
        notes: own.notes,
        eval,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Finding;

    fn finding(action: Action, fixable: bool) -> Finding {
        Finding {
            rule: "privileged",
            tier: 1,
            action,
            message: String::new(),
            path: String::new(),
            container: None,
            fixable,
        }
    }

    #[test]
    fn an_object_blocks_only_when_a_denial_has_no_fix() {
        let e = |f: Vec<Finding>| Evaluation {
            findings: f,
            ..Evaluation::default()
        };
        assert_eq!(denial(&e(vec![])), None);
        assert_eq!(denial(&e(vec![finding(Action::Warn, false)])), None);
        assert_eq!(denial(&e(vec![finding(Action::Deny, true)])), Some(true));
        assert_eq!(
            denial(&e(vec![
                finding(Action::Deny, true),
                finding(Action::Deny, false)
            ])),
            Some(false)
        );
        let r = Readiness {
            blocking: 2,
            ..Readiness::default()
        };
        assert_eq!(r.verdict(), "not ready (2 blocking objects)");
        assert!(Readiness::default().ready());
        assert_eq!(Tier::Foundation.next(), Some(Tier::Production));
        assert_eq!(Tier::Hyperscale.next(), None);
    }
}
