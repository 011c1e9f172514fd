//! `TierException`: a governed exception to a namespace's standard, with a
//! reason, an owner and an end date. Pure: the callers read the objects (the
//! CLI from its input, the webhook from its watch cache) and give the time.
//!
//! One reading of the object ([`parse`]) serves every caller, so a
//! `TierException` means the same in admission, offline and in the cache:
//!
//! - [`validate`]: what the object must say, and the config's limits
//!   (`exceptions.maxLifetime`). The webhook refuses a write that fails it
//!   ([`guard_write`], with the approvers check), the CLI reports it, and the
//!   engine never applies one that fails it.
//! - The engine applies a valid exception that has not expired to the
//!   objects of its own namespace that it matches (see `Engine::evaluate`);
//!   it never reaches another namespace.
use serde_json::Value;

use super::config::{ContainerScope, NameGlob, PolicyConfig};
use super::context::Requester;
use super::guard::{is_tier_admin, listed, Verdict};
use super::kinds;
use super::rules;

pub const GROUP: &str = "tiergate.io";
pub const VERSION: &str = "v1alpha1";
pub const API_VERSION: &str = "tiergate.io/v1alpha1";
pub const KIND: &str = "TierException";
pub const PLURAL: &str = "tierexceptions";

/// A `TierException` as the engine needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExceptionFact {
    pub namespace: String,
    pub name: String,
    pub reason: String,
    pub owner: String,
    pub ticket: Option<String>,
    /// `spec.expires`, Unix seconds.
    pub expires: i64,
    /// `metadata.creationTimestamp`, Unix seconds (absent offline).
    pub created: Option<i64>,
    pub rules: Vec<String>,
    pub kinds: Vec<String>,
    pub names: Vec<NameGlob>,
    pub containers: Vec<NameGlob>,
    pub images: Vec<NameGlob>,
}

impl ExceptionFact {
    /// `namespace/name`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Whether it covers this object (for some of its rules).
    pub fn matches(&self, kind: &str, name: &str) -> bool {
        (self.kinds.is_empty() || self.kinds.iter().any(|k| k == kind))
            && (self.names.is_empty() || self.names.iter().any(|g| g.is_match(name)))
    }

    pub fn covers_rule(&self, id: &str) -> bool {
        self.rules.iter().any(|r| r == id)
    }

    pub fn scope(&self) -> ContainerScope<'_> {
        ContainerScope {
            containers: &self.containers,
            images: &self.images,
        }
    }

    /// Whether it applies at `now`: not expired, and within the config's
    /// maximum lifetime (from its creation, or from `now` when that is not
    /// known). An unknown time applies no exception.
    pub fn live_at(&self, now: Option<i64>, cfg: &PolicyConfig) -> bool {
        let Some(now) = now else { return false };
        now < self.expires && self.lifetime_problem(now, cfg).is_none()
    }

    fn lifetime_problem(&self, now: i64, cfg: &PolicyConfig) -> Option<String> {
        let start = self.created.unwrap_or(now);
        let max = cfg.exceptions.max_lifetime.0;
        (self.expires - start > max).then(|| {
            format!(
                "spec.expires {} is more than exceptions.maxLifetime ({}) after {}",
                rfc3339(self.expires),
                human(max),
                if self.created.is_some() {
                    "its creation"
                } else {
                    "now"
                }
            )
        })
    }
}

/// Unix seconds as RFC 3339.
pub fn rfc3339(secs: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(secs)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| secs.to_string())
}

/// RFC 3339 to Unix seconds.
pub fn parse_time(s: &str) -> Result<i64, String> {
    s.parse::<k8s_openapi::jiff::Timestamp>()
        .map(|t| t.as_second())
        .map_err(|e| format!("{s:?} is not an RFC 3339 time ({e})"))
}

/// `3 days`, `5 hours`, `12 minutes`, `40 seconds` (rounded down).
pub fn human(secs: i64) -> String {
    let (n, unit) = if secs >= 86_400 {
        (secs / 86_400, "day")
    } else if secs >= 3_600 {
        (secs / 3_600, "hour")
    } else if secs >= 60 {
        (secs / 60, "minute")
    } else {
        (secs.max(0), "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// Whether an object is a `TierException`.
pub fn is_exception(obj: &Value) -> bool {
    obj.get("kind").and_then(Value::as_str) == Some(KIND)
        && obj.get("apiVersion").and_then(Value::as_str) == Some(API_VERSION)
}

/// Read a `TierException`: every problem with what it says, at once.
pub fn parse(obj: &Value) -> Result<ExceptionFact, Vec<String>> {
    let mut problems = Vec::new();
    let meta = obj.get("metadata");
    fn s(v: Option<&Value>) -> &str {
        v.and_then(Value::as_str).map(str::trim).unwrap_or("")
    }
    let name = s(meta.and_then(|m| m.get("name"))).to_string();
    let namespace = s(meta.and_then(|m| m.get("namespace"))).to_string();
    let created = meta
        .and_then(|m| m.get("creationTimestamp"))
        .and_then(Value::as_str)
        .and_then(|t| parse_time(t).ok());
    let Some(spec) = obj.get("spec").filter(|v| v.is_object()) else {
        return Err(vec![
            "spec is missing (it needs reason, owner, expires, rules and match)".to_string(),
        ]);
    };
    let reason = s(spec.get("reason")).to_string();
    if reason.is_empty() {
        problems.push("spec.reason is required: why the standard cannot be met".to_string());
    }
    let owner = s(spec.get("owner")).to_string();
    if owner.is_empty() {
        problems.push("spec.owner is required: the team or contact who answers for it".into());
    }
    let ticket = spec
        .get("ticket")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(t) = &ticket {
        if !(t.starts_with("https://") || t.starts_with("http://")) {
            problems.push(format!("spec.ticket {t:?} is not an http(s) URL"));
        }
    }
    let expires = match spec.get("expires").and_then(Value::as_str) {
        None => {
            problems.push("spec.expires is required: an RFC 3339 time".to_string());
            0
        }
        Some(t) => parse_time(t).unwrap_or_else(|e| {
            problems.push(format!("spec.expires: {e}"));
            0
        }),
    };
    let strings = |v: Option<&Value>, field: &str, problems: &mut Vec<String>| -> Vec<String> {
        match v {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|x| match x.as_str() {
                    Some(s) => Some(s.to_string()),
                    None => {
                        problems.push(format!("{field}: {x} is not a string"));
                        None
                    }
                })
                .collect(),
            Some(other) => {
                problems.push(format!("{field} must be a list, not {other}"));
                Vec::new()
            }
        }
    };
    let rule_ids = strings(spec.get("rules"), "spec.rules", &mut problems);
    if rule_ids.is_empty() {
        problems.push("spec.rules is required: the rule ids it excepts".to_string());
    }
    for r in &rule_ids {
        if rules::by_id(r).is_none() {
            problems.push(format!(
                "spec.rules: unknown rule {r:?} (see `tiergate rules`)"
            ));
        }
    }
    let m = spec.get("match");
    let kinds_ = strings(
        m.and_then(|m| m.get("kinds")),
        "spec.match.kinds",
        &mut problems,
    );
    for k in &kinds_ {
        if let Err(e) = kinds::check_kind_name(k) {
            problems.push(format!("spec.match.kinds: {e}"));
        }
    }
    let mut globs = |field: &str| -> Vec<NameGlob> {
        strings(
            m.and_then(|m| m.get(field)),
            &format!("spec.match.{field}"),
            &mut problems,
        )
        .iter()
        .filter_map(|p| match NameGlob::new(p) {
            Ok(g) => Some(g),
            Err(e) => {
                problems.push(format!("spec.match.{field}: {e}"));
                None
            }
        })
        .collect()
    };
    let names = globs("names");
    let containers = globs("containers");
    let images = globs("images");
    if kinds_.is_empty() && names.is_empty() && containers.is_empty() && images.is_empty() {
        problems.push(
            "spec.match must name what it covers (kinds, names, containers or images): an \
             exception for everything in the namespace is a lower tier, not an exception"
                .to_string(),
        );
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(ExceptionFact {
        namespace,
        name,
        reason,
        owner,
        ticket,
        expires,
        created,
        rules: rule_ids,
        kinds: kinds_,
        names,
        containers,
        images,
    })
}

/// [`parse`] plus the config's limits at `now`.
pub fn validate(obj: &Value, now: i64, cfg: &PolicyConfig) -> Result<ExceptionFact, Vec<String>> {
    let e = parse(obj)?;
    match e.lifetime_problem(now, cfg) {
        Some(p) => Err(vec![p]),
        None => Ok(e),
    }
}

/// The webhook's verdict on a `TierException` CREATE or UPDATE: it must be
/// valid, not already expired, and written by an approver
/// (`exceptions.approvers`, else `tierAdmins`): a namespace's developers
/// cannot except themselves, whatever the cluster's RBAC allows.
pub fn guard_write(
    obj: &Value,
    requester: Option<&Requester>,
    now: i64,
    cfg: &PolicyConfig,
) -> Verdict {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut problems = match validate(obj, now, cfg) {
        Ok(e) if e.expires <= now => vec![format!(
            "spec.expires {} is not in the future",
            rfc3339(e.expires)
        )],
        Ok(_) => Vec::new(),
        Err(p) => p,
    };
    let approvers = cfg.exceptions.approvers(cfg);
    if !is_tier_admin(requester, approvers) {
        let who = requester.map_or("an unknown requester".to_string(), |r| {
            format!("{:?}", r.username)
        });
        let who_may = listed(approvers).unwrap_or_else(|| "nobody".to_string());
        problems.push(format!(
            "{who} may not grant exceptions; approvers are {who_may} (config \
             exceptions.approvers, else tierAdmins)"
        ));
    }
    if problems.is_empty() {
        Verdict::Allow
    } else {
        Verdict::Deny(format!(
            "tiergate: TierException {name:?} refused: {}",
            problems.join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_796_000_000; // 2026-11-29

    fn exception(spec: Value) -> Value {
        json!({"apiVersion": API_VERSION, "kind": KIND,
               "metadata": {"name": "legacy-db", "namespace": "shop"}, "spec": spec})
    }

    fn good() -> Value {
        exception(
            json!({"reason": "runs as root until the migration", "owner": "team-db",
            "expires": rfc3339(NOW + 3 * 86_400), "ticket": "https://tracker.example/DB-1",
            "rules": ["run-as-non-root"],
            "match": {"kinds": ["StatefulSet"], "names": ["legacy-*"]}}),
        )
    }

    #[test]
    fn a_valid_exception_reads_whole() {
        let e = validate(&good(), NOW, &PolicyConfig::default()).unwrap();
        assert_eq!(e.id(), "shop/legacy-db");
        assert_eq!(e.owner, "team-db");
        assert_eq!(e.expires, NOW + 3 * 86_400);
        assert!(e.matches("StatefulSet", "legacy-pg"));
        assert!(!e.matches("Deployment", "legacy-pg"));
        assert!(!e.matches("StatefulSet", "new-pg"));
        assert!(e.covers_rule("run-as-non-root") && !e.covers_rule("privileged"));
        assert!(e.scope().whole_object());
    }

    #[test]
    fn every_problem_is_said_at_once() {
        let bad = exception(json!({"reason": " ", "expires": "next week",
            "rules": ["no-such-rule"], "ticket": "DB-1", "match": {}}));
        let p = parse(&bad).unwrap_err();
        let all = p.join("\n");
        for want in [
            "spec.reason is required",
            "spec.owner is required",
            "spec.ticket \"DB-1\" is not an http(s) URL",
            "spec.expires: \"next week\" is not an RFC 3339 time",
            "unknown rule \"no-such-rule\"",
            "spec.match must name what it covers",
        ] {
            assert!(all.contains(want), "{want}: {all}");
        }
        assert!(parse(&exception(json!(null))).is_err());
        let p = parse(&exception(json!({"reason": "r", "owner": "o",
            "expires": rfc3339(NOW), "rules": ["privileged"], "match": {"kinds": ["deployment"]}})))
        .unwrap_err();
        assert!(p[0].contains("spec.match.kinds"), "{p:?}");
    }

    #[test]
    fn the_lifetime_is_bounded_from_creation_or_now() {
        let cfg = PolicyConfig::default();
        let mut long = good();
        long["spec"]["expires"] = json!(rfc3339(NOW + 91 * 86_400));
        let p = validate(&long, NOW, &cfg).unwrap_err();
        assert!(
            p[0].contains("more than exceptions.maxLifetime (90 days) after now"),
            "{p:?}"
        );
        // Created 10 days ago: 91 days from now is 101 from creation.
        long["metadata"]["creationTimestamp"] = json!(rfc3339(NOW - 10 * 86_400));
        let p = validate(&long, NOW, &cfg).unwrap_err();
        assert!(p[0].contains("after its creation"), "{p:?}");
        let e = parse(&long).unwrap();
        assert!(
            !e.live_at(Some(NOW), &cfg),
            "an over-long one never applies"
        );
        let e = parse(&good()).unwrap();
        assert!(e.live_at(Some(NOW), &cfg));
        assert!(
            !e.live_at(Some(NOW + 3 * 86_400), &cfg),
            "expired at expires"
        );
        assert!(!e.live_at(None, &cfg), "no clock, no exception");
    }

    #[test]
    fn only_approvers_grant_and_never_in_the_past() {
        let cfg = PolicyConfig::default();
        let admin = Requester {
            username: "root".into(),
            groups: vec!["system:masters".into()],
        };
        let dev = Requester {
            username: "alice".into(),
            groups: vec!["system:authenticated".into()],
        };
        assert_eq!(
            guard_write(&good(), Some(&admin), NOW, &cfg),
            Verdict::Allow
        );
        let Verdict::Deny(m) = guard_write(&good(), Some(&dev), NOW, &cfg) else {
            panic!("a developer granted an exception")
        };
        assert!(
            m.contains("\"alice\" may not grant exceptions; approvers are groups system:masters"),
            "{m}"
        );
        let cfg = crate::policy::config::from_test_yaml(
            "exceptions: {approvers: {users: [alice]}, maxLifetime: 30d}\n",
        );
        assert_eq!(guard_write(&good(), Some(&dev), NOW, &cfg), Verdict::Allow);
        let Verdict::Deny(m) = guard_write(&good(), Some(&dev), NOW + 4 * 86_400, &cfg) else {
            panic!("expired accepted")
        };
        assert!(m.contains("is not in the future"), "{m}");
    }

    #[test]
    fn durations_and_times_read_and_print() {
        use crate::policy::config::{parse_duration, Seconds};
        assert_eq!(parse_duration("90d"), Ok(Seconds(90 * 86_400)));
        assert_eq!(parse_duration("12h"), Ok(Seconds(43_200)));
        assert_eq!(parse_duration("45"), Ok(Seconds(45)));
        assert!(parse_duration("0s").is_err() && parse_duration("3w").is_err());
        assert_eq!(human(3 * 86_400 + 5), "3 days");
        assert_eq!(human(3_600), "1 hour");
        assert_eq!(parse_time(&rfc3339(NOW)), Ok(NOW));
    }

    /// The engine applying exceptions: what they take out of a decision.
    mod applied {
        use super::*;
        use crate::policy::rules::testutil::run_rule_with;
        use crate::policy::{Context, Fact, Mode, Tier};

        fn ctx(ns: &str, exceptions: Vec<ExceptionFact>, now: Option<i64>) -> Context {
            let mut c = Context::new(Tier::Foundation, Mode::Enforce);
            c.namespace = Some(ns.into());
            c.now = now;
            std::sync::Arc::make_mut(&mut c.facts).exceptions = Fact::Known(exceptions);
            c
        }

        fn root_db() -> Value {
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
                "metadata": {"name": "legacy-pg", "namespace": "shop"},
                "spec": {"selector": {"matchLabels": {"app": "pg"}}, "serviceName": "pg",
                  "template": {"metadata": {"labels": {"app": "pg"}}, "spec": {"containers": [
                    {"name": "db", "image": "postgres:16"},
                    {"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.24.0"}]}}}})
        }

        fn with(spec_match: Value, rules: &[&str], expires: i64) -> ExceptionFact {
            let mut o = good();
            o["spec"]["match"] = spec_match;
            o["spec"]["rules"] = json!(rules);
            o["spec"]["expires"] = json!(rfc3339(expires));
            parse(&o).unwrap()
        }

        #[test]
        fn a_live_exception_takes_its_rule_out_of_its_own_namespace_only() {
            let e = with(
                json!({"kinds": ["StatefulSet"]}),
                &["run-as-non-root"],
                NOW + 3 * 86_400,
            );
            let run = |c: &Context| run_rule_with("run-as-non-root", &root_db(), c, "");
            let r = run(&ctx("shop", vec![e.clone()], Some(NOW)));
            assert!(r.findings.is_empty(), "{:?}", r.findings);
            assert!(r.patch.0.is_empty(), "an excepted rule is not fixed");
            assert_eq!(r.exempted.len(), 1);
            let x = &r.exempted[0];
            assert_eq!(x.exception.as_deref(), Some("shop/legacy-db"));
            assert_eq!(x.owner.as_deref(), Some("team-db"));
            assert!(!x.findings.is_empty());
            // It ends within warnBefore (7 days): the requester is told.
            assert_eq!(
                r.notices,
                ["tiergate exception shop/legacy-db (run-as-non-root) ends in 3 days, owner team-db"]
            );
            // Another namespace's, an expired one, or no clock: judged as if
            // it never existed.
            let mut other = e.clone();
            other.namespace = "other".into();
            for c in [
                ctx("shop", vec![other], Some(NOW)),
                ctx("shop", vec![e.clone()], Some(NOW + 3 * 86_400)),
                ctx("shop", vec![e.clone()], None),
            ] {
                let r = run(&c);
                assert!(!r.findings.is_empty() && r.exempted.is_empty() && r.notices.is_empty());
            }
            // Far from its end: no notice.
            let far = with(
                json!({"kinds": ["StatefulSet"]}),
                &["run-as-non-root"],
                NOW + 30 * 86_400,
            );
            let r = run(&ctx("shop", vec![far], Some(NOW)));
            assert!(r.findings.is_empty() && r.notices.is_empty());
        }

        #[test]
        fn a_container_scoped_exception_covers_only_its_containers_and_stops_the_fix() {
            let run = |e: ExceptionFact| {
                run_rule_with(
                    "allow-privilege-escalation",
                    &root_db(),
                    &ctx("shop", vec![e], Some(NOW)),
                    "",
                )
            };
            let before = run(with(
                json!({"kinds": ["Deployment"]}),
                &["allow-privilege-escalation"],
                NOW + 86_400,
            ));
            assert_eq!(before.findings.len(), 2, "{:?}", before.findings);
            assert!(!before.patch.0.is_empty(), "fixed when nothing is excepted");
            for m in [
                json!({"containers": ["istio-*"]}),
                json!({"images": ["docker.io/istio/*"]}),
            ] {
                let r = run(with(m, &["allow-privilege-escalation"], NOW + 86_400));
                let left: Vec<_> = r.findings.iter().map(|f| f.container.as_deref()).collect();
                assert_eq!(left, vec![Some("db")], "{:?}", r.findings);
                assert_eq!(r.exempted.len(), 1);
                assert_eq!(
                    r.exempted[0].findings[0].container.as_deref(),
                    Some("istio-proxy")
                );
                assert!(r.patch.0.is_empty(), "the fix would change the sidecar too");
                assert!(!r.findings[0].fixable);
            }
        }

        #[test]
        fn config_exemptions_match_containers_and_images_too() {
            let cfg = "exemptions:\n- reason: the mesh injects it\n  images: ['docker.io/istio/*']\n  rules: [allow-privilege-escalation]\n";
            let r = run_rule_with(
                "allow-privilege-escalation",
                &root_db(),
                &ctx("shop", vec![], Some(NOW)),
                cfg,
            );
            assert_eq!(r.findings.len(), 1);
            assert_eq!(r.findings[0].container.as_deref(), Some("db"));
            assert_eq!(r.exempted.len(), 1);
            assert_eq!(r.exempted[0].exception, None);
            assert_eq!(r.exempted[0].reason, "the mesh injects it");
        }
    }
}
