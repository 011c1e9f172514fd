//! `standard-labels`: the `app.kubernetes.io/{name,version,component}` labels.
use super::prelude::*;
use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::image_tag::ImageRef;
use crate::policy::fixutil;
use crate::policy::kinds::{POD, WORKLOADS};
use crate::policy::target::ContainerKind;

pub static RULE: Rule = Rule {
    id: "standard-labels",
    tier: Tier::Production,
    pss: None,
    summary: "objects and pod templates carry app.kubernetes.io/name, version and component",
    doc: "The recommended `app.kubernetes.io/*` labels are what dashboards, cost reports, \
`kubectl get -l`, service meshes and incident responders use to answer \"what is this \
pod, which version, which part of the system\". Set `app.kubernetes.io/name`, \
`app.kubernetes.io/version` and `app.kubernetes.io/component` on the object's \
`metadata.labels` and on its pod template's labels (so the pods carry them too; a Pod \
has just its own metadata). The fix never changes a label that is already set and \
never touches a selector: it sets `name` from the object's name (not when only \
`generateName` is given) and `version` from the tag of the first regular container's \
image when that tag is pinned and a valid label value (not `latest`, not a digest-only \
image). `component` (web, database, worker…) only a person knows, so it stays a \
finding. A version label the fix added is not updated when the image changes later \
(it is then present, and existing labels are never changed): to keep it current, set \
it in the manifest itself, e.g. from your Helm chart or kustomization. \
Safety: it only adds labels; it never changes one, and never a selector (a changed selector would orphan the workload's pods).",
    check: Check::Object(Kinds::Workloads, check),
    fix: Fix::Safe {
        summary: "set app.kubernetes.io/name and version labels from the object name and image tag",
        apply: FixFn::Object(fix),
        cel: Some(fix_cel),
    },
    cel: Cel::Findings(cel),
};

const NAME: &str = "app.kubernetes.io/name";
const VERSION: &str = "app.kubernetes.io/version";
const COMPONENT: &str = "app.kubernetes.io/component";
const LABELS: [&str; 3] = [NAME, VERSION, COMPONENT];

/// The metadata pointers to check: the object's, then its pod template's.
fn locations<'t>(t: &'t Target<'_>) -> Vec<(&'static str, Option<&'t BTreeMap<String, String>>)> {
    let mut out = vec![("/metadata", t.meta.labels.as_ref())];
    if let Some(pod) = &t.pod {
        if t.kind != "Pod" {
            out.push((pod.meta_path, pod.meta.labels.as_ref()));
        }
    }
    out
}

/// CEL: the findings, the object's labels first, then its pod template's
/// (named by the template's path for the kind in hand).
fn cel(_cx: &CelCtx<'_>) -> String {
    let missing = |meta: &str, dotted: &str| {
        format!(
            "{}.filter(k, !(k in {meta}.?labels.orValue({{}}))).map(k, 'standard labels (' + \
             {dotted} + '.labels must set ' + k + ')')",
            cel::list(&LABELS)
        )
    };
    let mut template = String::new();
    for w in WORKLOADS.iter().filter(|w| w.gk != POD) {
        template.push_str(&format!(
            "request.kind.group == {} && request.kind.kind == {} ? {} : ",
            lit(w.gk.group),
            lit(w.gk.kind),
            lit(&w.meta.trim_start_matches('/').replace('/', "."))
        ));
    }
    format!(
        "{} + (request.kind.group == '' && request.kind.kind == 'Pod' ? [] : {})",
        missing("variables.obj.metadata", "'metadata'"),
        missing("variables.podMeta", &format!("({template}'')"))
    )
}

/// CEL: the string `v` is a non-empty valid label value.
fn valid_label_value_cel(v: &str) -> String {
    format!("(size({v}) <= 63 && {v}.matches('^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$'))")
}

/// The fix as CEL: the labels [`derived`] gives (a map, as the variable
/// `standard_labels_derived`), each added where the object's, then the pod
/// template's, labels lack it; a missing labels map is added whole.
fn fix_cel(p: &PatchCtx<'_>) -> cel::CelPatch {
    let name = "object.metadata.?name.orValue('')";
    // The tag of the first regular container's image (as ImageRef::parse),
    // '' when it has none; each step computed once (a one-element list's
    // `map` binds it: admission policies have no `cel.bind`).
    let tag = format!(
        "[{}.?containers.orValue([])].map(cs, (size(cs) > 0 ? cs[0].?image.orValue('') : \
         '').trim().split('@')[0]).map(rest, rest.matches('{}') ? rest.substring(rest.indexOf('/') \
         + 1) : rest).map(path, path.lastIndexOf(':') >= 0 ? path.substring(path.lastIndexOf(':') \
         + 1) : '')",
        p.spec_value(),
        super::image_tag::REGISTRY_RE
    );
    // A version label can be derived: the tag is a valid label value.
    let has_tag = format!(
        "{tag}.exists(tag, tag != 'latest' && {})",
        valid_label_value_cel("tag")
    );
    let derived = format!(
        "{tag}.map(tag, {{?{}: {} ? optional.of(string({name})) : optional.none(), ?{}: \
         tag != 'latest' && {} ? optional.of(string(tag)) : optional.none()}})[0]",
        lit(NAME),
        valid_label_value_cel(name),
        lit(VERSION),
        valid_label_value_cel("tag")
    );
    let d = "variables.standard_labels_derived";
    let mut places = vec![(
        "/metadata",
        "object.metadata".to_string(),
        cel::Field::Labels,
    )];
    if !p.is_pod() {
        places.push((p.meta, p.meta_value(), cel::Field::TemplateLabels));
    }
    let mut when = Vec::new();
    let mut patch = Vec::new();
    let name_ok = valid_label_value_cel(name);
    for (pointer, meta, field) in &places {
        // A matchCondition, which reads no variable: each label missing and
        // derivable, the cheap test first.
        let labels = format!("{meta}.?labels.orValue({{}})");
        when.push(format!(
            "(!({} in {labels}) && {name_ok}) || (!({} in {labels}) && {has_tag})",
            lit(NAME),
            lit(VERSION)
        ));
        let each = cel::patch_add(
            &format!("'{pointer}/labels/' + k.replace('~', '~0').replace('/', '~1')"),
            &format!("{d}[k]"),
        );
        patch.push(if p.is_ensured(*field) {
            // An earlier part of the patch has added the map if missing.
            format!("{d}.filter(k, !(k in {labels})).map(k, {each})")
        } else {
            format!(
                "({meta}.?labels.hasValue() ? {d}.filter(k, !(k in {meta}.labels)).map(k, {each}) \
                 : size({d}) > 0 ? [{}] : [])",
                cel::patch_add(&format!("'{pointer}/labels'"), d)
            )
        });
    }
    cel::CelPatch {
        when: when.join(" || "),
        patch: patch.join(" + "),
        variables: vec![("standard_labels_derived".to_string(), derived)],
        writes: places.iter().map(|(_, _, f)| *f).collect(),
        // Where a labels map is missing, every derived label is added.
        writes_where: places
            .iter()
            .map(|(_, _, f)| (*f, format!("size({d}) > 0")))
            .collect(),
        ..Default::default()
    }
}

/// Whether `v` is a valid label value.
pub fn valid_label_value(v: &str) -> bool {
    v.len() <= 63
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && v.bytes().next().is_none_or(|b| b.is_ascii_alphanumeric())
        && v.bytes().last().is_none_or(|b| b.is_ascii_alphanumeric())
}

fn check(t: &Target<'_>, _r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    let mut derivable: Option<Vec<(&'static str, String)>> = None;
    for (meta_path, labels) in locations(t) {
        let dotted = meta_path.trim_start_matches('/').replace('/', ".");
        for key in LABELS {
            if labels.is_some_and(|l| l.contains_key(key)) {
                continue;
            }
            let v = Violation::new(
                format!("{meta_path}/labels/{}", fixutil::escape(key)),
                format!("standard labels ({dotted}.labels must set {key})"),
            );
            // What the fix cannot derive, it says (and does not try again).
            let derived = derivable.get_or_insert_with(|| derived(t));
            out.push(if derived.iter().any(|(k, _)| *k == key) {
                v
            } else {
                v.declined(match key {
                    COMPONENT => "only a person knows the component",
                    NAME => "the object has no name to copy",
                    _ => "the first container's image has no pinned tag to copy",
                })
            });
        }
    }
    Ok(())
}

/// The values the fix can derive: name and version.
fn derived(t: &Target<'_>) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(name) = t.meta.name.as_deref() {
        if !name.is_empty() && valid_label_value(name) {
            out.push((NAME, name.to_string()));
        }
    }
    let first_image = t.pod.as_ref().and_then(|p| {
        p.containers()
            .into_iter()
            .find(|c| c.kind == ContainerKind::Regular)
            .and_then(|c| c.image)
    });
    if let Some(tag) = first_image.and_then(|i| ImageRef::parse(i).tag) {
        if tag != "latest" && valid_label_value(tag) {
            out.push((VERSION, tag.to_string()));
        }
    }
    out
}

fn fix(t: &Target<'_>, _r: &RuleCtx<'_>, obj: &mut Value) -> bool {
    let values = derived(t);
    let mut changed = false;
    for (meta_path, labels) in locations(t) {
        for (key, value) in &values {
            if labels.is_some_and(|l| l.contains_key(*key)) {
                continue;
            }
            changed |= fixutil::set_default(obj, &format!("{meta_path}/labels"), key, json!(value));
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::valid_label_value;
    use crate::policy::rules::testutil::{self, assert_fix_sound, run_rule};
    use crate::policy::Tier;
    use serde_json::{json, Value};

    /// Give every metadata of `obj` the labels a person must choose.
    fn with_component(mut obj: Value, component: &str) -> Value {
        for p in [
            "/metadata",
            "/spec/template/metadata",
            "/spec/jobTemplate/spec/template/metadata",
        ] {
            if let Some(m) = obj.pointer_mut(p) {
                m["labels"]["app.kubernetes.io/component"] = json!(component);
            }
        }
        obj
    }

    #[test]
    fn labelled_objects_pass() {
        let mut d = with_component(testutil::web_deployment(), "frontend");
        for p in ["/metadata/labels", "/spec/template/metadata/labels"] {
            let l = d.pointer_mut(p).unwrap();
            l["app.kubernetes.io/name"] = json!("web");
            l["app.kubernetes.io/version"] = json!("1.4.2");
        }
        assert!(run_rule("standard-labels", &d, Tier::Production)
            .findings
            .is_empty());
    }

    #[test]
    fn missing_labels_point_at_escaped_keys() {
        let e = run_rule(
            "standard-labels",
            &testutil::web_deployment(),
            Tier::Production,
        );
        let got: Vec<_> = e
            .findings
            .iter()
            .map(|f| (f.path.as_str(), f.message.as_str()))
            .collect();
        assert_eq!(got.len(), 6);
        assert_eq!(
            got[0],
            (
                "/metadata/labels/app.kubernetes.io~1name",
                "standard labels (metadata.labels must set app.kubernetes.io/name)"
            )
        );
        assert_eq!(
            got[5],
            (
                "/spec/template/metadata/labels/app.kubernetes.io~1component",
                "standard labels (spec.template.metadata.labels must set app.kubernetes.io/component); \
                 not fixed: only a person knows the component"
            )
        );
        assert!(e.findings.iter().all(|f| f.container.is_none()));
    }

    #[test]
    fn fix_sets_name_and_version_but_never_selectors_or_existing_values() {
        let mut d = with_component(testutil::web_deployment(), "frontend");
        d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] = json!("shop-web");
        let fixed = assert_fix_sound("standard-labels", &d, Tier::Production);
        assert_eq!(
            fixed["metadata"]["labels"],
            json!({"app": "web", "app.kubernetes.io/component": "frontend",
                   "app.kubernetes.io/name": "web", "app.kubernetes.io/version": "1.4.2"})
        );
        assert_eq!(
            fixed["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"],
            json!("shop-web")
        );
        assert_eq!(fixed["spec"]["selector"], d["spec"]["selector"]);
        for obj in [
            testutil::statefulset_db(),
            testutil::cronjob(),
            testutil::daemonset_agent(),
            testutil::bare_pod(),
        ] {
            let fixed = assert_fix_sound(
                "standard-labels",
                &with_component(obj, "x"),
                Tier::Production,
            );
            assert!(fixed["metadata"]["labels"]["app.kubernetes.io/version"].is_string());
        }
    }

    #[test]
    fn component_latest_and_generate_name_stay_findings() {
        let mut pod = testutil::bare_pod();
        pod["metadata"] = json!({"generateName": "redis-"});
        pod["spec"]["containers"][0]["image"] = json!("redis:latest");
        let e = run_rule("standard-labels", &pod, Tier::Production);
        assert_eq!(e.findings.len(), 3);
        assert!(e.patch.0.is_empty());
        // A digest-only image has no version to copy.
        let mut pod = testutil::bare_pod();
        pod["spec"]["containers"][0]["image"] =
            json!("redis@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
        let fixed = run_rule("standard-labels", &pod, Tier::Production)
            .fixed
            .unwrap();
        assert_eq!(
            fixed["metadata"]["labels"]["app.kubernetes.io/name"],
            "redis"
        );
        assert!(fixed["metadata"]["labels"]
            .get("app.kubernetes.io/version")
            .is_none());
    }

    #[test]
    fn label_values_validate() {
        assert!(valid_label_value("1.4.2"));
        assert!(valid_label_value("v1.2.3-rc.1_build"));
        assert!(!valid_label_value("-x"));
        assert!(!valid_label_value("x."));
        assert!(!valid_label_value(&"a".repeat(64)));
    }
}
