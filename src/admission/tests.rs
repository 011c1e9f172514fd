use serde_json::{json, Value};

use super::*;
use crate::config::Config;
use crate::policy::config::{RuleId, RuleOverride};
use crate::policy::{Engine, Mode, Tier};

/// A config from `yaml`, with the embedded tier resource defaults when it has
/// none. These tests are about the protocol, not the catalog: every rule but
/// `privileged` and `resources` is off unless `yaml` says otherwise.
fn config(yaml: &str) -> PolicyConfig {
    let yaml = if yaml.is_empty() {
        "defaults: {}\n"
    } else {
        yaml
    };
    let mut cfg = Config::from_yaml(yaml, "test").expect("config").policy;
    for rule in crate::policy::rules::ALL {
        if rule.id != "privileged" && rule.id != "resources" {
            cfg.rules
                .entry(RuleId(rule.id.to_string()))
                .or_insert(RuleOverride {
                    action: Some(crate::policy::Action::Off),
                    fix: None,
                });
        }
    }
    cfg
}

fn engine(yaml: &str) -> Engine {
    Engine::new(config(yaml))
}

fn pod(containers: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "web", "namespace": "shop"},
           "spec": {"containers": containers}})
}

fn privileged_pod() -> Value {
    pod(json!([{"name": "app", "image": "nginx",
        "securityContext": {"privileged": true},
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"},
                      "limits": {"cpu": "1", "memory": "1Gi"}}}]))
}

fn review_of(op: &str, kind: &str, object: Value) -> Value {
    ReviewBuilder::new("u-1", op, object)
        .kind("", "v1", kind)
        .name("web")
        .namespace(Some("shop"))
        .user("alice", &["dev"])
        .build()
}

fn run(yaml: &str, body: &Value, webhook: Webhook, dry_run: bool) -> (Value, DecisionRecord) {
    let e = engine(yaml);
    let a = handle(
        body.to_string().as_bytes(),
        &e,
        &DefaultsSource,
        AdmissionSettings::new(webhook).dry_run(dry_run),
    );
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let v: Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(v["kind"], "AdmissionReview");
    assert_eq!(v["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(v["response"]["uid"], body["request"]["uid"]);
    if webhook == Webhook::Validate {
        assert!(v["response"].get("patch").is_none());
        assert!(v["response"].get("patchType").is_none());
    }
    (v["response"].clone(), a.record.unwrap())
}

const ENFORCE: &str = "defaults: {tier: 1, mode: enforce}\n";

#[test]
fn privileged_pod_is_denied_in_enforce_with_a_psa_style_message() {
    let (r, rec) = run(
        ENFORCE,
        &review_of("CREATE", "Pod", privileged_pod()),
        Webhook::Validate,
        false,
    );
    assert_eq!(r["allowed"], false);
    assert_eq!(r["status"]["code"], 403);
    let msg = r["status"]["message"].as_str().unwrap();
    assert_eq!(
        msg,
        "Pod \"web\" in namespace \"shop\" violates tiergate tier 1 (foundation): \
         privileged (container \"app\" must not set securityContext.privileged=true) \
         at /spec/containers/0/securityContext/privileged \
         (see `tiergate rules` for how to fix: privileged)"
    );
    assert_eq!(rec.decision, Decision::Deny);
    assert_eq!(r["auditAnnotations"]["decision"], "deny");
}

#[test]
fn warn_mode_allows_with_warnings_and_audit_mode_with_annotations() {
    let body = review_of("CREATE", "Pod", privileged_pod());
    let (r, rec) = run(
        "defaults: {tier: 1, mode: warn}\n",
        &body,
        Webhook::Validate,
        false,
    );
    assert_eq!(r["allowed"], true);
    assert_eq!(
        r["warnings"],
        json!(["privileged (container \"app\" must not set securityContext.privileged=true)"])
    );
    assert_eq!(rec.decision, Decision::Warn);

    let (r, rec) = run(
        "defaults: {tier: 1, mode: audit}\n",
        &body,
        Webhook::Validate,
        false,
    );
    assert_eq!(r["allowed"], true);
    assert!(r.get("warnings").is_none());
    let ann = r["auditAnnotations"].as_object().unwrap();
    // One key names the rules by action; the messages are in the answer's
    // warnings and denials, the audit's reports and `tiergate check`.
    assert_eq!(ann["findings"], "audit: privileged");
    assert!(!ann.keys().any(|k| k.starts_with("finding.")), "{ann:?}");
    assert_eq!(ann["mode"], "audit");
    assert_eq!(rec.decision, Decision::Audit);
    for k in ann.keys() {
        assert!(limits::is_valid_annotation_key(k), "{k}");
    }
}

#[test]
fn namespace_labels_set_their_own_tier_and_mode() {
    let ns = json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "shop", "labels": {"tiergate.io/tier": "production", "tiergate.io/mode": "enforce"}}});
    let src = DefaultsSource;
    let mut body = review_of("CREATE", "Namespace", ns);
    body["request"]["namespace"] = json!("");
    let req = AdmissionRequest::from_body(body.to_string().as_bytes()).unwrap();
    let r = src.context_within(&req, &PolicyConfig::default(), Duration::ZERO);
    assert_eq!(r.ctx.tier, Tier::Production);
    assert_eq!(r.ctx.mode, Mode::Enforce);
    assert_eq!(r.ctx.namespace.as_deref(), Some("shop"));
    assert_eq!(r.ctx.requester.as_ref().unwrap().username, "alice");

    let bad = json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "x", "labels": {"tiergate.io/tier": "gold"}}});
    let (resp, _) = run(
        "",
        &review_of("CREATE", "Namespace", bad),
        Webhook::Validate,
        false,
    );
    // An invalid tier is refused by the tier guard, naming the accepted values.
    assert_eq!(resp["allowed"], false);
    let msg = resp["status"]["message"].as_str().unwrap();
    assert!(
        msg.contains("tiergate.io/tier=\"gold\" is not a tier (accepted: 1..5"),
        "{msg}"
    );
}

fn namespace_update(old: Value, new: Value, user: &str, groups: &[&str]) -> Value {
    let ns = |labels: Value| {
        json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "shop", "labels": labels}})
    };
    let mut body = review_of("UPDATE", "Namespace", ns(new));
    body["request"]["oldObject"] = ns(old);
    body["request"]["namespace"] = json!("");
    body["request"]["name"] = json!("shop");
    body["request"]["userInfo"] = json!({"username": user, "groups": groups});
    body
}

#[test]
fn tier_guard_denies_non_admins_lowering_a_tier() {
    let cfg = "tierAdmins: {users: [alice], groups: [system:masters]}\n";
    let body = namespace_update(
        json!({"tiergate.io/tier": "3", "tiergate.io/mode": "enforce"}),
        json!({"tiergate.io/tier": "1", "tiergate.io/mode": "enforce"}),
        "bob",
        &["dev"],
    );
    let (resp, rec) = run(cfg, &body, Webhook::Validate, false);
    let r = &resp;
    assert_eq!(r["allowed"], false);
    assert_eq!(r["status"]["code"], 403);
    let msg = r["status"]["message"].as_str().unwrap();
    assert!(msg.starts_with("namespace \"shop\": lowering tiergate.io/tier from 3 (enterprise) to 1 (foundation) is reserved to tier admins only (users alice; groups system:masters); user \"bob\""), "{msg}");
    assert_eq!(rec.decision, Decision::Deny);
    assert!(r.get("patch").is_none());
    for k in r["auditAnnotations"].as_object().unwrap().keys() {
        assert!(limits::is_valid_annotation_key(k), "{k}");
    }

    // A tier admin (by user or group) may.
    for (user, groups) in [("alice", vec![]), ("root", vec!["system:masters"])] {
        let body = namespace_update(
            json!({"tiergate.io/tier": "3"}),
            json!({"tiergate.io/tier": "1"}),
            user,
            &groups,
        );
        let (resp, _) = run(cfg, &body, Webhook::Validate, false);
        assert_eq!(resp["allowed"], true, "{user}");
    }

    // Server dry-run: would deny, allowed, said in a warning.
    let (resp, rec) = run(cfg, &body, Webhook::Validate, true);
    assert_eq!(resp["allowed"], true);
    assert_eq!(rec.decision, Decision::WouldDeny);
    assert!(resp["warnings"][0].as_str().unwrap().contains("lowering"));

    // The mutating webhook does not judge labels.
    let (resp, _) = run(cfg, &body, Webhook::Mutate, false);
    assert_eq!(resp["allowed"], true);
}

#[test]
fn tier_guard_lets_everyone_raise_and_tighten() {
    let body = namespace_update(
        json!({"tiergate.io/tier": "1", "tiergate.io/mode": "warn"}),
        json!({"tiergate.io/tier": "2", "tiergate.io/mode": "enforce", "team": "a"}),
        "bob",
        &[],
    );
    let (resp, rec) = run("", &body, Webhook::Validate, false);
    assert_eq!(resp["allowed"], true);
    assert_eq!(rec.tier, Some(Tier::Production));
}

#[test]
fn dry_run_switch_never_denies_or_patches() {
    let body = review_of("CREATE", "Pod", privileged_pod());
    let (r, rec) = run(ENFORCE, &body, Webhook::Validate, true);
    assert_eq!(r["allowed"], true);
    assert_eq!(rec.decision, Decision::WouldDeny);
    assert!(r["auditAnnotations"]["would-deny"]
        .as_str()
        .unwrap()
        .contains("privileged"));
    assert!(r["warnings"][0].as_str().unwrap().starts_with("privileged"));

    let bare = review_of(
        "CREATE",
        "Pod",
        pod(json!([{"name": "app", "image": "nginx"}])),
    );
    let (r, rec) = run(ENFORCE, &bare, Webhook::Mutate, true);
    assert!(r.get("patch").is_none());
    assert_eq!(rec.decision, Decision::WouldPatch);
    assert_eq!(rec.fixes, vec!["resources"]);
    assert_eq!(r["auditAnnotations"]["would-patch"], "resources");
}

#[test]
fn request_dry_run_is_decided_as_usual() {
    let mut body = review_of("CREATE", "Pod", privileged_pod());
    body["request"]["dryRun"] = json!(true);
    let (r, rec) = run(ENFORCE, &body, Webhook::Validate, false);
    assert_eq!(r["allowed"], false);
    assert!(rec.request_dry_run);
}

fn decode_patch(r: &Value) -> json_patch::Patch {
    use base64::Engine as _;
    assert_eq!(r["patchType"], "JSONPatch");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(r["patch"].as_str().unwrap())
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn mutate_patches_in_enforce_and_warn_not_audit_and_is_idempotent() {
    let obj = pod(json!([{"name": "app", "image": "nginx"}]));
    for mode in ["enforce", "warn"] {
        let yaml = format!("defaults: {{tier: 1, mode: {mode}}}\n");
        let (r, rec) = run(
            &yaml,
            &review_of("CREATE", "Pod", obj.clone()),
            Webhook::Mutate,
            false,
        );
        assert_eq!(r["allowed"], true);
        assert_eq!(rec.decision, Decision::Patch);
        let patch = decode_patch(&r);
        let mut fixed = obj.clone();
        json_patch::patch(&mut fixed, &patch).unwrap();
        assert_eq!(
            fixed.pointer("/spec/containers/0/resources/requests/memory"),
            Some(&json!("128Mi"))
        );
        assert!(fixed
            .pointer("/spec/containers/0/resources/limits")
            .is_none());
        assert!(r["warnings"][0].as_str().unwrap().contains("resources"));
        // Second pass on our own output: no patch.
        let (r2, rec2) = run(
            &yaml,
            &review_of("CREATE", "Pod", fixed),
            Webhook::Mutate,
            false,
        );
        assert!(r2.get("patch").is_none(), "{r2}");
        assert_eq!(rec2.decision, Decision::Allow);
    }
    let (r, _) = run(
        "defaults: {tier: 1, mode: audit}\n",
        &review_of("CREATE", "Pod", obj),
        Webhook::Mutate,
        false,
    );
    assert!(r.get("patch").is_none());
}

#[test]
fn delete_connect_and_subresources_pass_untouched() {
    let mut del = review_of("DELETE", "Pod", Value::Null);
    del["request"]["oldObject"] = privileged_pod();
    for wh in [Webhook::Validate, Webhook::Mutate] {
        let (r, rec) = run(ENFORCE, &del, wh, false);
        assert_eq!(r["allowed"], true);
        assert!(r.get("patch").is_none());
        assert_eq!(rec.decision, Decision::Skip);
    }
    let connect = review_of(
        "CONNECT",
        "PodExecOptions",
        json!({"kind": "PodExecOptions", "apiVersion": "v1", "command": ["sh"]}),
    );
    let (r, _) = run(ENFORCE, &connect, Webhook::Validate, false);
    assert_eq!(r["allowed"], true);
    for sub in ["status", "scale", "eviction", "binding"] {
        let mut b = review_of("UPDATE", "Pod", privileged_pod());
        b["request"]["subResource"] = json!(sub);
        let (r, rec) = run(ENFORCE, &b, Webhook::Validate, false);
        assert_eq!(r["allowed"], true, "{sub}");
        assert_eq!(rec.decision, Decision::Skip);
    }
}

#[test]
fn ephemeral_containers_are_checked_as_pod_or_ephemeralcontainers_kind() {
    let mut p = pod(json!([{"name": "app", "image": "nginx",
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}}]));
    let old = p.clone();
    p["spec"]["ephemeralContainers"] = json!([{"name": "debug", "image": "busybox",
        "securityContext": {"privileged": true}}]);
    let mut b = review_of("UPDATE", "Pod", p);
    b["request"]["subResource"] = json!("ephemeralcontainers");
    b["request"]["oldObject"] = old.clone();
    let (r, _) = run(ENFORCE, &b, Webhook::Validate, false);
    assert_eq!(r["allowed"], false);
    assert!(r["status"]["message"]
        .as_str()
        .unwrap()
        .contains("container \"debug\""));
    assert!(r["status"]["message"]
        .as_str()
        .unwrap()
        .contains("/spec/ephemeralContainers/0/securityContext/privileged"));
    // Mutate never patches a subresource.
    let (r, _) = run(ENFORCE, &b, Webhook::Mutate, false);
    assert!(r.get("patch").is_none());

    // Old clusters: kind EphemeralContainers.
    let ec = json!({"apiVersion": "v1", "kind": "EphemeralContainers",
        "metadata": {"name": "web", "namespace": "shop"},
        "ephemeralContainers": [{"name": "debug", "image": "busybox", "securityContext": {"privileged": true}}]});
    let mut b = review_of("UPDATE", "EphemeralContainers", ec);
    b["request"]["subResource"] = json!("ephemeralcontainers");
    let (r, _) = run(ENFORCE, &b, Webhook::Validate, false);
    assert_eq!(r["allowed"], false, "{r}");
    b["request"]["oldObject"] = old;
    let (r, _) = run(ENFORCE, &b, Webhook::Validate, false);
    assert_eq!(r["allowed"], false, "{r}");
}

#[test]
fn generate_name_with_empty_name_is_named_by_its_prefix() {
    let mut obj = privileged_pod();
    obj["metadata"] = json!({"generateName": "web-", "namespace": "shop"});
    let mut b = review_of("CREATE", "Pod", obj);
    b["request"]["name"] = json!("");
    let (r, _) = run(ENFORCE, &b, Webhook::Validate, false);
    assert!(r["status"]["message"]
        .as_str()
        .unwrap()
        .starts_with("Pod with generateName \"web-\" in namespace \"shop\""));
}

#[test]
fn unchanged_pod_updates_are_not_judged_again() {
    let mut b = review_of("UPDATE", "Pod", privileged_pod());
    let mut old = privileged_pod();
    old["metadata"]["labels"] = json!({"a": "b"});
    b["request"]["oldObject"] = old;
    let (r, rec) = run(ENFORCE, &b, Webhook::Validate, false);
    assert_eq!(r["allowed"], true);
    assert_eq!(rec.decision, Decision::Skip);
}

#[test]
fn unchanged_workload_updates_are_passed_and_changed_ones_judged() {
    let dep = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "app", "image": "nginx",
                                       "securityContext": {"privileged": true}}]}}}});
    let update = |new: serde_json::Value| {
        let mut b = review_of("UPDATE", "Deployment", new);
        b["request"]["kind"] = json!({"group": "apps", "version": "v1", "kind": "Deployment"});
        b["request"]["oldObject"] = dep.clone();
        b
    };
    // A finalizer and a status written through the main resource: passed.
    let mut bookkeeping = dep.clone();
    bookkeeping["metadata"]["finalizers"] = json!(["example.com/x"]);
    bookkeeping["metadata"]["resourceVersion"] = json!("7");
    bookkeeping["status"] = json!({"replicas": 1});
    for hook in [Webhook::Validate, Webhook::Mutate] {
        let (r, rec) = run(ENFORCE, &update(bookkeeping.clone()), hook, false);
        assert_eq!(r["allowed"], true);
        assert!(r.get("patch").is_none());
        assert_eq!(rec.decision, Decision::Skip, "{hook:?}");
    }
    // A label, an annotation, an owner or the spec changed: judged.
    let mut changes = Vec::new();
    let mut label = dep.clone();
    label["metadata"]["labels"]["tier"] = json!("web");
    changes.push(label);
    let mut ann = dep.clone();
    ann["metadata"]["annotations"] = json!({"a": "b"});
    changes.push(ann);
    let mut owner = dep.clone();
    owner["metadata"]["ownerReferences"] =
        json!([{"apiVersion": "x/v1", "kind": "App", "name": "a", "uid": "1", "controller": true}]);
    changes.push(owner);
    let mut spec = dep.clone();
    spec["spec"]["replicas"] = json!(2);
    changes.push(spec);
    for c in changes {
        let (r, rec) = run(ENFORCE, &update(c.clone()), Webhook::Validate, false);
        assert_eq!(r["allowed"], false, "{c}");
        assert_eq!(rec.decision, Decision::Deny);
    }
    // Not a listed kind (a ConfigMap has no spec): judged as before.
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
    let mut b = review_of("UPDATE", "ConfigMap", cm.clone());
    b["request"]["oldObject"] = cm;
    let (_, rec) = run(ENFORCE, &b, Webhook::Validate, false);
    assert_ne!(rec.decision, Decision::Skip);
}

#[test]
fn the_unchanged_update_condition_names_the_same_kinds() {
    let cel = super::scope::unchanged_update_cel();
    for (g, kinds) in super::scope::UNCHANGED_UPDATE_KINDS {
        assert!(
            cel.contains(&format!("request.kind.group == '{g}'")),
            "{cel}"
        );
        for k in *kinds {
            assert!(cel.contains(&format!("'{k}'")), "{k}: {cel}");
        }
    }
    // Balanced, and every read of a field is guarded by has().
    assert_eq!(cel.matches('(').count(), cel.matches(')').count());
    assert_eq!(
        cel.matches("object.spec ==").count(),
        1,
        "one comparison of the spec: {cel}"
    );
    println!("{cel}");
}

#[test]
fn unknown_kinds_are_allowed() {
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "b"}});
    let (r, rec) = run(
        ENFORCE,
        &review_of("CREATE", "ConfigMap", cm.clone()),
        Webhook::Validate,
        false,
    );
    assert_eq!(r["allowed"], true);
    assert_eq!(rec.decision, Decision::Allow);
    let w =
        json!({"apiVersion": "x.io/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": 3});
    let (r, _) = run(
        ENFORCE,
        &review_of("CREATE", "Widget", w),
        Webhook::Mutate,
        false,
    );
    assert_eq!(r["allowed"], true);
}

#[test]
fn invalid_objects_deny_on_validate_and_allow_on_mutate() {
    let bad = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}, "spec": {"containers": 7}});
    let body = review_of("CREATE", "Pod", bad);
    let (r, rec) = run(ENFORCE, &body, Webhook::Validate, false);
    assert_eq!(r["allowed"], false);
    assert_eq!(r["status"]["code"], 400);
    assert!(r["status"]["message"]
        .as_str()
        .unwrap()
        .starts_with("tiergate cannot judge Pod \"web\": invalid Pod"));
    assert_eq!(rec.error, Some(ErrorKind::InvalidObject));
    let (r, rec) = run(ENFORCE, &body, Webhook::Mutate, false);
    assert_eq!(r["allowed"], true);
    assert!(r.get("patch").is_none());
    assert_eq!(rec.decision, Decision::Error);
    // CREATE without an object.
    let (r, _) = run(
        ENFORCE,
        &review_of("CREATE", "Pod", Value::Null),
        Webhook::Validate,
        false,
    );
    assert_eq!(r["allowed"], false);
}

struct Panicking(PolicyConfig);
impl Evaluate for Panicking {
    fn evaluate(&self, _: &Value, _: &Context, _: &Options) -> Result<Evaluation, EngineError> {
        panic!("boom")
    }
    fn config(&self) -> &PolicyConfig {
        &self.0
    }
}

#[test]
fn panics_follow_on_error_on_validate_and_allow_on_mutate() {
    let body = review_of("CREATE", "Pod", privileged_pod()).to_string();
    let sw = |webhook| AdmissionSettings::new(webhook).dry_run(false);
    let p = Panicking(config(ENFORCE));
    let a = handle(body.as_bytes(), &p, &DefaultsSource, sw(Webhook::Validate));
    let v: Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(v["response"]["allowed"], false);
    assert_eq!(v["response"]["uid"], "u-1");
    assert!(v["response"]["status"]["message"]
        .as_str()
        .unwrap()
        .contains("internal error"));
    let rec = a.record.unwrap();
    assert_eq!(rec.error, Some(ErrorKind::Panic));
    // The one panic boundary still knows the context resolved before it.
    assert_eq!(rec.tier, Some(Tier::Foundation));
    let a = handle(body.as_bytes(), &p, &DefaultsSource, sw(Webhook::Mutate));
    let v: Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(v["response"]["allowed"], true);
    assert!(v["response"].get("patch").is_none());
    let file = Config::from_yaml("onError: allow\ndefaults: {mode: enforce}\n", "t").unwrap();
    let allow = Panicking(file.policy);
    let a = handle(
        body.as_bytes(),
        &allow,
        &DefaultsSource,
        sw(Webhook::Validate).on_error(file.server.on_error),
    );
    let v: Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(v["response"]["allowed"], true);
    assert_eq!(v["response"]["auditAnnotations"]["error"], "panic");
    // In a warn namespace a panic does not block either: admitted with a warning.
    let a = handle(
        body.as_bytes(),
        &Panicking(config("defaults: {tier: 1, mode: warn}\n")),
        &DefaultsSource,
        sw(Webhook::Validate),
    );
    let v: Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(v["response"]["allowed"], true);
    assert!(v["response"]["warnings"][0]
        .as_str()
        .unwrap()
        .contains("internal error"));
}

/// An evaluator that returns a given patch (for rules that touch labels).
struct Fixed(PolicyConfig, Value);
impl Evaluate for Fixed {
    fn evaluate(&self, obj: &Value, _: &Context, _: &Options) -> Result<Evaluation, EngineError> {
        let mut e = Evaluation::default();
        if obj != &self.1 {
            e.patch = json_patch::diff(obj, &self.1);
            e.fixed = Some(self.1.clone());
        }
        Ok(e)
    }
    fn config(&self) -> &PolicyConfig {
        &self.0
    }
}

#[test]
fn patches_escape_label_keys_with_slashes() {
    let obj = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"a": "b"}},
        "spec": {"containers": []}});
    let mut want = obj.clone();
    want["metadata"]["labels"]["app.kubernetes.io/name"] = json!("web");
    want["metadata"]["annotations"] = json!({"x~y/z": "1"});
    let f = Fixed(config(ENFORCE), want.clone());
    let body = review_of("CREATE", "Pod", obj.clone()).to_string();
    let a = handle(
        body.as_bytes(),
        &f,
        &DefaultsSource,
        AdmissionSettings::new(Webhook::Mutate).dry_run(false),
    );
    let v: Value = serde_json::from_slice(&a.body).unwrap();
    let patch = decode_patch(&v["response"]);
    let text = serde_json::to_string(&patch).unwrap();
    assert!(
        text.contains("/metadata/labels/app.kubernetes.io~1name"),
        "{text}"
    );
    let mut got = obj;
    json_patch::patch(&mut got, &patch).unwrap();
    assert_eq!(got, want);
}

#[test]
fn bad_requests_are_400_with_clear_bodies() {
    let e = engine("");
    let sw = AdmissionSettings::new(Webhook::Validate).dry_run(false);
    for (body, want) in [
        ("", "empty body"),
        ("   ", "empty body"),
        ("{not json", "malformed JSON"),
        ("[1,2]", "not an AdmissionReview"),
        (
            "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\"}",
            "no `request`",
        ),
        ("{\"request\":{\"operation\":\"CREATE\"}}", "uid"),
        (
            "{\"request\":{\"uid\":\"x\",\"operation\":\"PATCH\"}}",
            "not an AdmissionReview",
        ),
        // The envelope must be an AdmissionReview of admission.k8s.io/v1 or v1beta1.
        (
            "{\"apiVersion\":\"foo/v9\",\"kind\":\"AdmissionReview\",\"request\":{\"uid\":\"x\",\"operation\":\"CREATE\"}}",
            "apiVersion is \"foo/v9\"",
        ),
        (
            "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"NotAReview\",\"request\":{\"uid\":\"x\",\"operation\":\"CREATE\"}}",
            "kind is \"NotAReview\"",
        ),
        (
            "{\"kind\":\"AdmissionReview\",\"request\":{\"uid\":\"x\",\"operation\":\"CREATE\"}}",
            "apiVersion is missing",
        ),
    ] {
        let a = handle(body.as_bytes(), &e, &DefaultsSource, sw);
        assert_eq!(a.status, 400, "{body}");
        let text = String::from_utf8(a.body).unwrap();
        assert!(text.contains(want), "{body}: {text}");
    }
}

#[test]
fn exemptions_are_recorded() {
    let yaml = "defaults: {tier: 1, mode: enforce}\nexemptions:\n  - reason: break-glass\n    users: [alice]\n    rules: [privileged]\n";
    let (r, rec) = run(
        yaml,
        &review_of("CREATE", "Pod", privileged_pod()),
        Webhook::Validate,
        false,
    );
    assert_eq!(r["allowed"], true);
    assert_eq!(
        rec.exempted,
        vec![("privileged", "break-glass".to_string())]
    );
    assert_eq!(
        r["auditAnnotations"]["exempted"],
        "privileged (break-glass)"
    );
}

#[test]
fn many_findings_respect_warning_and_message_limits() {
    let containers: Vec<Value> = (0..300)
        .map(|i| {
            json!({"name": format!("container-with-a-rather-long-name-{i:04}-{}", "x".repeat(40)),
                        "image": "nginx", "securityContext": {"privileged": true}})
        })
        .collect();
    let body = review_of("CREATE", "Pod", pod(json!(containers)));
    let (r, _) = run(
        "defaults: {tier: 1, mode: warn}\n",
        &body,
        Webhook::Validate,
        false,
    );
    let w: Vec<&str> = r["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert!(w.iter().all(|x| x.chars().count() < 120));
    assert!(w.iter().map(|x| x.len()).sum::<usize>() < 4096);
    assert!(w.last().unwrap().starts_with("and "));
    for (k, v) in r["auditAnnotations"].as_object().unwrap() {
        assert!(limits::is_valid_annotation_key(k));
        assert!(v.as_str().unwrap().len() <= limits::ANNOTATION_VALUE_MAX);
    }
    let (r, _) = run(ENFORCE, &body, Webhook::Validate, false);
    let msg = r["status"]["message"].as_str().unwrap();
    assert!(msg.len() <= limits::MESSAGE_MAX);
    assert!(
        msg.contains(" more") && msg.ends_with("privileged, resources)"),
        "{msg}"
    );
}

#[test]
fn request_kind_and_object_kind_must_agree() {
    let body = review_of("CREATE", "Namespace", privileged_pod());
    let (r, rec) = run(ENFORCE, &body, Webhook::Validate, false);
    assert_eq!(r["allowed"], false, "{r}");
    assert_eq!(r["status"]["code"], 400);
    assert!(r["status"]["message"]
        .as_str()
        .unwrap()
        .contains("request.kind is /Namespace but the object is /Pod"));
    assert_eq!(rec.error, Some(ErrorKind::InvalidObject));
}

#[test]
fn what_cannot_be_judged_blocks_only_in_enforce() {
    let bad = pod(json!([{"name": "app", "image": 42}]));
    let body = review_of("CREATE", "Pod", bad);
    let (r, _) = run(ENFORCE, &body, Webhook::Validate, false);
    assert_eq!(r["allowed"], false);
    for mode in ["warn", "audit"] {
        let (r, rec) = run(
            &format!("defaults: {{tier: 1, mode: {mode}}}\n"),
            &body,
            Webhook::Validate,
            false,
        );
        assert_eq!(r["allowed"], true, "{mode}: {r}");
        assert!(
            r["warnings"][0]
                .as_str()
                .unwrap()
                .starts_with("tiergate cannot judge Pod \"web\""),
            "{r}"
        );
        assert_eq!(rec.error, Some(ErrorKind::InvalidObject));
    }
}

#[test]
fn objects_a_controller_made_are_judged_at_their_owner_and_never_patched() {
    let mut p = pod(json!([{"name": "app", "image": "nginx"}]));
    p["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "name": "web-6d4cf56db6", "uid": "1", "controller": true}]);
    let body = review_of("CREATE", "Pod", p.clone());
    let (r, rec) = run(ENFORCE, &body, Webhook::Mutate, false);
    assert!(r.get("patch").is_none(), "an owned Pod is patched: {r}");
    assert_eq!(rec.owner.as_deref(), Some("ReplicaSet \"web-6d4cf56db6\""));
    let (r, _) = run(ENFORCE, &body, Webhook::Validate, false);
    let msg = r["status"]["message"].as_str().unwrap();
    assert!(
        msg.contains("(created by ReplicaSet \"web-6d4cf56db6\": fix the template of its owner)"),
        "{msg}"
    );
    // The same Pod written by a person is patched.
    let (r, rec) = run(
        ENFORCE,
        &review_of(
            "CREATE",
            "Pod",
            pod(json!([{"name": "app", "image": "nginx"}])),
        ),
        Webhook::Mutate,
        false,
    );
    assert!(r.get("patch").is_some(), "{r}");
    assert_eq!(rec.owner, None);
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn tier_exception(expires_in: i64) -> Value {
    json!({"apiVersion": "tiergate.io/v1alpha1", "kind": "TierException",
        "metadata": {"name": "break-glass", "namespace": "shop"},
        "spec": {"reason": "incident 42", "owner": "team-web",
            "expires": crate::policy::exception::rfc3339(unix_now() + expires_in),
            "rules": ["privileged"], "match": {"kinds": ["Pod"]}}})
}

#[test]
fn tier_exception_writes_need_an_approver_and_valid_limits() {
    let write = |obj: Value, user: &str, groups: &[&str]| {
        let body = ReviewBuilder::new("u-1", "CREATE", obj)
            .kind("tiergate.io", "v1alpha1", "TierException")
            .name("break-glass")
            .namespace(Some("shop"))
            .user(user, groups)
            .build();
        let cfg = "defaults: {tier: 1, mode: enforce}\ntierAdmins: {groups: [system:masters]}\n";
        run(cfg, &body, Webhook::Validate, false)
    };
    let (r, rec) = write(tier_exception(3_600), "alice", &["dev"]);
    assert_eq!(r["allowed"], false);
    let msg = r["status"]["message"].as_str().unwrap();
    assert!(
        msg.contains("\"alice\" may not grant exceptions; approvers are groups system:masters"),
        "{msg}"
    );
    assert_eq!(rec.decision, Decision::Deny);
    let (r, _) = write(tier_exception(3_600), "root", &["system:masters"]);
    assert_eq!(r["allowed"], true, "{r}");
    // Even an approver cannot grant one that is over-long or already over.
    let (r, _) = write(tier_exception(100 * 86_400), "root", &["system:masters"]);
    assert!(
        r["status"]["message"]
            .as_str()
            .unwrap()
            .contains("maxLifetime"),
        "{r}"
    );
    let (r, _) = write(tier_exception(-10), "root", &["system:masters"]);
    assert!(
        r["status"]["message"]
            .as_str()
            .unwrap()
            .contains("not in the future"),
        "{r}"
    );
}

/// A source that knows the namespace's TierExceptions (as the cluster cache does).
struct WithExceptions(Vec<crate::policy::exception::ExceptionFact>);

impl ContextSource for WithExceptions {
    fn context_within(
        &self,
        req: &AdmissionRequest,
        cfg: &PolicyConfig,
        _wait: std::time::Duration,
    ) -> ResolvedContext {
        let facts = crate::policy::NamespaceFacts {
            exceptions: crate::policy::Fact::Known(self.0.clone()),
            ..Default::default()
        };
        context::resolve_request(req, cfg, None, facts)
    }
}

#[test]
fn a_live_tier_exception_admits_records_and_warns_before_it_ends() {
    let e = crate::policy::exception::parse(&tier_exception(36 * 3_600)).unwrap();
    let body = review_of("CREATE", "Pod", privileged_pod());
    let a = handle(
        body.to_string().as_bytes(),
        &engine(ENFORCE),
        &WithExceptions(vec![e]),
        AdmissionSettings::new(Webhook::Validate),
    );
    let v: Value = serde_json::from_slice(&a.body).unwrap();
    let r = &v["response"];
    assert_eq!(r["allowed"], true, "{r}");
    assert_eq!(
        r["auditAnnotations"]["exception"],
        "shop/break-glass (privileged)"
    );
    let w = r["warnings"][0].as_str().unwrap();
    assert_eq!(
        w,
        "tiergate exception shop/break-glass (privileged) ends in 1 day, owner team-web"
    );
    let rec = a.record.unwrap();
    assert_eq!(
        rec.exceptions,
        vec![("privileged", "shop/break-glass".to_string())]
    );
    assert!(rec.exempted.is_empty());
}

#[test]
fn hybrid_leaves_the_covered_rules_to_the_apiservers_policies() {
    // privileged is covered by the policies: the validating webhook skips
    // it; resources' fix still runs in the mutating webhook.
    let hybrid = "defaults: {tier: 1, mode: enforce}\nadmissionPolicies: hybrid\n";
    let (r, _) = run(
        hybrid,
        &review_of("CREATE", "Pod", privileged_pod()),
        Webhook::Validate,
        false,
    );
    assert_eq!(r["allowed"], true, "{r}");
    let (r, _) = run(
        ENFORCE,
        &review_of("CREATE", "Pod", privileged_pod()),
        Webhook::Validate,
        false,
    );
    assert_eq!(r["allowed"], false, "{r}");
    let bare = pod(json!([{"name": "app", "image": "nginx"}]));
    let (r, _) = run(
        hybrid,
        &review_of("CREATE", "Pod", bare),
        Webhook::Mutate,
        false,
    );
    assert!(r.get("patch").is_some(), "the fixes still run: {r}");
    let labels = |v: &str| {
        std::collections::BTreeMap::from([(
            crate::policy::cel::ADMISSION_LABEL.to_string(),
            v.to_string(),
        )])
    };
    assert!(crate::policy::cel::webhook_only(&labels("webhook")));
    assert!(!crate::policy::cel::webhook_only(&labels("policies")));
}

/// Which images the server asks the verifier about: the validating webhook
/// every image a rule names; the mutating one only those it may pin; an
/// UPDATE says which images the object already ran.
#[test]
fn images_to_verify_follow_the_webhook_and_the_tier() {
    use crate::policy::rules::image_signature::tests::config as images_config;
    let cfg = Config::from_yaml(&images_config("deny"), "test")
        .expect("config")
        .policy;
    let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let d = |images: &[&str]| {
        let containers: Vec<Value> = images
            .iter()
            .enumerate()
            .map(|(i, im)| json!({"name": format!("c{i}"), "image": im}))
            .collect();
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "namespace": "shop"},
               "spec": {"selector": {}, "template": {"spec": {"containers": containers}}}})
    };
    let pinned = format!("reg.example/team/db:2@{digest}");
    let obj = d(&["reg.example/team/web:1", &pinned, "docker.io/nginx:1"]);
    let req =
        |review: Value| AdmissionRequest::from_body(review.to_string().as_bytes()).expect("req");
    let create = req(ReviewBuilder::new("u", "CREATE", obj.clone()).build());
    let at = |tier| crate::policy::Context::new(tier, Mode::Enforce);
    let validate = AdmissionSettings::new(Webhook::Validate);
    let mutate = AdmissionSettings::new(Webhook::Mutate);
    let (v, _) = images_to_verify(&create, &cfg, validate, &at(Tier::Hyperscale)).expect("some");
    assert_eq!(
        v,
        vec!["reg.example/team/web:1".to_string(), pinned.clone()]
    );
    let (m, _) = images_to_verify(&create, &cfg, mutate, &at(Tier::Hyperscale)).expect("some");
    assert_eq!(
        m,
        vec!["reg.example/team/web:1".to_string()],
        "pinned: nothing to pin"
    );
    // Tier 3: the rule names no image there.
    assert!(images_to_verify(&create, &cfg, validate, &at(Tier::Enterprise)).is_none());
    // Audit mode: no patch, so the mutating webhook asks nothing.
    let mut audit = at(Tier::Hyperscale);
    audit.mode = Mode::Audit;
    assert!(images_to_verify(&create, &cfg, mutate, &audit).is_none());
    assert!(images_to_verify(&create, &cfg, validate, &audit).is_some());
    // An UPDATE: the old object's images are known as running.
    let old = d(&["reg.example/team/web:1"]);
    let mut new = d(&["reg.example/team/web:1", "reg.example/team/side:3"]);
    new["spec"]["replicas"] = json!(3);
    let update = req(ReviewBuilder::new("u", "UPDATE", new).old(old).build());
    let (m, unchanged) =
        images_to_verify(&update, &cfg, mutate, &at(Tier::Hyperscale)).expect("some");
    assert_eq!(m.len(), 2);
    assert!(unchanged.contains("reg.example/team/web:1"));
    assert!(!unchanged.contains("reg.example/team/side:3"));
    // No images.verify: nothing, whatever the object.
    assert!(images_to_verify(&create, &config(""), validate, &at(Tier::Hyperscale)).is_none());
}
