//! Helpers for rule unit tests.
use serde_json::Value;

use crate::policy::{Context, Engine, Evaluation, Mode, Options, Tier};

/// Evaluate `obj` with only `rule` selected, at `tier`, enforce mode, fixes on
/// when the rule has a fix (opt-in fixes turned on through the config).
pub fn run_rule(rule: &str, obj: &Value, tier: Tier) -> Evaluation {
    run_rule_with(rule, obj, &Context::new(tier, Mode::Enforce), "")
}

/// A context in namespace "shop" at `tier`, enforcing, whose labels are
/// `labels` (`None`: not known).
pub fn in_namespace_labelled(tier: Tier, labels: Option<&[(&str, &str)]>) -> Context {
    let mut c = Context::new(tier, Mode::Enforce);
    c.namespace = Some("shop".into());
    if let Some(l) = labels {
        c.namespace_labels_known = true;
        c.namespace_labels = l
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    }
    c
}

pub fn run_rule_with(rule: &str, obj: &Value, ctx: &Context, extra_config: &str) -> Evaluation {
    let mut yaml = format!("rules:\n  {rule}: {{}}\n");
    if let Some(r) = crate::policy::rules::by_id(rule) {
        if r.fix.exists() {
            yaml = format!("rules:\n  {rule}: {{fix: on}}\n");
        }
    }
    yaml.push_str(extra_config);
    let engine = Engine::new(crate::policy::config::from_test_yaml(&yaml));
    let opts = Options {
        pss: None,
        only: Some(vec![rule.to_string()]),
        fix: true,
        exact_fixable: true,
        skip_covered: false,
    };
    engine.evaluate(obj, ctx, &opts).expect("evaluate")
}

/// Assert the rule's fix is sound: the patch applies, the result parses as the
/// kind's k8s-openapi type, a second pass changes nothing and the rule no
/// longer reports.
pub fn assert_fix_sound(rule: &str, obj: &Value, tier: Tier) -> Value {
    let first = run_rule(rule, obj, tier);
    let mut patched = obj.clone();
    json_patch::patch(&mut patched, &first.patch).expect("patch applies");
    assert_eq!(Some(&patched), first.fixed.as_ref().or(Some(obj)));
    crate::policy::target::assert_parses_typed(&patched);
    let second = run_rule(rule, &patched, tier);
    assert!(
        second.patch.0.is_empty(),
        "second fix pass not empty: {:?}",
        second.patch
    );
    assert_only_declined_remain(rule, &second);
    patched
}

/// After a fix, the rule reports nothing but what its fix declined (and says
/// why).
fn assert_only_declined_remain(rule: &str, after: &Evaluation) {
    let left: Vec<_> = after
        .findings
        .iter()
        .filter(|f| f.rule == rule && !f.message.contains("; not fixed: "))
        .collect();
    assert!(
        left.is_empty(),
        "rule {rule} still reports after fix: {left:?}"
    );
}

// ---------------------------------------------------------------------------
// Realistic manifests and context-aware fix checks (added with the rules
// secrets-in-env … automount-service-account-token). Each manifest is the kind
// of thing people really apply: partly hardened, partly not, so fixes have work
// to do and user fields to preserve.
// ---------------------------------------------------------------------------

/// Like [`assert_fix_sound`] with a context (namespace labels, tier) and
/// extra config; the rule must no longer report after the fix.
pub fn assert_fix_sound_with(rule: &str, obj: &Value, ctx: &Context, extra_config: &str) -> Value {
    let first = run_rule_with(rule, obj, ctx, extra_config);
    let mut patched = obj.clone();
    json_patch::patch(&mut patched, &first.patch).expect("patch applies");
    assert_eq!(Some(&patched), first.fixed.as_ref().or(Some(obj)));
    crate::policy::target::assert_parses_typed(&patched);
    let second = run_rule_with(rule, &patched, ctx, extra_config);
    assert!(
        second.patch.0.is_empty(),
        "second fix pass not empty: {:?}",
        second.patch
    );
    assert_only_declined_remain(rule, &second);
    patched
}

/// A web Deployment: a migration init container, a proxy sidecar, an app
/// container whose first port is UDP (statsd) and whose first TCP port is 8080.
pub fn web_deployment() -> Value {
    serde_json::json!({
      "apiVersion": "apps/v1",
      "kind": "Deployment",
      "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"},
                   "annotations": {"deployment.kubernetes.io/revision": "7"}},
      "spec": {
        "replicas": 3,
        "revisionHistoryLimit": 5,
        "selector": {"matchLabels": {"app": "web"}},
        "strategy": {"type": "RollingUpdate",
                     "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
        "template": {
          "metadata": {"labels": {"app": "web", "tier": "frontend"},
                       "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9090"}},
          "spec": {
            "serviceAccountName": "web",
            "securityContext": {"runAsNonRoot": true, "runAsUser": 10001,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "initContainers": [
              {"name": "migrate", "image": "ghcr.io/acme/web:1.4.2",
               "command": ["/app/bin/migrate", "--wait"],
               "env": [{"name": "DATABASE_URL",
                        "valueFrom": {"secretKeyRef": {"name": "web-db", "key": "url"}}}],
               "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                             "limits": {"cpu": "500m", "memory": "256Mi"}}},
              {"name": "proxy", "image": "ghcr.io/acme/proxy:2.1.0", "restartPolicy": "Always",
               "args": ["--upstream=127.0.0.1:8080", "--admin-port=15000"],
               "ports": [{"name": "admin", "containerPort": 15000}],
               "securityContext": {"allowPrivilegeEscalation": false,
                                   "capabilities": {"drop": ["ALL"]}}}
            ],
            "containers": [{
              "name": "app",
              "image": "ghcr.io/acme/web:1.4.2",
              "imagePullPolicy": "IfNotPresent",
              "args": ["serve", "--port=8080"],
              "ports": [
                {"name": "statsd", "containerPort": 8125, "protocol": "UDP"},
                {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                {"name": "metrics", "containerPort": 9090}
              ],
              "env": [
                {"name": "LOG_LEVEL", "value": "info"},
                {"name": "TOKEN_URL", "value": "https://auth.acme.example/oauth/token"},
                {"name": "DB_PASSWORD",
                 "valueFrom": {"secretKeyRef": {"name": "web-db", "key": "password"}}},
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
              ],
              "envFrom": [{"configMapRef": {"name": "web-config"}}],
              "resources": {"requests": {"cpu": "250m", "memory": "256Mi"},
                            "limits": {"cpu": "1", "memory": "512Mi"}},
              "securityContext": {"allowPrivilegeEscalation": false,
                                  "capabilities": {"drop": ["ALL"]}},
              "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}]
            }],
            "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]
          }
        }
      }
    })
}

/// A Postgres StatefulSet with a volumeClaimTemplate and a permissions init container.
pub fn statefulset_db() -> Value {
    serde_json::json!({
      "apiVersion": "apps/v1",
      "kind": "StatefulSet",
      "metadata": {"name": "postgres", "namespace": "shop",
                   "labels": {"app": "postgres", "app.kubernetes.io/part-of": "shop"}},
      "spec": {
        "serviceName": "postgres",
        "replicas": 3,
        "podManagementPolicy": "OrderedReady",
        "selector": {"matchLabels": {"app": "postgres"}},
        "template": {
          "metadata": {"labels": {"app": "postgres"}},
          "spec": {
            "terminationGracePeriodSeconds": 120,
            "securityContext": {"fsGroup": 999, "runAsUser": 999, "runAsNonRoot": true},
            "initContainers": [{
              "name": "init-permissions", "image": "docker.io/library/busybox:1.36",
              "command": ["sh", "-c", "chmod 700 /var/lib/postgresql/data"],
              "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql/data"}]
            }],
            "containers": [{
              "name": "postgres",
              "image": "postgres:16.4",
              "ports": [{"name": "postgres", "containerPort": 5432}],
              "env": [
                {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
                {"name": "POSTGRES_PASSWORD",
                 "valueFrom": {"secretKeyRef": {"name": "postgres", "key": "password"}}}
              ],
              "resources": {"requests": {"cpu": "500m", "memory": "1Gi"},
                            "limits": {"cpu": "2", "memory": "2Gi"}},
              "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql/data"},
                               {"name": "run", "mountPath": "/var/run/postgresql"}]
            }],
            "volumes": [{"name": "run", "emptyDir": {}}]
          }
        },
        "volumeClaimTemplates": [{
          "metadata": {"name": "data"},
          "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "gp3",
                   "resources": {"requests": {"storage": "20Gi"}}}
        }]
      }
    })
}

/// A nightly backup CronJob (restartPolicy OnFailure).
pub fn cronjob() -> Value {
    serde_json::json!({
      "apiVersion": "batch/v1",
      "kind": "CronJob",
      "metadata": {"name": "db-backup", "namespace": "shop", "labels": {"app": "db-backup"}},
      "spec": {
        "schedule": "15 3 * * *",
        "timeZone": "Etc/UTC",
        "concurrencyPolicy": "Forbid",
        "successfulJobsHistoryLimit": 3,
        "failedJobsHistoryLimit": 1,
        "jobTemplate": {
          "spec": {
            "backoffLimit": 2,
            "activeDeadlineSeconds": 3600,
            "template": {
              "metadata": {"labels": {"app": "db-backup"}},
              "spec": {
                "restartPolicy": "OnFailure",
                "containers": [{
                  "name": "backup",
                  "image": "ghcr.io/acme/backup:0.9.1",
                  "args": ["--target=s3://acme-backups/postgres"],
                  "env": [
                    {"name": "PGHOST", "value": "postgres.shop.svc"},
                    {"name": "AWS_ACCESS_KEY_ID",
                     "valueFrom": {"secretKeyRef": {"name": "backup-s3", "key": "id"}}},
                    {"name": "AWS_SECRET_ACCESS_KEY",
                     "valueFrom": {"secretKeyRef": {"name": "backup-s3", "key": "secret"}}}
                  ],
                  "resources": {"requests": {"cpu": "100m", "memory": "256Mi"},
                                "limits": {"cpu": "1", "memory": "1Gi"}}
                }]
              }
            }
          }
        }
      }
    })
}

/// A node log agent DaemonSet with hostPath mounts and a TCP metrics port.
pub fn daemonset_agent() -> Value {
    serde_json::json!({
      "apiVersion": "apps/v1",
      "kind": "DaemonSet",
      "metadata": {"name": "log-agent", "namespace": "logging",
                   "labels": {"app.kubernetes.io/name": "fluent-bit"}},
      "spec": {
        "selector": {"matchLabels": {"app.kubernetes.io/name": "fluent-bit"}},
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
        "template": {
          "metadata": {"labels": {"app.kubernetes.io/name": "fluent-bit"}},
          "spec": {
            "serviceAccountName": "log-agent",
            "priorityClassName": "system-node-critical",
            "tolerations": [{"operator": "Exists"}],
            "containers": [{
              "name": "fluent-bit",
              "image": "cr.fluentbit.io/fluent/fluent-bit:3.1.4",
              "ports": [{"name": "http", "containerPort": 2020, "protocol": "TCP"}],
              "env": [{"name": "NODE_NAME",
                       "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
              "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                            "limits": {"memory": "128Mi"}},
              "volumeMounts": [
                {"name": "varlog", "mountPath": "/var/log", "readOnly": true},
                {"name": "config", "mountPath": "/fluent-bit/etc/"}
              ]
            }],
            "volumes": [
              {"name": "varlog", "hostPath": {"path": "/var/log"}},
              {"name": "config", "configMap": {"name": "fluent-bit-config"}}
            ]
          }
        }
      }
    })
}

/// A bare Pod: a Docker Hub short-named Redis, default restartPolicy (Always).
/// One of each realistic workload: Deployment, StatefulSet, CronJob,
/// DaemonSet and a bare Pod.
pub fn workloads() -> [Value; 5] {
    [
        web_deployment(),
        statefulset_db(),
        cronjob(),
        daemonset_agent(),
        bare_pod(),
    ]
}

pub fn bare_pod() -> Value {
    serde_json::json!({
      "apiVersion": "v1",
      "kind": "Pod",
      "metadata": {"name": "redis", "namespace": "shop", "labels": {"app": "redis"}},
      "spec": {
        "containers": [{
          "name": "redis",
          "image": "redis:7.2",
          "args": ["--appendonly", "yes"],
          "ports": [{"name": "redis", "containerPort": 6379}],
          "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                        "limits": {"cpu": "500m", "memory": "256Mi"}},
          "securityContext": {"runAsNonRoot": true, "runAsUser": 999},
          "volumeMounts": [{"name": "data", "mountPath": "/data"}]
        }],
        "volumes": [{"name": "data", "emptyDir": {}}]
      }
    })
}
