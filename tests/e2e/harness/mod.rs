//! The e2e harness: a shared control plane ([`cluster::cluster`]), and per
//! scenario a namespace, a `tiergate serve` process and webhook
//! configurations pointing at it ([`Scenario`]).
#![allow(dead_code)]
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::Client;
use serde_json::{json, Value};

pub mod cluster;
pub mod procs;

pub use cluster::cluster;
use procs::{free_ports, tail, Guard};

/// The tiergate binary cargo built for this test run.
pub const TIERGATE: &str = env!("CARGO_BIN_EXE_tiergate");

/// Name of the validating webhook (and prefix of its audit annotations).
pub const VALIDATE: &str = "validate.tiergate.io";
/// Name of the mutating webhook.
pub const MUTATE: &str = "mutate.tiergate.io";

/// A kube client for an identity of the kubeconfig (`admin` or `dev`).
pub async fn client_as(context: &str) -> Client {
    tiergate::install_crypto_provider();
    let c = cluster();
    let kc = Kubeconfig::read_from(&c.kubeconfig).expect("reading the e2e kubeconfig");
    let opts = KubeConfigOptions {
        context: Some(context.to_string()),
        ..KubeConfigOptions::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kc, &opts)
        .await
        .expect("kube config from the e2e kubeconfig");
    Client::try_from(config).expect("kube client")
}

/// The admin client.
pub async fn admin() -> Client {
    client_as("admin").await
}

/// `kubectl` against the shared cluster.
pub struct Kubectl {
    pub context: &'static str,
}

pub const KUBECTL_ADMIN: Kubectl = Kubectl { context: "admin" };

/// The arguments of `tiergate audit -n NS -o json` against the shared
/// apiserver as its admin (append more, or run it under another program).
pub fn audit_args(ns: &str) -> Vec<std::ffi::OsString> {
    let mut a: Vec<std::ffi::OsString> = vec!["audit".into(), "--kubeconfig".into()];
    a.push(cluster().kubeconfig.clone().into_os_string());
    for x in ["--context", "admin", "-n", ns, "-o", "json"] {
        a.push(x.into());
    }
    a
}
pub const KUBECTL_DEV: Kubectl = Kubectl { context: "dev" };

/// What a kubectl run printed.
#[derive(Debug)]
pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            ok: o.status.success(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    /// `Warning:` lines kubectl printed (text after the prefix).
    pub fn warnings(&self) -> Vec<String> {
        self.stderr
            .lines()
            .filter_map(|l| l.strip_prefix("Warning: "))
            .map(str::to_string)
            .collect()
    }
}

impl Kubectl {
    /// Run kubectl with `args`, feeding `stdin` when given.
    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> Run {
        use std::io::Write;
        let c = cluster();
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(&c.kubeconfig)
            .arg("--context")
            .arg(self.context)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("running kubectl");
        if let Some(input) = stdin {
            let mut s = child.stdin.take().expect("kubectl stdin");
            s.write_all(input.as_bytes())
                .expect("writing kubectl stdin");
        }
        child.wait_with_output().expect("kubectl output").into()
    }

    /// `kubectl apply -n NS -f -` with `manifest` plus `extra` flags.
    pub fn apply(&self, ns: &str, manifest: &str, extra: &[&str]) -> Run {
        let mut args = vec!["apply", "-n", ns, "-f", "-"];
        args.extend_from_slice(extra);
        self.run(&args, Some(manifest))
    }

    /// `kubectl get KIND NAME -n NS -o json`, or `None` when not found.
    pub fn get_json(&self, ns: &str, kind: &str, name: &str) -> Option<Value> {
        let r = self.run(&["get", kind, name, "-n", ns, "-o", "json"], None);
        if !r.ok {
            assert!(
                r.stderr.contains("NotFound") || r.stderr.contains("not found"),
                "kubectl get {kind} {name}: {}",
                r.stderr
            );
            return None;
        }
        Some(serde_json::from_str(&r.stdout).expect("kubectl get -o json"))
    }
}

/// What a scenario's webhook configurations look like.
#[derive(Debug, Clone)]
pub struct Webhooks {
    pub validate: bool,
    pub mutate: bool,
    /// `Fail` or `Ignore`.
    pub failure_policy: &'static str,
    /// Also send DELETE (tiergate must pass it untouched).
    pub delete: bool,
    /// Hybrid mode: the validating webhook narrowed as
    /// `tiergate export admission-policies --webhooks` narrows it, for this
    /// config (the admission policies are applied by the test).
    pub hybrid: Option<tiergate::policy::PolicyConfig>,
    /// Hybrid mode exported with `--fixes-in-webhook`: the mutating
    /// webhook keeps every fix (no MutatingAdmissionPolicy for it).
    pub fixes_in_webhook: bool,
}

impl Webhooks {
    /// The fixes the apiserver's policies apply in hybrid mode under
    /// `cfg` (none with `fixes_in_webhook`), which the narrowed mutating
    /// webhook leaves to them.
    pub fn policy_fixes(&self, cfg: &tiergate::policy::PolicyConfig) -> Vec<&'static str> {
        if self.fixes_in_webhook {
            Vec::new()
        } else {
            tiergate::export::policy_fixes(cfg, false, tiergate::policy::pss::LATEST_MINOR)
        }
    }
}

impl Default for Webhooks {
    fn default() -> Self {
        Webhooks {
            validate: true,
            mutate: true,
            failure_policy: "Fail",
            delete: false,
            hybrid: None,
            fixes_in_webhook: false,
        }
    }
}

/// A running `tiergate serve`.
pub struct Tiergate {
    pub port: u16,
    pub admin_port: u16,
    pub proc: Guard,
}

impl Tiergate {
    /// Start `tiergate serve` with `config` (YAML) and the run's serving
    /// certificate for 127.0.0.1; waits for its /readyz.
    pub fn start(name: &str, config: &str, dry_run: bool) -> Tiergate {
        Tiergate::start_bin(TIERGATE, name, config, dry_run)
    }

    /// [`Tiergate::start`] with another tiergate binary (the apiserver
    /// benchmark's before/after).
    pub fn start_bin(bin: &str, name: &str, config: &str, dry_run: bool) -> Tiergate {
        let c = cluster();
        let cfg_path = c.dir.join(format!("tiergate-{name}.yaml"));
        std::fs::write(&cfg_path, config).expect("writing the tiergate config");
        let log = c.dir.join(format!("tiergate-{name}.log"));
        let mut last = String::new();
        for _ in 0..3 {
            let ports = free_ports(2);
            let (port, admin_port) = (ports[0], ports[1]);
            let out = std::fs::File::create(&log).expect("tiergate log");
            let err = out.try_clone().expect("tiergate log");
            let mut cmd = Command::new(bin);
            // Scenarios judge by their config alone: no cluster caches, even
            // on a machine with a ~/.kube/config (tests/e2e/cluster.rs
            // covers tiergate with its caches on).
            cmd.arg("serve")
                .arg("--no-cluster")
                .arg("--config")
                .arg(&cfg_path)
                .arg("--tls-cert")
                .arg(&c.tiergate_cert)
                .arg("--tls-key")
                .arg(&c.tiergate_key)
                .arg(format!("--listen=127.0.0.1:{port}"))
                .arg(format!("--admin-listen=127.0.0.1:{admin_port}"))
                .env("RUST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err);
            if dry_run {
                cmd.arg("--dry-run");
            }
            let child = procs::spawn(cmd).expect("starting tiergate serve");
            let mut proc = Guard {
                name: format!("tiergate-{name}"),
                child: Some(child),
                log: log.clone(),
            };
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline && proc.running() {
                if cluster::http_get(admin_port, "/readyz").is_some() {
                    return Tiergate {
                        port,
                        admin_port,
                        proc,
                    };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            last = tail(&log, 20);
        }
        panic!("tiergate serve did not become ready:\n{last}");
    }

    /// The Prometheus text of /metrics.
    pub fn metrics(&self) -> String {
        cluster::http_get(self.admin_port, "/metrics").unwrap_or_default()
    }

    /// Sum of the samples of `name` whose labels include all of `labels`.
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric_sum(&self.metrics(), name, labels)
    }

    /// Stop the process now (the webhook is down from here on).
    pub fn kill(&mut self) {
        self.proc.kill();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.proc.log).unwrap_or_default()
    }
}

pub use crate::common::metric_sum;

/// One scenario: its namespace (labelled with the tier and mode), a
/// `tiergate serve` for it, and webhook configurations that select only it.
pub struct Scenario {
    pub name: String,
    pub ns: String,
    pub tiergate: Tiergate,
    pub webhooks: Webhooks,
    registered: bool,
}

/// A tiergate config: tier and mode as the defaults, plus `extra` YAML.
pub fn config(tier: u8, mode: &str, extra: &str) -> String {
    format!("defaults: {{tier: {tier}, mode: {mode}}}\n{extra}")
}

impl Scenario {
    /// Namespace `e2e-NAME` with tier/mode labels, a `default`
    /// ServiceAccount (no controller-manager runs here), RBAC for the `dev`
    /// identity in it, and a tiergate with `config`. Webhooks are not
    /// registered yet: call [`Scenario::register`].
    pub async fn new(
        name: &str,
        tier: u8,
        mode: &str,
        config: &str,
        dry_run: bool,
        webhooks: Webhooks,
    ) -> Scenario {
        Scenario::with_bin(TIERGATE, name, tier, mode, config, dry_run, webhooks).await
    }

    /// [`Scenario::new`] served by another tiergate binary.
    pub async fn with_bin(
        bin: &str,
        name: &str,
        tier: u8,
        mode: &str,
        config: &str,
        dry_run: bool,
        webhooks: Webhooks,
    ) -> Scenario {
        let client = admin().await;
        let ns = format!("e2e-{name}");
        let namespaces: Api<Namespace> = Api::all(client.clone());
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": ns, "labels": {
                        "tiergate.io/tier": tier.to_string(),
                        "tiergate.io/mode": mode,
                        "e2e.tiergate.io/scenario": name,
                    }}
                }))
                .expect("namespace"),
            )
            .await
            .expect("creating the scenario namespace");
        let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
        sas.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "default"}})).expect("sa"),
        )
        .await
        .expect("creating the default ServiceAccount");
        let roles: Api<Role> = Api::namespaced(client.clone(), &ns);
        roles
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "metadata": {"name": "e2e-dev"},
                    "rules": [{"apiGroups": ["", "apps", "batch"],
                               "resources": ["*"], "verbs": ["*"]}]
                }))
                .expect("role"),
            )
            .await
            .expect("creating the dev Role");
        let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), &ns);
        bindings
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "metadata": {"name": "e2e-dev"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "e2e-dev"},
                    "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "e2e-dev"}]
                }))
                .expect("rolebinding"),
            )
            .await
            .expect("creating the dev RoleBinding");
        let tiergate = Tiergate::start_bin(bin, name, config, dry_run);
        Scenario {
            name: name.to_string(),
            ns,
            tiergate,
            webhooks,
            registered: false,
        }
    }

    fn config_name(&self) -> String {
        format!("tiergate-e2e-{}", self.name)
    }

    fn webhook(&self, name: &str, path: &str, mutating: bool) -> Value {
        let c = cluster();
        let mut ops = vec!["CREATE", "UPDATE"];
        if self.webhooks.delete {
            ops.push("DELETE");
        }
        let rules = json!([
            {"apiGroups": [""], "apiVersions": ["v1"], "operations": ops,
             "resources": ["pods", "pods/ephemeralcontainers", "replicationcontrollers", "podtemplates"],
             "scope": "Namespaced"},
            {"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ops,
             "resources": ["deployments", "replicasets", "statefulsets", "daemonsets"],
             "scope": "Namespaced"},
            {"apiGroups": ["batch"], "apiVersions": ["v1"], "operations": ops,
             "resources": ["jobs", "cronjobs"], "scope": "Namespaced"},
        ]);
        let mut w = json!({
            "name": name,
            "clientConfig": {
                "url": format!("https://127.0.0.1:{}{path}", self.tiergate.port),
                "caBundle": base64::engine::general_purpose::STANDARD.encode(c.ca_pem.as_bytes()),
            },
            "rules": rules,
            "failurePolicy": self.webhooks.failure_policy,
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 5,
            // As deploy/ has it: unchanged updates are not sent.
            "matchConditions": [{"name": "not-unchanged-update",
                                 "expression": tiergate::admission::scope::unchanged_update_cel()}],
            "namespaceSelector": {
                "matchLabels": {"e2e.tiergate.io/scenario": self.name},
                "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn",
                                      "values": ["kube-system", "kube-node-lease", "tiergate-system"]}],
            },
        });
        if mutating {
            w["reinvocationPolicy"] = json!("IfNeeded");
        }
        w
    }

    /// Register the webhook configurations and wait until the apiserver
    /// calls them.
    pub async fn register(&mut self) {
        let client = admin().await;
        let name = self.config_name();
        if self.webhooks.mutate {
            let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
            let mut config = json!({
                "metadata": {"name": name},
                "webhooks": [self.webhook(MUTATE, "/mutate", true)],
            });
            if let Some(cfg) = &self.webhooks.hybrid {
                let fixed = self.webhooks.policy_fixes(cfg);
                config = tiergate::export::hybrid_mutating_webhooks(&config, cfg, &fixed);
            }
            api.create(
                &PostParams::default(),
                &serde_json::from_value(config).expect("mutating webhook configuration"),
            )
            .await
            .expect("creating the MutatingWebhookConfiguration");
        }
        if self.webhooks.validate {
            let api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
            let mut config = json!({
                "metadata": {"name": name},
                "webhooks": [self.webhook(VALIDATE, "/validate", false)],
            });
            if let Some(cfg) = &self.webhooks.hybrid {
                config = tiergate::export::hybrid_webhooks(&config, cfg);
            }
            api.create(
                &PostParams::default(),
                &serde_json::from_value(config).expect("validating webhook configuration"),
            )
            .await
            .expect("creating the ValidatingWebhookConfiguration");
        }
        self.registered = true;
        self.wait_live(&client).await;
    }

    /// Dry-run-create canary Pods until tiergate has answered one: the
    /// apiserver's webhook cache has picked the configurations up.
    async fn wait_live(&self, client: &Client) {
        let pods: Api<Pod> = Api::namespaced(client.clone(), &self.ns);
        // The canary's literal env value named like a secret goes to the
        // validating webhook in hybrid mode too (secrets-in-env stays in
        // it, at every tier); with no validating webhook, the mutating one.
        let which = if self.webhooks.validate {
            "validate"
        } else {
            "mutate"
        };
        let before = self
            .tiergate
            .counter("tiergate_admission_requests_total", &[("webhook", which)]);
        let canary: Pod = serde_json::from_value(json!({
            "metadata": {"name": "e2e-canary"},
            "spec": {"containers": [{"name": "canary", "image": "registry.example/canary:1",
                                     "env": [{"name": "DB_PASSWORD", "value": "e2e-canary-s3cr3t"}]}]}
        }))
        .expect("canary pod");
        let dry = PostParams {
            dry_run: true,
            ..PostParams::default()
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let _ = pods.create(&dry, &canary).await;
            let now = self
                .tiergate
                .counter("tiergate_admission_requests_total", &[("webhook", which)]);
            if now > before {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!(
            "the apiserver never called tiergate for namespace {}:\n{}",
            self.ns,
            self.tiergate.log()
        );
    }

    /// Scenario-level kubectl apply in the scenario's namespace.
    pub fn apply(&self, who: &Kubectl, manifest: &str, extra: &[&str]) -> Run {
        who.apply(&self.ns, manifest, extra)
    }

    /// Audit events of this namespace (JSON objects of the audit log).
    pub fn audit_events(&self) -> Vec<Value> {
        let c = cluster();
        let text = std::fs::read_to_string(&c.audit_log).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| {
                e.pointer("/objectRef/namespace").and_then(Value::as_str) == Some(self.ns.as_str())
            })
            .collect()
    }

    /// Remove the webhook configurations now.
    pub fn unregister(&mut self) {
        if !self.registered {
            return;
        }
        self.registered = false;
        let name = self.config_name();
        for kind in [
            "validatingwebhookconfiguration",
            "mutatingwebhookconfiguration",
        ] {
            let _ = KUBECTL_ADMIN.run(
                &["delete", kind, &name, "--ignore-not-found", "--wait=false"],
                None,
            );
        }
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        // Webhook configurations go first, then the tiergate process (field
        // drop). The namespace stays: without a controller-manager nothing
        // would finalize its deletion, and the cluster dies with the run.
        self.unregister();
    }
}

/// A manifest file of tests/e2e/manifests.
pub fn manifest(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/e2e/manifests")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}
