//! Property test: arbitrary mutations of real AdmissionReview bodies thrown at
//! the handler (in-process, no HTTP). It never panics (not even inside, where
//! a panic would be caught and answered per onError), and always answers:
//! HTTP 400 with a text body, or HTTP 200 with a well-formed review that
//! echoes the uid.
use proptest::prelude::*;
use serde_json::{json, Value};
use tiergate::admission::{
    self, AdmissionSettings, DefaultsSource, ErrorKind, ReviewBuilder, Webhook,
};
use tiergate::config::{Config, DEFAULT_YAML};
use tiergate::policy::Engine;

fn seeds() -> Vec<Value> {
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"app.kubernetes.io/name": "web"}},
        "spec": {"initContainers": [{"name": "init", "image": "busybox", "resources": {"limits": {"memory": "64Mi"}}}],
                 "containers": [{"name": "app", "image": "nginx", "securityContext": {"privileged": true},
                                 "ports": [{"containerPort": 80}]}]}});
    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"generateName": "web-"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "nginx", "resources": null}]}}}});
    let ns = json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "prod", "labels": {"tiergate.io/tier": "2", "tiergate.io/mode": "enforce"}}});
    let review = |uid: &str, op: &str, kind: &str, obj: Value, old: Value, sub: Option<&str>| {
        let mut r = ReviewBuilder::new(uid, op, obj)
            .kind("", "v1", kind)
            .name("web")
            .namespace(Some("shop"))
            .user("alice", &["dev"])
            .old(old)
            .with(
                "options",
                json!({"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}),
            );
        if let Some(s) = sub {
            r = r.sub_resource(s);
        }
        r.build()
    };
    let mut with_debug = pod.clone();
    with_debug["spec"]["ephemeralContainers"] =
        json!([{"name": "dbg", "image": "busybox", "securityContext": {"privileged": true}}]);
    vec![
        review("a", "CREATE", "Pod", pod.clone(), Value::Null, None),
        review("b", "UPDATE", "Deployment", deploy.clone(), deploy, None),
        review("c", "DELETE", "Pod", Value::Null, pod.clone(), None),
        review("d", "CREATE", "Namespace", ns, Value::Null, None),
        review(
            "e",
            "UPDATE",
            "Pod",
            with_debug,
            pod.clone(),
            Some("ephemeralcontainers"),
        ),
        review(
            "f",
            "UPDATE",
            "EphemeralContainers",
            json!({"apiVersion": "v1", "kind": "EphemeralContainers", "metadata": {"name": "web"},
                   "ephemeralContainers": [{"name": "dbg", "image": "busybox"}]}),
            pod,
            Some("ephemeralcontainers"),
        ),
    ]
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("Pod"),
            Just("CREATE"),
            Just("DELETE"),
            Just("v1"),
            Just("ephemeralcontainers"),
            Just("100m"),
            Just("privileged"),
            Just("Always"),
            Just("")
        ]
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    /// Replace the value at the n-th pointer.
    Set(usize, Value),
    /// Remove the n-th pointer (object key or array element).
    Remove(usize),
    /// Add a key to the n-th object.
    Add(usize, String, Value),
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), arb_json()).prop_map(|(i, v)| Mutation::Set(i, v)),
        any::<usize>().prop_map(Mutation::Remove),
        (any::<usize>(), ".{0,10}", arb_json()).prop_map(|(i, k, v)| Mutation::Add(i, k, v)),
    ]
}

fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                out.push(p.clone());
                pointers(x, p, out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                pointers(x, p, out);
            }
        }
        _ => {}
    }
}

fn apply(v: &mut Value, m: &Mutation) {
    let mut ps = Vec::new();
    pointers(v, String::new(), &mut ps);
    if ps.is_empty() {
        return;
    }
    match m {
        Mutation::Set(i, x) => {
            if let Some(slot) = v.pointer_mut(&ps[i % ps.len()]) {
                *slot = x.clone();
            }
        }
        Mutation::Remove(i) => {
            let p = &ps[i % ps.len()];
            let (parent, last) = p.rsplit_once('/').unwrap_or(("", p));
            let last = last.replace("~1", "/").replace("~0", "~");
            match v.pointer_mut(parent) {
                Some(Value::Object(o)) => {
                    o.remove(&last);
                }
                Some(Value::Array(a)) => {
                    if let Ok(i) = last.parse::<usize>() {
                        if i < a.len() {
                            a.remove(i);
                        }
                    }
                }
                _ => {}
            }
        }
        Mutation::Add(i, k, x) => {
            if let Some(Value::Object(o)) = v.pointer_mut(&ps[i % ps.len()]) {
                o.insert(k.clone(), x.clone());
            }
        }
    }
}

fn engines() -> Vec<Engine> {
    let enforce = DEFAULT_YAML.replace("mode: warn ", "mode: enforce ");
    vec![
        Engine::new(Config::from_yaml(DEFAULT_YAML, "default").unwrap().policy),
        Engine::new(Config::from_yaml(&enforce, "enforce").unwrap().policy),
    ]
}

fn check_answer(
    body: &[u8],
    engine: &Engine,
    webhook: Webhook,
    dry_run: bool,
) -> Result<(), TestCaseError> {
    let a = admission::handle(
        body,
        engine,
        &DefaultsSource,
        AdmissionSettings::new(webhook).dry_run(dry_run),
    );
    match a.status {
        400 => {
            prop_assert!(a.bad_request.is_some());
            prop_assert!(!a.body.is_empty());
        }
        200 => {
            let v: Value =
                serde_json::from_slice(&a.body).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&v["kind"], "AdmissionReview");
            // Invalid UTF-8 in a field the handler skips is not its business: compare
            // with a lossy reading.
            let sent: Value =
                serde_json::from_str(&String::from_utf8_lossy(body)).unwrap_or(Value::Null);
            prop_assert_eq!(&v["response"]["uid"], &sent["request"]["uid"]);
            prop_assert!(v["response"]["allowed"].is_boolean());
            if webhook == Webhook::Validate || dry_run {
                prop_assert!(v["response"].get("patch").is_none());
            }
            if dry_run {
                prop_assert_eq!(&v["response"]["allowed"], true);
            }
            let rec = a.record.unwrap();
            prop_assert!(
                !matches!(rec.error, Some(ErrorKind::Panic | ErrorKind::Internal)),
                "panic inside the handler: {:?}",
                rec
            );
        }
        s => prop_assert!(false, "unexpected status {}", s),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_reviews_always_get_an_answer(
        seed in 0usize..6,
        muts in prop::collection::vec(arb_mutation(), 0..5),
        webhook in prop_oneof![Just(Webhook::Validate), Just(Webhook::Mutate)],
        dry_run in any::<bool>(),
        enforce in any::<bool>(),
    ) {
        let mut v = seeds()[seed].clone();
        for m in &muts {
            apply(&mut v, m);
        }
        let engines = engines();
        check_answer(v.to_string().as_bytes(), &engines[usize::from(enforce)], webhook, dry_run)?;
    }

    #[test]
    fn mangled_bytes_always_get_an_answer(
        seed in 0usize..6,
        cut in any::<usize>(),
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..4),
    ) {
        let mut bytes = seeds()[seed].to_string().into_bytes();
        for (i, b) in flips {
            let n = bytes.len();
            bytes[i % n] = b;
        }
        if cut % 3 == 0 {
            bytes.truncate(cut % (bytes.len() + 1));
        }
        let engines = engines();
        check_answer(&bytes, &engines[1], Webhook::Validate, false)?;
        check_answer(&bytes, &engines[0], Webhook::Mutate, false)?;
    }
}
