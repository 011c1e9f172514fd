//! `deploy/`: tiergate's own manifests.
//!
//! - Both kustomize overlays render (`kubectl kustomize`, which must be
//!   installed: a missing kubectl fails, it is not skipped).
//! - Every rendered object passes `tiergate check --tier 5`, except the
//!   findings listed in `deploy/EXCEPTIONS.md`; a row there that matches no
//!   finding fails too.
//! - The webhook configurations, RBAC, Deployment and NetworkPolicies say
//!   what the deployment issue asks for.
//! - The Helm chart (`deploy/helm/tiergate`) lints, renders, passes the same
//!   check and renders the same objects as the overlays for the equivalent
//!   values (`ci/*-values.yaml`). It needs `target/tools/helm`
//!   (`scripts/install-helm.sh`); without it the Helm test prints SKIPPED,
//!   and fails instead when `TIERGATE_REQUIRE_HELM=1` (`make deploy-check`).
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_tiergate");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn root() -> PathBuf {
    PathBuf::from(ROOT)
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (is it installed?)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

/// A copy of `deploy/` with fresh dev certificates from `tiergate certs`, so
/// the test neither needs nor touches the developer's own certs.
struct Workspace {
    _tmp: tempfile::TempDir,
    deploy: PathBuf,
}

impl Workspace {
    fn new() -> Workspace {
        let tmp = tempfile::tempdir().unwrap();
        let deploy = tmp.path().join("deploy");
        for part in ["base", "components", "overlays", "helm"] {
            copy_dir(&root().join("deploy").join(part), &deploy.join(part));
        }
        let certs = deploy.join("overlays/dev/certs");
        for f in ["ca.crt", "tls.crt", "tls.key"] {
            let _ = std::fs::remove_file(certs.join(f));
        }
        run(Command::new(BIN)
            .args(["certs", "--service", "tiergate"])
            .args([
                "--namespace",
                "tiergate-system",
                "--out",
                certs.to_str().unwrap(),
            ]));
        Workspace { _tmp: tmp, deploy }
    }

    fn certs(&self, file: &str) -> PathBuf {
        self.deploy.join("overlays/dev/certs").join(file)
    }

    fn kustomize(&self, overlay: &str) -> String {
        let dir = self.deploy.join("overlays").join(overlay);
        run(Command::new("kubectl").arg("kustomize").arg(dir))
    }
}

/// The objects of a multi-document YAML rendering, by `Kind/name`.
fn objects(yaml: &str) -> BTreeMap<String, Value> {
    let src = tiergate::manifest::parse_source("rendering", None, yaml).unwrap();
    let mut out = BTreeMap::new();
    for doc in src.documents {
        let Some(v) = doc.value else { continue };
        let key = format!(
            "{}/{}",
            v["kind"].as_str().unwrap(),
            v["metadata"]["name"].as_str().unwrap()
        );
        assert!(out.insert(key.clone(), v).is_none(), "{key} rendered twice");
    }
    assert!(!out.is_empty(), "empty rendering");
    out
}

#[derive(Debug)]
struct Exception {
    rendering: String,
    object: String,
    rule: String,
}

impl Exception {
    fn matches(&self, object: &str, rule: &str) -> bool {
        let obj = match self.object.strip_suffix('*') {
            Some(prefix) => object.starts_with(prefix),
            None => object == self.object,
        };
        obj && rule == self.rule
    }
}

/// The table rows of deploy/EXCEPTIONS.md.
fn exceptions() -> Vec<Exception> {
    let text = std::fs::read_to_string(root().join("deploy/EXCEPTIONS.md")).unwrap();
    let mut out = Vec::new();
    for line in text.lines().filter(|l| l.trim_start().starts_with('|')) {
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        assert_eq!(cells.len(), 4, "EXCEPTIONS.md row needs 4 cells: {line}");
        if cells[0] == "rendering" || cells[0].starts_with('-') {
            continue;
        }
        assert!(
            matches!(cells[0], "dev" | "production"),
            "EXCEPTIONS.md: unknown rendering {:?}",
            cells[0]
        );
        assert!(
            cells[3].len() > 40,
            "EXCEPTIONS.md: say why, at length: {line}"
        );
        out.push(Exception {
            rendering: cells[0].to_string(),
            object: cells[1].to_string(),
            rule: cells[2].to_string(),
        });
    }
    assert!(!out.is_empty(), "no rows parsed from EXCEPTIONS.md");
    out
}

/// `tiergate check --tier 5 -o json` on a rendering; asserts every object
/// was judged and every deny finding is a listed exception (and every
/// listed exception for this rendering occurs).
fn check_tier5(rendering: &str, what: &str, yaml: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join(format!("{what}.yaml"));
    std::fs::write(&file, yaml).unwrap();
    let out = Command::new(BIN)
        .args(["check", "--tier", "5", "-o", "json"])
        .arg(&file)
        .output()
        .unwrap();
    let code = out.status.code();
    assert!(
        matches!(code, Some(0 | 1)),
        "{what}: tiergate check failed ({code:?}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let results = report["results"].as_array().unwrap();
    assert_eq!(
        results.len(),
        objects(yaml).len(),
        "{what}: every rendered object must be judged"
    );
    let listed: Vec<Exception> = exceptions()
        .into_iter()
        .filter(|e| e.rendering == rendering)
        .collect();
    let mut used = vec![false; listed.len()];
    let mut unexpected = Vec::new();
    for r in results {
        let object = format!(
            "{}/{}",
            r["kind"].as_str().unwrap(),
            r["name"].as_str().unwrap()
        );
        for f in r["findings"].as_array().unwrap() {
            if f["action"] != "deny" {
                continue;
            }
            let rule = f["rule"].as_str().unwrap();
            match listed.iter().position(|e| e.matches(&object, rule)) {
                Some(i) => used[i] = true,
                None => unexpected.push(format!("{object}: {rule}: {}", f["message"])),
            }
        }
    }
    assert!(
        unexpected.is_empty(),
        "{what}: tier 5 denies, not listed in deploy/EXCEPTIONS.md:\n{}",
        unexpected.join("\n")
    );
    let stale: Vec<_> = listed
        .iter()
        .zip(&used)
        .filter(|(_, u)| !**u)
        .map(|(e, _)| format!("{} {}", e.object, e.rule))
        .collect();
    assert!(
        stale.is_empty(),
        "{what}: deploy/EXCEPTIONS.md lists findings that no longer occur: {stale:?}"
    );
    assert_eq!(
        code,
        Some(if listed.is_empty() { 0 } else { 1 }),
        "{what}: exit code"
    );
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// What the issue asks of every rendering, whatever the overlay.
fn assert_common(what: &str, objs: &BTreeMap<String, Value>) {
    let ns = &objs["Namespace/tiergate-system"];
    assert!(
        ns["metadata"]["labels"]["tiergate.io/tier"].is_string(),
        "{what}: namespace tier label"
    );
    assert!(
        ns["metadata"]["labels"]["tiergate.io/mode"].is_string(),
        "{what}: namespace mode label"
    );

    // Least privilege: read-only verbs on exactly the cached resources.
    let role = &objs["ClusterRole/tiergate"];
    let (mut watched, mut listed, mut written) =
        (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for rule in role["rules"].as_array().unwrap() {
        let verbs = strings(&rule["verbs"]);
        let resources = strings(&rule["resources"]);
        match verbs.as_slice() {
            ["get", "list", "watch"] => watched.extend(resources),
            ["list"] => listed.extend(resources),
            ["get", "list", "create", "patch", "delete"] if resources == ["policyreports"] => {
                written.extend(resources)
            }
            other => panic!("{what}: RBAC verbs {other:?} on {resources:?}"),
        }
    }
    let want: BTreeSet<&str> = [
        "namespaces",
        "networkpolicies",
        "resourcequotas",
        "limitranges",
        "poddisruptionbudgets",
        "horizontalpodautoscalers",
        "serviceaccounts",
        "clusterroles",
        "tierexceptions",
    ]
    .into();
    assert_eq!(watched, want, "{what}: RBAC watched resources");
    let audited: BTreeSet<&str> = [
        "pods",
        "podtemplates",
        "replicationcontrollers",
        "services",
        "configmaps",
        "deployments",
        "replicasets",
        "statefulsets",
        "daemonsets",
        "jobs",
        "cronjobs",
        "ingresses",
        "roles",
        "rolebindings",
        "clusterrolebindings",
    ]
    .into();
    assert_eq!(listed, audited, "{what}: RBAC listed (audited) resources");
    assert_eq!(written, ["policyreports"].into(), "{what}: RBAC writes");
    assert!(
        !watched.contains("secrets") && !listed.contains("secrets"),
        "{what}: no secrets"
    );
    // The exception approver role is aggregated and bound to nobody.
    assert!(objs["ClusterRole/tiergate-exception-approver"]["aggregationRule"].is_object());
    assert!(
        !objs
            .values()
            .any(|o| o["roleRef"]["name"] == "tiergate-exception-approver"),
        "{what}: the approver role is bound to nobody"
    );
    assert!(objs.contains_key("CustomResourceDefinition/tierexceptions.tiergate.io"));
    // The one Role: the audit's Lease, in tiergate's namespace.
    let roles: Vec<&String> = objs
        .keys()
        .filter(|k| k.starts_with("Role/") || k.starts_with("RoleBinding/"))
        .collect();
    assert_eq!(
        roles,
        [
            "Role/tiergate-audit-lease",
            "RoleBinding/tiergate-audit-lease"
        ],
        "{what}: no extra roles"
    );
    let lease = &objs["Role/tiergate-audit-lease"]["rules"];
    assert_eq!(lease.as_array().unwrap().len(), 1);
    assert_eq!(strings(&lease[0]["resources"]), ["leases"]);
    assert_eq!(
        strings(&lease[0]["verbs"]),
        ["get", "create", "update", "patch"]
    );

    // The Deployment: admin-port probes, explicit token, digest.
    let pod = &objs["Deployment/tiergate"]["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/livez");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    let admin = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "admin")
        .unwrap();
    assert_eq!(admin["containerPort"], 8080);
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "admin");
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert!(
        pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["projected"]["sources"][0]["serviceAccountToken"].is_object()),
        "{what}: projected token"
    );
    assert!(
        c["image"].as_str().unwrap().contains("@sha256:"),
        "{what}: image digest"
    );
    // The image's ENTRYPOINT is `tiergate serve`: args are serve's flags only.
    assert!(
        strings(&c["args"]).iter().all(|a| a.starts_with("--")),
        "{what}: args {:?}",
        c["args"]
    );
    assert_eq!(
        pod["securityContext"]["runAsUser"], 65532,
        "{what}: the image's USER"
    );

    let svc = &objs["Service/tiergate"]["spec"]["ports"][0];
    assert_eq!(
        (svc["port"].clone(), svc["targetPort"].clone()),
        (json!(443), json!("https"))
    );

    // NetworkPolicies: a default deny, 8443 and 8080 only.
    let deny = &objs["NetworkPolicy/default-deny"]["spec"];
    assert_eq!(deny["podSelector"], json!({}));
    assert!(deny.get("ingress").is_none());
    let ingress = &objs["NetworkPolicy/tiergate-ingress"]["spec"]["ingress"];
    let ports: Vec<_> = ingress
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["ports"][0]["port"].clone())
        .collect();
    assert_eq!(ports, [json!(8443), json!(8080)], "{what}: ingress ports");
    assert!(
        ingress[1]["from"][0]["podSelector"].is_object(),
        "{what}: 8080 only from Prometheus"
    );

    for kind in [
        "ResourceQuota",
        "LimitRange",
        "PodDisruptionBudget",
        "ServiceMonitor",
        "PrometheusRule",
    ] {
        assert!(
            objs.contains_key(&format!("{kind}/tiergate")),
            "{what}: {kind}"
        );
    }
    assert!(objs.contains_key("ConfigMap/tiergate-config"));
    assert!(objs.contains_key("ConfigMap/tiergate-dashboard"));
    let alerts: Vec<&str> = objs["PrometheusRule/tiergate"]["spec"]["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["expr"].as_str())
        .collect();
    for metric in [
        "tiergate_errors_total",
        "tiergate_admission_duration_seconds_bucket",
        "decision=~\"deny|would_deny\"",
        "tiergate_tls_cert_expiry_timestamp_seconds",
        "14 * 24 * 3600",
        "tiergate_cluster_cache_synced",
        "kube_deployment_status_replicas_available",
        "tiergate_exception_expiry_timestamp_seconds",
    ] {
        assert!(
            alerts.iter().any(|e| e.contains(metric)),
            "{what}: alert on {metric}"
        );
    }

    // The webhooks.
    for (kind, path) in [
        ("ValidatingWebhookConfiguration", "/validate"),
        ("MutatingWebhookConfiguration", "/mutate"),
    ] {
        let hooks = objs[&format!("{kind}/tiergate")]["webhooks"]
            .as_array()
            .unwrap();
        // Hybrid and managed modes add narrowed copies after the first
        // (assert_hybrid, assert_managed).
        if !what.contains("hybrid") && !what.contains("managed") {
            assert_eq!(hooks.len(), 1, "{what}: {kind}");
        }
        let h = &hooks[0];
        assert_eq!(h["sideEffects"], "None", "{what}: {kind}");
        assert_eq!(h["timeoutSeconds"], 5, "{what}: {kind}");
        assert_eq!(strings(&h["admissionReviewVersions"]), ["v1"]);
        assert_eq!(h["clientConfig"]["service"]["path"], path);
        assert_eq!(h["clientConfig"]["service"]["namespace"], "tiergate-system");
        let sel = &h["namespaceSelector"]["matchExpressions"][0];
        assert_eq!(sel["key"], "kubernetes.io/metadata.name");
        assert_eq!(sel["operator"], "NotIn");
        let excluded: BTreeSet<&str> = strings(&sel["values"]).into_iter().collect();
        assert_eq!(
            excluded,
            ["kube-system", "kube-node-lease", "tiergate-system"].into(),
            "{what}: {kind} namespaceSelector"
        );
        let cond = h["matchConditions"][0]["expression"].as_str().unwrap();
        assert!(
            cond.contains("tiergate:break-glass"),
            "{what}: {kind} break-glass"
        );
        // Unchanged updates are not sent: the same condition tiergate
        // passes them by (scope::unchanged_update), word for word.
        assert_eq!(h["matchConditions"][1]["name"], "not-unchanged-update");
        assert_eq!(
            h["matchConditions"][1]["expression"].as_str(),
            Some(tiergate::admission::scope::unchanged_update_cel().as_str()),
            "{what}: {kind} not-unchanged-update"
        );
        let mut resources = BTreeSet::new();
        for rule in h["rules"].as_array().unwrap() {
            assert_eq!(
                strings(&rule["operations"]),
                ["CREATE", "UPDATE"],
                "{what}: {kind}"
            );
            resources.extend(strings(&rule["resources"]));
        }
        for r in [
            "pods",
            "pods/ephemeralcontainers",
            "deployments",
            "statefulsets",
            "daemonsets",
            "replicasets",
            "jobs",
            "cronjobs",
        ] {
            assert!(resources.contains(r), "{what}: {kind} must see {r}");
        }
        if kind.starts_with("Validating") {
            for r in [
                "services",
                "ingresses",
                "configmaps",
                "secrets",
                "namespaces",
                "roles",
                "rolebindings",
                "clusterroles",
                "clusterrolebindings",
                "tierexceptions",
            ] {
                assert!(resources.contains(r), "{what}: {kind} must see {r}");
            }
            assert!(h.get("reinvocationPolicy").is_none());
        } else {
            assert_eq!(h["reinvocationPolicy"], "IfNeeded");
        }
    }
}

fn webhooks(objs: &BTreeMap<String, Value>) -> [&Value; 2] {
    [
        &objs["ValidatingWebhookConfiguration/tiergate"],
        &objs["MutatingWebhookConfiguration/tiergate"],
    ]
}

fn assert_dev(what: &str, objs: &BTreeMap<String, Value>, ca_pem: &str) {
    assert_common(what, objs);
    let d = &objs["Deployment/tiergate"];
    assert_eq!(d["spec"]["replicas"], 1, "{what}");
    assert!(
        strings(&d["spec"]["template"]["spec"]["containers"][0]["args"]).contains(&"--dry-run")
    );
    let secret = &objs["Secret/tiergate-tls"];
    assert_eq!(secret["type"], "kubernetes.io/tls");
    for w in webhooks(objs) {
        let h = &w["webhooks"][0];
        assert_eq!(h["failurePolicy"], "Ignore", "{what}: dev fails open");
        let bundle: String = h["clientConfig"]["caBundle"]
            .as_str()
            .unwrap()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        assert_eq!(
            b64decode(&bundle),
            ca_pem.as_bytes(),
            "{what}: caBundle is the dev CA"
        );
        assert!(w["metadata"]["annotations"]["cert-manager.io/inject-ca-from"].is_null());
    }
}

fn assert_production(what: &str, objs: &BTreeMap<String, Value>) {
    assert_common(what, objs);
    let d = &objs["Deployment/tiergate"];
    assert_eq!(d["spec"]["replicas"], 3, "{what}");
    assert!(
        !strings(&d["spec"]["template"]["spec"]["containers"][0]["args"]).contains(&"--dry-run")
    );
    assert!(
        !objs.keys().any(|k| k.starts_with("Secret/")),
        "{what}: cert-manager makes the Secret"
    );
    let cert = &objs["Certificate/tiergate"]["spec"];
    assert_eq!(cert["secretName"], "tiergate-tls");
    assert!(strings(&cert["dnsNames"]).contains(&"tiergate.tiergate-system.svc"));
    assert!(objs.contains_key(&format!(
        "Issuer/{}",
        cert["issuerRef"]["name"].as_str().unwrap()
    )));
    for w in webhooks(objs) {
        assert_eq!(
            w["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
            "tiergate-system/tiergate",
            "{what}: cainjector"
        );
        let h = &w["webhooks"][0];
        assert_eq!(
            h["failurePolicy"], "Fail",
            "{what}: production fails closed"
        );
        assert!(h["clientConfig"].get("caBundle").is_none());
    }
}

fn b64decode(s: &str) -> Vec<u8> {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for b in s.bytes().filter(|b| *b != b'=') {
        let v = A.iter().position(|a| *a == b).expect("base64") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

#[test]
fn kustomize_overlays_render_and_pass_tier_5() {
    let ws = Workspace::new();
    let ca = std::fs::read_to_string(ws.certs("ca.crt")).unwrap();

    let dev = ws.kustomize("dev");
    assert_dev("kustomize dev", &objects(&dev), &ca);
    check_tier5("dev", "kustomize-dev", &dev);

    let prod = ws.kustomize("production");
    assert_production("kustomize production", &objects(&prod));
    check_tier5("production", "kustomize-production", &prod);

    let hybrid = ws.kustomize("hybrid");
    assert_production("kustomize hybrid", &objects(&hybrid));
    assert_hybrid("kustomize hybrid", &objects(&hybrid));
    check_tier5("production", "kustomize-hybrid", &hybrid);

    let managed = ws.kustomize("managed");
    let objs = objects(&managed);
    assert_production("kustomize managed", &objs);
    assert_managed("kustomize managed", &objs);
    check_tier5("production", "kustomize-managed", &managed);

    // Image verification: production with the component.
    let verified = ws.deploy.join("overlays/verified");
    std::fs::create_dir_all(&verified).unwrap();
    std::fs::write(
        verified.join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
         resources: [../production]\ncomponents: [../../components/image-verification]\n",
    )
    .unwrap();
    let verified = ws.kustomize("verified");
    let objs = objects(&verified);
    assert_production("kustomize image verification", &objs);
    assert_image_verification("kustomize image verification", &objs, "tiergate-registry");
    check_tier5("production", "kustomize-image-verification", &verified);
}

/// Image verification deployed: the credentials Secret mounted read-only
/// where the config can name it, and egress to the registries.
fn assert_image_verification(what: &str, objs: &BTreeMap<String, Value>, secret: &str) {
    let pod = &objs["Deployment/tiergate"]["spec"]["template"]["spec"];
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "registry-credentials")
        .unwrap_or_else(|| panic!("{what}: no registry-credentials volume"));
    assert_eq!(volume["secret"]["secretName"], secret, "{what}");
    assert_eq!(
        volume["secret"]["items"][0]["key"], ".dockerconfigjson",
        "{what}"
    );
    let mount = pod["containers"][0]["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "registry-credentials")
        .unwrap_or_else(|| panic!("{what}: not mounted"));
    assert_eq!(mount["mountPath"], "/etc/tiergate/registry", "{what}");
    assert_eq!(mount["readOnly"], true, "{what}");
    let egress = &objs["NetworkPolicy/tiergate-registry-egress"]["spec"];
    assert_eq!(
        egress["podSelector"]["matchLabels"]["app.kubernetes.io/name"], "tiergate",
        "{what}"
    );
    let ports: Vec<i64> = egress["egress"][0]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["port"].as_i64())
        .collect();
    assert!(ports.contains(&443), "{what}: {ports:?}");
}

/// Managed mode: no generated policies (serve applies them), the narrowed
/// webhooks, the config that says so, and the sync's RBAC.
fn assert_managed(what: &str, objs: &BTreeMap<String, Value>) {
    assert!(
        !objs
            .keys()
            .any(|k| k.starts_with("ValidatingAdmissionPolicy")),
        "{what}: the policies are serve's to apply"
    );
    assert!(
        objs.contains_key("ClusterRole/tiergate-admission-policies")
            && objs.contains_key("ClusterRoleBinding/tiergate-admission-policies"),
        "{what}: the sync's RBAC"
    );
    assert_facts_rbac(what, objs);
    let config = objs["ConfigMap/tiergate-config"]["data"]["config.yaml"]
        .as_str()
        .unwrap();
    assert!(
        config.contains("admissionPolicies: managed"),
        "{what}: {config}"
    );
    for w in webhooks(objs) {
        assert_narrowed(what, w);
    }
}

/// A webhook configuration narrowed for hybrid mode: the validating one
/// keeps bands for the rules no policy judges; the mutating one, with the
/// built-in config's fixes all MutatingAdmissionPolicies, only the band
/// for namespaces kept in the webhook.
fn assert_narrowed(what: &str, w: &Value) {
    let hooks = w["webhooks"].as_array().unwrap();
    if w["kind"] == "MutatingWebhookConfiguration" {
        assert_eq!(hooks.len(), 1, "{what}: a mutating webhook for workloads");
    } else {
        assert!(hooks.len() >= 2, "{what}: narrowed webhooks");
    }
}

/// Hybrid mode: the policies, the narrowed webhooks, the config that says so.
fn assert_hybrid(what: &str, objs: &BTreeMap<String, Value>) {
    for action in ["deny", "warn", "audit"] {
        let name = format!("tiergate-{action}");
        assert!(
            objs.contains_key(&format!("ValidatingAdmissionPolicy/{name}"))
                && objs.contains_key(&format!("ValidatingAdmissionPolicyBinding/{name}")),
            "{what}: {name}"
        );
    }
    let config = objs["ConfigMap/tiergate-config"]["data"]["config.yaml"]
        .as_str()
        .unwrap();
    assert!(
        config.contains("admissionPolicies: hybrid"),
        "{what}: {config}"
    );
    assert_facts_rbac(what, objs);
    for w in webhooks(objs) {
        let hooks = w["webhooks"].as_array().unwrap();
        assert_narrowed(what, w);
        assert_eq!(
            hooks[0]["namespaceSelector"]["matchExpressions"][1]["key"], "tiergate.io/admission",
            "{what}: the first webhook is for namespaces kept in the webhook"
        );
        for h in hooks {
            assert_eq!(h["failurePolicy"], "Fail", "{what}");
            assert_eq!(h["timeoutSeconds"], 5, "{what}");
            assert_eq!(h["clientConfig"], hooks[0]["clientConfig"], "{what}");
            assert_eq!(
                h["namespaceSelector"]["matchExpressions"][0],
                hooks[0]["namespaceSelector"]["matchExpressions"][0],
                "{what}: every narrowed webhook keeps the excluded namespaces"
            );
            assert_eq!(
                h["matchConditions"][0], hooks[0]["matchConditions"][0],
                "{what}: and the break-glass"
            );
        }
    }
}

/// deploy/components/admission-policies is what `make admission-policies`
/// makes of its config and deploy/base/webhooks.yaml (and the chart carries
/// the same files); its config is the base's with `admissionPolicies: hybrid`.
#[test]
fn admission_policies_component_is_generated() {
    let component = root().join("deploy/components/admission-policies");
    let tmp = tempfile::tempdir().unwrap();
    run(Command::new(BIN)
        .args(["export", "admission-policies", "--config"])
        .arg(component.join("config.yaml"))
        .arg("--webhooks")
        .arg(root().join("deploy/base/webhooks.yaml"))
        .arg("--out")
        .arg(tmp.path()));
    for file in [
        "admission-policies.yaml",
        "webhooks-hybrid.yaml",
        "webhook-only.md",
    ] {
        let made = std::fs::read_to_string(tmp.path().join(file)).unwrap();
        assert_eq!(
            std::fs::read_to_string(component.join(file)).unwrap_or_default(),
            made,
            "deploy/components/admission-policies/{file} is stale: run `make admission-policies`"
        );
        if file != "webhook-only.md" {
            assert_eq!(
                std::fs::read_to_string(root().join("deploy/helm/tiergate/files").join(file))
                    .unwrap_or_default(),
                made,
                "deploy/helm/tiergate/files/{file} is stale: run `make admission-policies`"
            );
        }
    }
    let parse = |p: &Path| {
        let text = std::fs::read_to_string(p).unwrap();
        tiergate::manifest::parse_source("config", None, &text)
            .unwrap()
            .documents[0]
            .value
            .clone()
            .unwrap()
    };
    let managed = root().join("deploy/components/admission-policies-managed");
    assert_eq!(
        std::fs::read_to_string(managed.join("webhooks-hybrid.yaml")).unwrap_or_default(),
        std::fs::read_to_string(component.join("webhooks-hybrid.yaml")).unwrap(),
        "deploy/components/admission-policies-managed/webhooks-hybrid.yaml is stale: run \
         `make admission-policies`"
    );
    for (dir, mode) in [(&component, "hybrid"), (&managed, "managed")] {
        let mut cfg = parse(&dir.join("config.yaml"));
        assert_eq!(cfg["admissionPolicies"], mode);
        cfg.as_object_mut().unwrap().remove("admissionPolicies");
        assert_eq!(
            cfg,
            parse(&root().join("deploy/base/config.yaml")),
            "the {mode} config must be deploy/base/config.yaml plus admissionPolicies: {mode}"
        );
    }
}

/// Hybrid and managed mode: serve may write the NamespaceFacts objects
/// (get, create, patch; nothing else), and the CRD is deployed.
fn assert_facts_rbac(what: &str, objs: &BTreeMap<String, Value>) {
    let role = objs
        .iter()
        .find(|(k, _)| k.starts_with("ClusterRole/") && k.ends_with("namespace-facts"))
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("{what}: no namespace-facts ClusterRole"));
    let rules = role["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 1, "{what}");
    assert_eq!(strings(&rules[0]["apiGroups"]), ["tiergate.io"], "{what}");
    assert_eq!(
        strings(&rules[0]["resources"]),
        ["namespacefacts"],
        "{what}"
    );
    assert_eq!(
        strings(&rules[0]["verbs"]),
        ["get", "create", "patch"],
        "{what}"
    );
    assert!(
        objs.iter()
            .any(|(k, v)| k.starts_with("ClusterRoleBinding/")
                && v["roleRef"]["name"] == role["metadata"]["name"]),
        "{what}: the namespace-facts role is bound"
    );
    assert!(
        objs.contains_key("CustomResourceDefinition/namespacefacts.tiergate.io"),
        "{what}: the NamespaceFacts CRD"
    );
}

/// The facts RBAC is the same file in both components.
#[test]
fn both_components_grant_the_same_facts_rbac() {
    let read = |c: &str| {
        std::fs::read_to_string(root().join(format!("deploy/components/{c}/rbac-facts.yaml")))
            .unwrap()
    };
    assert_eq!(
        read("admission-policies"),
        read("admission-policies-managed")
    );
}

/// `admissionPolicies: managed`'s RBAC: the four kinds the export makes,
/// the verbs the sync uses, nothing else (no wildcard), for tiergate's
/// ServiceAccount; and tiergate itself passes it at tier 5.
#[test]
fn managed_admission_policies_rbac_is_least_privilege() {
    let path = root().join("deploy/components/admission-policies-managed/rbac-managed.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let docs: Vec<serde_json::Value> = tiergate::manifest::parse_source("rbac", None, &text)
        .unwrap()
        .documents
        .into_iter()
        .filter_map(|d| d.value)
        .collect();
    assert_eq!(docs.len(), 2);
    let rules = docs[0]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(
        strings(&rules[0]["apiGroups"]),
        ["admissionregistration.k8s.io"]
    );
    assert_eq!(
        strings(&rules[0]["resources"]),
        [
            "validatingadmissionpolicies",
            "validatingadmissionpolicybindings",
            "mutatingadmissionpolicies",
            "mutatingadmissionpolicybindings"
        ]
    );
    assert_eq!(
        strings(&rules[0]["verbs"]),
        ["get", "list", "create", "patch", "delete"]
    );
    assert_eq!(docs[1]["subjects"][0]["name"], "tiergate");
    assert_eq!(docs[1]["roleRef"]["name"], docs[0]["metadata"]["name"]);
    let out = Command::new(BIN)
        .args(["check", "--tier", "5"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn exceptions_file_parses() {
    let rows = exceptions();
    // Production's one exception is the mesh, which cannot sit between the
    // apiserver and its webhook.
    assert!(
        rows.iter()
            .all(|e| e.rendering == "dev" || e.rule == "mesh-enrolled"),
        "production has no other exceptions: {rows:?}"
    );
}

/// The config the manifests ship is one tiergate accepts.
#[test]
fn shipped_config_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let pod = tmp.path().join("pod.yaml");
    std::fs::write(&pod, "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: x}\nspec:\n  containers: [{name: c, image: nginx:1.27}]\n").unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(root().join("deploy/base/config.yaml"))
        .arg(&pod)
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "deploy/base/config.yaml rejected: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Files the chart must carry a copy of (Helm cannot read outside the chart)
/// are the same as the kustomize base's.
#[test]
fn chart_copies_match_base() {
    let base = root().join("deploy/base");
    let chart = root().join("deploy/helm/tiergate");
    assert_eq!(
        std::fs::read_to_string(base.join("grafana/tiergate.json")).unwrap(),
        std::fs::read_to_string(chart.join("files/tiergate-dashboard.json")).unwrap(),
        "dashboard: copy deploy/base/grafana/tiergate.json to the chart's files/"
    );
    let dash: Value =
        serde_json::from_str(&std::fs::read_to_string(base.join("grafana/tiergate.json")).unwrap())
            .unwrap();
    assert!(dash["panels"].as_array().unwrap().len() >= 10);

    let rule = objects(&std::fs::read_to_string(base.join("prometheusrule.yaml")).unwrap());
    let spec = &rule["PrometheusRule/tiergate"]["spec"];
    let copy = tiergate::manifest::parse_source(
        "rules",
        None,
        &std::fs::read_to_string(chart.join("files/prometheus-rules.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        copy.documents[0].value.as_ref().unwrap(),
        spec,
        "PrometheusRule: the chart's files/prometheus-rules.yaml must equal the base's spec"
    );

    // The chart's default config is the base's config.
    let values = tiergate::manifest::parse_source(
        "values",
        None,
        &std::fs::read_to_string(chart.join("values.yaml")).unwrap(),
    )
    .unwrap();
    let base_config = tiergate::manifest::parse_source(
        "config",
        None,
        &std::fs::read_to_string(base.join("config.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        &values.documents[0].value.as_ref().unwrap()["config"],
        base_config.documents[0].value.as_ref().unwrap(),
        "values.yaml config must equal deploy/base/config.yaml"
    );
}

/// Every tiergate_* metric the dashboard and alerts use is one tiergate
/// exports.
#[test]
fn dashboards_and_alerts_use_real_metrics() {
    // The server's metrics and the cluster caches' (cache sync, exceptions).
    let mut exported = String::new();
    for dir in ["src/server", "src/cluster"] {
        for f in std::fs::read_dir(root().join(dir)).unwrap() {
            exported.push_str(&std::fs::read_to_string(f.unwrap().path()).unwrap());
        }
    }
    let mut used = BTreeSet::new();
    for f in [
        "deploy/base/grafana/tiergate.json",
        "deploy/base/prometheusrule.yaml",
    ] {
        let text = std::fs::read_to_string(root().join(f)).unwrap();
        let mut rest = text.as_str();
        while let Some(i) = rest.find("tiergate_") {
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            used.insert(tail[..end].to_string());
            rest = &tail[end..];
        }
    }
    assert!(used.len() >= 8, "{used:?}");
    for m in &used {
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| m.strip_suffix(s))
            .unwrap_or(m);
        assert!(
            exported.contains(&format!("\"{base}\"")),
            "{m} is not a metric tiergate exports"
        );
    }
}

/// The Dockerfile builds with cargo, runs as the uid the Deployment pins,
/// from a minimal base, with `tiergate serve` as the entrypoint; the
/// Makefile's `image` target is the only thing that builds it.
#[test]
fn dockerfile_and_image_target() {
    let docker = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let froms: Vec<&str> = docker.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "multi-stage: {froms:?}");
    assert!(froms[0].ends_with(" AS build"), "{froms:?}");
    assert!(
        froms[1].contains("distroless"),
        "minimal runtime: {froms:?}"
    );
    assert!(docker.contains("cargo build --release --locked"));
    assert!(docker.contains("COPY --from=build"));
    assert!(docker.lines().any(|l| l == "USER 65532:65532"));
    assert!(docker
        .lines()
        .any(|l| l == r#"ENTRYPOINT ["/tiergate", "serve"]"#));
    assert!(
        !docker.contains("RUN") || docker.find("RUN").unwrap() < docker.find(froms[1]).unwrap(),
        "nothing runs in the runtime stage (no shell there)"
    );
    let make = std::fs::read_to_string(root().join("Makefile")).unwrap();
    let builds: Vec<&str> = make
        .lines()
        .filter(|l| l.contains("docker") && l.contains("build"))
        .collect();
    assert_eq!(builds.len(), 1, "one place builds the image: {builds:?}");
    assert!(make.contains("\nimage:"), "Makefile target image");
    assert!(
        make.contains("\ndeploy-check:"),
        "Makefile target deploy-check"
    );
}

// ---- Helm ----

fn helm() -> Option<PathBuf> {
    let helm = root().join("target/tools/helm");
    if helm.is_file() {
        return Some(helm);
    }
    let required = std::env::var("TIERGATE_REQUIRE_HELM").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "TIERGATE_REQUIRE_HELM=1 but {} is missing: run scripts/install-helm.sh",
        helm.display()
    );
    eprintln!(
        "SKIPPED: helm tests: {} is missing (scripts/install-helm.sh; `make deploy-check` requires it)",
        helm.display()
    );
    None
}

/// Comparable form: labels only the packaging tool sets are dropped,
/// base64 is unwrapped, the config file is compared as data.
fn normalize(mut objs: BTreeMap<String, Value>) -> BTreeMap<String, Value> {
    for v in objs.values_mut() {
        if let Some(labels) = v
            .pointer_mut("/metadata/labels")
            .and_then(Value::as_object_mut)
        {
            labels.remove("app.kubernetes.io/managed-by");
            labels.remove("helm.sh/chart");
        }
        if let Some(text) = v["data"]["config.yaml"].as_str() {
            let parsed = tiergate::manifest::parse_source("config", None, text).unwrap();
            v["data"]["config.yaml"] = parsed.documents[0].value.clone().unwrap();
        }
        if let Some(hooks) = v.get_mut("webhooks").and_then(Value::as_array_mut) {
            for h in hooks {
                if let Some(b) = h["clientConfig"]["caBundle"].as_str() {
                    let b: String = b.chars().filter(|c| !c.is_whitespace()).collect();
                    h["clientConfig"]["caBundle"] = json!(b);
                }
            }
        }
    }
    objs
}

fn assert_same_objects(what: &str, kustomize: &str, helm: &str) {
    let k = normalize(objects(kustomize));
    let h = normalize(objects(helm));
    let kn: BTreeSet<_> = k.keys().collect();
    let hn: BTreeSet<_> = h.keys().collect();
    assert_eq!(
        kn, hn,
        "{what}: kustomize and helm render different Kind/name sets"
    );
    for (name, kv) in &k {
        assert_eq!(
            kv, &h[name],
            "{what}: {name} differs between kustomize and helm"
        );
    }
}

#[test]
fn helm_chart_lints_renders_and_matches_kustomize() {
    let Some(helm) = helm() else { return };
    let ws = Workspace::new();
    let chart = ws.deploy.join("helm/tiergate");
    let ci = chart.join("ci");
    run(Command::new(&helm).arg("lint").arg("--strict").arg(&chart));
    run(Command::new(&helm)
        .args(["lint", "--strict", "-f"])
        .arg(ci.join("dev-values.yaml"))
        .arg(&chart));

    let template = |values: &str, extra: &[String]| {
        run(Command::new(&helm)
            .args(["template", "tiergate"])
            .arg(&chart)
            .args([
                "--namespace",
                "tiergate-system",
                "--kube-version",
                "1.31.0",
                "-f",
            ])
            .arg(ci.join(values))
            .args(extra))
    };

    let prod = template("production-values.yaml", &[]);
    assert_production("helm production", &objects(&prod));
    check_tier5("production", "helm-production", &prod);
    assert_same_objects("production", &ws.kustomize("production"), &prod);

    let hybrid = template(
        "production-values.yaml",
        &["--set".into(), "admissionPolicies.hybrid=true".into()],
    );
    assert_production("helm hybrid", &objects(&hybrid));
    assert_hybrid("helm hybrid", &objects(&hybrid));
    assert_same_objects("hybrid", &ws.kustomize("hybrid"), &hybrid);

    let managed = template(
        "production-values.yaml",
        &["--set".into(), "admissionPolicies.managed=true".into()],
    );
    assert_production("helm managed", &objects(&managed));
    assert_managed("helm managed", &objects(&managed));
    assert_same_objects("managed", &ws.kustomize("managed"), &managed);

    let verified = template(
        "production-values.yaml",
        &[
            "--set".into(),
            "imageVerification.credentialsSecret=registry-creds".into(),
            "--set".into(),
            "imageVerification.registryEgress.enabled=true".into(),
        ],
    );
    let objs = objects(&verified);
    assert_production("helm image verification", &objs);
    assert_image_verification("helm image verification", &objs, "registry-creds");
    check_tier5("production", "helm-image-verification", &verified);
    // The config names the mounted file, and keeps the rest of the values'.
    let config: Value = tiergate::yaml::from_str::<Value>(
        objs["ConfigMap/tiergate-config"]["data"]["config.yaml"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        config["images"]["credentialsFile"],
        "/etc/tiergate/registry/.dockerconfigjson"
    );
    let prod_config = objects(&prod)["ConfigMap/tiergate-config"]["data"]["config.yaml"].clone();
    let mut without: Value =
        tiergate::yaml::from_str::<Value>(prod_config.as_str().unwrap()).unwrap();
    without["images"] = config["images"].clone();
    assert_eq!(config, without, "only images.credentialsFile differs");

    let files = format!(
        "tls.crt={},tls.key={},tls.ca={}",
        ws.certs("tls.crt").display(),
        ws.certs("tls.key").display(),
        ws.certs("ca.crt").display()
    );
    let dev = template("dev-values.yaml", &["--set-file".into(), files]);
    let ca = std::fs::read_to_string(ws.certs("ca.crt")).unwrap();
    assert_dev("helm dev", &objects(&dev), &ca);
    check_tier5("dev", "helm-dev", &dev);
    assert_same_objects("dev", &ws.kustomize("dev"), &dev);

    // Without cert-manager and without files, the chart makes its own pair
    // and puts the same CA in the Secret and both webhooks.
    let generated = objects(&template("dev-values.yaml", &[]));
    let secret_ca = generated["Secret/tiergate-tls"]["data"]["ca.crt"].clone();
    for w in webhooks(&generated) {
        assert_eq!(w["webhooks"][0]["clientConfig"]["caBundle"], secret_ca);
    }
}
