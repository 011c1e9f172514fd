//! A rule as CEL, for the policies the apiserver runs itself
//! (ValidatingAdmissionPolicy; `tiergate export admission-policies`, see
//! [`crate::export`]). Every rule says, in its own file, either how CEL
//! judges it from the object alone ([`Cel::Findings`]), from the object and
//! the namespace's facts ([`Cel::Facts`]), or why it stays in the webhook
//! ([`Cel::Webhook`]).
//!
//! A rule's expression has type `list(string)`: one message per finding, in
//! the words of its Rust check; empty when the object passes. It is only
//! evaluated on the kinds the rule judges (the generator adds the guard),
//! and may use:
//! - `variables.pod`: the pod spec (`spec`, `spec.template.spec`, ...) of
//!   any kind that carries one, as `dyn`;
//! - `variables.podMeta`: that pod template's metadata (as `dyn`, with
//!   `labels` and `annotations` possibly absent);
//! - `variables.containers`: every container of the pod (init, regular and
//!   ephemeral, in that order);
//! - `variables.obj`: the whole object, as `dyn`; `request`, as the
//!   apiserver gives it.
//!
//! Optional field selection (`c.?securityContext.?privileged.orValue(false)`)
//! keeps expressions short and cannot fail on an absent field.
use super::config::{NameGlob, PolicyConfig};
use super::pss::PssChange;
use super::Rule;

/// What a rule's CEL may depend on: the config and the PSS version.
pub struct CelCtx<'a> {
    pub config: &'a PolicyConfig,
    /// The Pod Security Standards minor version the checks follow.
    pub pss_minor: u32,
}

impl CelCtx<'_> {
    /// Whether the PSS version being followed includes an upstream change.
    pub fn pss_has(&self, change: PssChange) -> bool {
        change.in_effect_at(self.pss_minor)
    }
}

/// How the apiserver can run a rule, or why it cannot.
#[derive(Clone, Copy)]
pub enum Cel {
    /// A CEL expression of type `list(string)` that judges the rule from
    /// the object alone.
    Findings(fn(&CelCtx<'_>) -> String),
    /// Like [`Cel::Findings`], from the object and the namespace's facts:
    /// the expression may also read `params.spec`, the namespace's
    /// `NamespaceFacts` object that `tiergate serve` keeps in step with its
    /// watch caches (see [`crate::export::facts`] for its fields; every one
    /// is present). The policy is bound with that object as its params.
    Facts(fn(&CelCtx<'_>) -> String),
    /// The apiserver itself already refuses what the rule finds (on every
    /// version the export targets), for this reason: no policy is needed.
    Apiserver(&'static str),
    /// The rule stays in the webhook, for this reason.
    Webhook(&'static str),
    /// The rule stays in the webhook, for this reason, but can only find
    /// something when `when` holds: a CEL condition over `object` (as a
    /// webhook's `matchConditions` sees it), given the CEL list of the
    /// object's containers. In hybrid mode the apiserver calls the webhook
    /// for it only then. It must hold whenever the rule could find
    /// something (a test in the rule's file checks it). `false`: the rule
    /// can find nothing under this config.
    WebhookWhen {
        why: &'static str,
        when: fn(containers: &str, config: &super::PolicyConfig) -> String,
    },
}

/// A rule's safe fix as CEL, for a MutatingAdmissionPolicy: given where the
/// pod spec is in the object, an expression of type `list(JSONPatch)` over
/// `object` that makes exactly the change the rule's Rust fix makes (the
/// same fields, the same values, only where it would), and nothing once
/// that change is made. The generator adds the guards the engine applies
/// around a fix (tier, mode, kind, exemptions, what may be patched); a test
/// in `tests/e2e/policies.rs` applies it through the apiserver and compares
/// the result with `tiergate fix`.
pub type CelFix = fn(&PatchCtx<'_>) -> CelPatch;

/// A fix as CEL for one place of the pod spec.
#[derive(Default)]
pub struct CelPatch {
    /// `bool` over `object`: the fix would change something (a policy's
    /// `matchConditions`: the apiserver runs the mutation only then, which
    /// is most of its cost).
    pub when: String,
    /// `list(JSONPatch)`: the change, empty where the fix would change
    /// nothing (so the policy need not evaluate `when` again before it:
    /// every CEL node costs the apiserver on every write).
    pub patch: String,
    /// `(name, CEL)`: variables the patch reads (`variables.<name>`), for
    /// what it would otherwise spell out again at every use (CEL has no
    /// local bindings); named after the rule, evaluated only when read.
    pub variables: Vec<(String, String)>,
    /// The fields ([`Field`]) the patch may add whole where they are
    /// missing. Two fixes that may add the same field are never in one
    /// JSONPatch (both would add it, and the second add would replace the
    /// first: the engine's fixes merge into what an earlier fix added),
    /// unless both say where they write it ([`CelPatch::writes_where`]).
    pub writes: Vec<Field>,
    /// For fields of `writes` the patch can write below rather than add
    /// whole: `(field, CEL bool)`, true where the patch, applied to an
    /// object without the field, writes something in it (for a container
    /// field, over the container `c`). Where two fixes of one mutation
    /// write such a field, the mutation first adds it empty where it is
    /// missing and one of them writes it ([`PatchCtx::ensure`]), and the
    /// fixes are made with it in [`PatchCtx::ensured`]: they add only
    /// below it.
    pub writes_where: Vec<(Field, String)>,
    /// Fields whose value as an earlier fix of the same pass left it the
    /// fix reads (the Rust fix reads the working copy): its patch comes
    /// after theirs.
    pub after: Vec<Field>,
    /// Fields the fix reads as the object had them before any fix (the
    /// Rust fix reads the original): its patch never comes after a later
    /// fix's that writes them.
    pub before: Vec<Field>,
}

/// A field several fixes may write or read, for ordering their patches
/// ([`CelPatch::writes`]): in every container, in the pod spec, or in the
/// metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    ContainerSecurityContext,
    ContainerResources,
    ContainerLifecycle,
    ContainerLivenessProbe,
    PodSecurityContext,
    PodTopologySpread,
    /// The object's `metadata.labels`.
    Labels,
    /// The pod template's `metadata.labels` (a Pod's own: [`Field::Labels`]).
    TemplateLabels,
}

impl Field {
    /// The field's name in a container, for a container field.
    pub fn container_key(self) -> Option<&'static str> {
        match self {
            Field::ContainerSecurityContext => Some("securityContext"),
            Field::ContainerResources => Some("resources"),
            Field::ContainerLifecycle => Some("lifecycle"),
            Field::ContainerLivenessProbe => Some("livenessProbe"),
            _ => None,
        }
    }

    /// Whether the field may be added empty for fixes to write below
    /// ([`PatchCtx::ensure`]): an object or a map (not a list, not a probe,
    /// which is invalid without a handler).
    pub fn ensurable(self) -> bool {
        !matches!(
            self,
            Field::PodTopologySpread | Field::ContainerLivenessProbe
        )
    }
}

/// Where a fix's CEL finds the pod spec: the JSON pointer of the pod spec
/// in one kind of object (`/spec/template/spec` in a Deployment).
pub struct PatchCtx<'a> {
    pub spec: &'a str,
    /// The JSON pointer of the pod template's metadata (`/metadata` for a
    /// Pod, whose own it is).
    pub meta: &'a str,
    /// The config the policies are made from (a fix whose values it
    /// gives, per tier, reads them here; `variables.tier` is the tier).
    pub config: &'a super::PolicyConfig,
    /// Fields an earlier part of the same JSONPatch has made sure exist
    /// wherever this fix writes them ([`CelPatch::writes_where`]): the fix
    /// adds only below them, never them whole.
    pub ensured: &'a [Field],
}

impl PatchCtx<'_> {
    /// Whether `field` is made sure to exist where this fix writes it.
    pub fn is_ensured(&self, field: Field) -> bool {
        self.ensured.contains(&field)
    }

    /// The JSONPatch that adds a value at `path` under `root`: `root` is a CEL
    /// value (`c`, a container) at the JSON pointer the CEL string expression
    /// `pointer` gives, of CEL type `ty` (`Object.spec.containers`); `path` is
    /// field names down from it. The first field missing on the way gets the
    /// rest of the path as a nested object. `value(t)` is the CEL value, given
    /// its CEL type `t` (for an object value: `t{field: ...}`).
    /// Under a container (`root` the container `c` of
    /// [`PatchCtx::per_container`]), the first field of `path` is taken to
    /// exist when it is a container field this mutation makes sure of
    /// ([`PatchCtx::ensured`]).
    pub fn add_under(
        &self,
        root: &str,
        pointer: &str,
        ty: &str,
        path: &[&str],
        value: impl Fn(&str) -> String,
    ) -> String {
        let present = root == "c"
            && path.first().is_some_and(|first| {
                self.ensured
                    .iter()
                    .any(|f| f.container_key() == Some(*first))
            });
        add_under_from(root, pointer, ty, path, usize::from(present), value)
    }

    /// `list(JSONPatch)` that adds `field` empty where it is missing and
    /// `cond` holds (for a container field, in every container `c` where
    /// it does), so that fixes after it in the same JSONPatch write below
    /// it. `None` for a field that cannot be added empty.
    pub fn ensure(&self, field: Field, cond: &str) -> Option<String> {
        if !field.ensurable() {
            return None;
        }
        if let Some(key) = field.container_key() {
            let each = self
                .per_container(&format!("!c.?{key}.hasValue() && ({cond})"), |at, ty| {
                    patch_add(&format!("{at} + '/{key}'"), &format!("{ty}.{key}{{}}"))
                });
            return Some(format!("({each})"));
        }
        // (the parent as a CEL value, its JSON pointer, the field, its
        // empty value)
        let (parent, pointer, name, empty) = match field {
            Field::Labels => (
                "object.metadata".to_string(),
                "/metadata",
                "labels",
                "{}".to_string(),
            ),
            Field::TemplateLabels => (self.meta_value(), self.meta, "labels", "{}".to_string()),
            Field::PodSecurityContext => (
                self.spec_value(),
                self.spec,
                "securityContext",
                format!("{}{{}}", self.type_of("securityContext")),
            ),
            _ => return None,
        };
        Some(format!(
            "((!{parent}.?{name}.hasValue() && ({cond})) ? [{}] : [])",
            patch_add(&format!("'{pointer}/{name}'"), &empty)
        ))
    }

    /// The pod spec as a CEL value (`object.spec.template.spec`).
    pub fn spec_value(&self) -> String {
        format!("object{}", self.spec.replace('/', "."))
    }

    /// The CEL type of a field under the pod spec, for JSONPatch values
    /// (`Object.spec.template.spec.securityContext` for `securityContext`).
    pub fn type_of(&self, field: &str) -> String {
        let mut t = format!("Object{}", self.spec.replace('/', "."));
        if !field.is_empty() {
            t.push('.');
            t.push_str(field);
        }
        t
    }

    /// The spec is a Windows pod's (where Linux-only fixes decline).
    pub fn windows(&self) -> String {
        format!("{}.?os.?name.orValue('') == 'windows'", self.spec_value())
    }

    /// `op(pointer, type)` for every container `c` (index `i`) of every
    /// container list that satisfies `cond`: `pointer` is the container's
    /// JSON pointer as a CEL string expression, `type` the CEL type of a
    /// container of that list.
    pub fn per_container(&self, cond: &str, op: impl Fn(&str, &str) -> String) -> String {
        let spec = self.spec_value();
        let parts: Vec<String> = ["initContainers", "containers", "ephemeralContainers"]
            .iter()
            .map(|list| {
                let pointer = format!("'{}/{list}/' + string(i)", self.spec);
                format!(
                    "{spec}.?{list}.orValue([]).transformList(i, c, {cond}, {})",
                    op(&pointer, &self.type_of(list))
                )
            })
            .collect();
        parts.join(" + ")
    }

    /// The pod template's metadata as a CEL value.
    pub fn meta_value(&self) -> String {
        format!("object{}", self.meta.replace('/', "."))
    }

    /// Whether the pod template is the object itself (a Pod).
    pub fn is_pod(&self) -> bool {
        self.meta == "/metadata"
    }

    /// CEL: the pod's containers are long-running (as [`probes`]'s
    /// `is_long_running`: not a Job's or CronJob's, not a pod that does not
    /// restart).
    ///
    /// [`probes`]: super::rules::probes
    pub fn long_running(&self) -> String {
        super::rules::probes::is_long_running_cel(&self.spec_value())
    }

    /// `op(pointer, type)` (a JSONPatch, or with `flat` a list of them) for
    /// every long-running container `c` (index `i`: regular containers and
    /// sidecars, as [`probes`]'s `long_running`) that satisfies `cond`.
    ///
    /// [`probes`]: super::rules::probes
    pub fn per_long_running(
        &self,
        cond: &str,
        flat: bool,
        op: impl Fn(&str, &str) -> String,
    ) -> String {
        let spec = self.spec_value();
        let parts: Vec<String> = [
            (
                "initContainers",
                "c.?restartPolicy.orValue('') == 'Always' && ",
            ),
            ("containers", ""),
        ]
        .iter()
        .map(|(list, sidecar)| {
            let pointer = format!("'{}/{list}/' + string(i)", self.spec);
            let each = format!(
                "{spec}.?{list}.orValue([]).transformList(i, c, {sidecar}({cond}), {})",
                op(&pointer, &self.type_of(list))
            );
            if flat {
                format!("{each}.flatten()")
            } else {
                each
            }
        })
        .collect();
        format!("({} ? {} : [])", self.long_running(), parts.join(" + "))
    }

    /// CEL: some long-running container satisfies `cond`.
    pub fn some_long_running(&self, cond: &str) -> String {
        let spec = self.spec_value();
        format!(
            "({} && ({spec}.?initContainers.orValue([]).exists(c, c.?restartPolicy.orValue('') == \
             'Always' && ({cond})) || {spec}.?containers.orValue([]).exists(c, {cond})))",
            self.long_running()
        )
    }

    /// Every container of the pod spec (init, regular, ephemeral).
    pub fn containers(&self) -> String {
        let spec = self.spec_value();
        format!(
            "({spec}.?initContainers.orValue([]) + {spec}.?containers.orValue([]) + \
             {spec}.?ephemeralContainers.orValue([]))"
        )
    }
}

/// [`PatchCtx::add_under`], with the first `present` fields of `path` taken
/// to exist (an earlier patch has added them).
fn add_under_from(
    root: &str,
    pointer: &str,
    ty: &str,
    path: &[&str],
    present: usize,
    value: impl Fn(&str) -> String,
) -> String {
    // The CEL type of path[k].
    let types: Vec<String> = (0..path.len())
        .map(|k| format!("{ty}.{}", path[..=k].join(".")))
        .collect();
    // What to add at path[k] when path[k] is the first field missing.
    let value_at = |k: usize| {
        let mut v = value(&types[path.len() - 1]);
        for j in (k + 1..path.len()).rev() {
            v = format!("{}{{{}: {v}}}", types[j - 1], path[j]);
        }
        v
    };
    let at = |k: usize| format!("{pointer} + '/{}'", path[..=k].join("/"));
    let last = path.len() - 1;
    let mut expr = patch_add(&at(last), &value_at(last));
    for k in (present.min(last)..last).rev() {
        let has = format!("{root}.?{}.hasValue()", path[..=k].join(".?"));
        expr = format!("({has} ? {expr} : {})", patch_add(&at(k), &value_at(k)));
    }
    expr
}

/// A JSONPatch `add` of `value` at the pointer the CEL string expression
/// `pointer` gives.
pub fn patch_add(pointer: &str, value: &str) -> String {
    format!("JSONPatch{{op: 'add', path: {pointer}, value: {value}}}")
}

/// A CEL string literal (double-quoted, escaped).
pub fn lit(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A CEL list of string literals.
pub fn list<S: AsRef<str>>(items: &[S]) -> String {
    let parts: Vec<String> = items.iter().map(|s| lit(s.as_ref())).collect();
    format!("[{}]", parts.join(", "))
}

/// `'"' + x + '"'`: a CEL string expression quoted as the messages quote
/// names.
pub fn quoted(expr: &str) -> String {
    format!("'\"' + {expr} + '\"'")
}

/// The namespace's label `key` (a CEL string), `default` when it has
/// none (or the object has no namespace).
pub fn ns_label_or(key: &str, default: &str) -> String {
    let (k, d) = (lit(key), lit(default));
    format!("(namespaceObject != null ? namespaceObject.metadata.?labels[?{k}].orValue({d}) : {d})")
}

/// Whether the namespace has the label `key`.
pub fn ns_has_label(key: &str) -> String {
    format!(
        "(namespaceObject != null && {} in namespaceObject.metadata.?labels.orValue({{}}))",
        lit(key)
    )
}

/// Whether the pod template's label `key`, or when it has no such label
/// its annotation `key`, is `value` (the label wins, as in the rules).
pub fn pod_tag_is(key: &str, value: &str) -> String {
    let (k, v) = (lit(key), lit(value));
    format!(
        "({k} in variables.podMeta.?labels.orValue({{}}) ? variables.podMeta.labels[{k}] == {v} \
         : variables.podMeta.?annotations[?{k}].orValue('') == {v})"
    )
}

/// Whether the pod template has `key` as a label or an annotation.
pub fn pod_has_tag(key: &str) -> String {
    let k = lit(key);
    format!(
        "({k} in variables.podMeta.?labels.orValue({{}}) || \
         {k} in variables.podMeta.?annotations.orValue({{}}))"
    )
}

/// Messages for the containers a condition picks: `cond` and `message`
/// are CEL over the container `c`.
pub fn containers_where(cond: &str, message: &str) -> String {
    format!("variables.containers.filter(c, {cond}).map(c, {message})")
}

/// `'container "NAME"'` for the container `c`.
pub const WHO: &str = "'container \"' + c.name + '\"'";

/// The namespace label that keeps a namespace wholly in the webhook: the
/// policies skip it and the webhook judges every rule there (for
/// TierExceptions, which the policies cannot honour).
pub const ADMISSION_LABEL: &str = "tiergate.io/admission";
/// Its value.
pub const WEBHOOK_VALUE: &str = "webhook";

/// Whether a namespace's labels keep it wholly in the webhook.
pub fn webhook_only(labels: &std::collections::BTreeMap<String, String>) -> bool {
    labels.get(ADMISSION_LABEL).map(String::as_str) == Some(WEBHOOK_VALUE)
}

/// Why a rule cannot run in the apiserver under this config, or `None`
/// when it can. The one place the webhook (in hybrid mode) and the export
/// agree on which rules the policies judge.
pub fn webhook_reason(rule: &Rule, cfg: &PolicyConfig) -> Option<String> {
    if let Cel::Webhook(why) | Cel::WebhookWhen { why, .. } = rule.cel {
        return Some(why.to_string());
    }
    if matches!(rule.cel, Cel::Apiserver(_)) {
        return None;
    }
    for e in &cfg.exemptions {
        if !e.covers_rule(rule.id) {
            continue;
        }
        if !e.scope().whole_object() {
            return Some(format!(
                "the exemption {:?} is scoped to containers or images, which a policy cannot \
                 leave out of a finding",
                e.reason
            ));
        }
        if let Some(g) = e.names.iter().find(|g| glob_regex(g).is_none()) {
            return Some(format!(
                "the exemption {:?} names {:?}, a glob CEL cannot match",
                e.reason, g.pattern
            ));
        }
    }
    None
}

/// CEL: the namespace's facts ([`Cel::Facts`]), e.g. `{FACTS}.resourceQuotas`.
pub const FACTS: &str = "params.spec";

/// CEL (a string): `namespace "<name>"`, as the rules' messages name it.
pub const IN_NAMESPACE: &str = "'namespace \"' + request.namespace + '\"'";

/// CEL (a string): `<Kind> "<name>"`, as the rules' messages name the object.
pub const KIND_AND_NAME: &str =
    "request.kind.kind + ' \"' + variables.obj.metadata.?name.orValue(request.name) + '\"'";

/// CEL: the pod template's labels (`{}` when it has none).
pub const TEMPLATE_LABELS: &str =
    "(variables.podMeta == null ? {} : variables.podMeta.?labels.orValue({}))";

/// CEL: whether a label selector, as the namespace's facts hold it (a list
/// of `{key, operator, values}` requirements, `matchLabels` among them as
/// `In`; see [`crate::export::facts`]), selects these labels (a CEL map),
/// as the apiserver evaluates it: every requirement holds, `NotIn` holds
/// where the key is absent, an empty selector selects everything.
pub fn selector_selects(requirements: &str, labels: &str) -> String {
    format!(
        "{requirements}.all(r, r.operator == 'In' ? (r.key in {labels} && {labels}[r.key] in \
         r.values) : r.operator == 'NotIn' ? !(r.key in {labels} && {labels}[r.key] in \
         r.values) : r.operator == 'Exists' ? r.key in {labels} : !(r.key in {labels}))"
    )
}

/// Whether the policies judge this rule under this config.
pub fn covered(rule: &Rule, cfg: &PolicyConfig) -> bool {
    webhook_reason(rule, cfg).is_none()
}

/// A name glob as an anchored RE2 regex (`*`, `?`, `[...]`), or `None` for
/// what it does not translate (braces, escapes).
pub fn glob_regex(g: &NameGlob) -> Option<String> {
    let mut out = String::from("^");
    let mut in_class = false;
    for ch in g.pattern.chars() {
        match ch {
            '{' | '}' | '\\' => return None,
            '[' if !in_class => {
                in_class = true;
                out.push('[');
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            '!' if in_class && out.ends_with('[') => out.push('^'),
            c if in_class => out.push(c),
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            c if c.is_ascii_alphanumeric() || c == '-' || c == '_' => out.push(c),
            c => {
                out.push('\\');
                out.push(c);
            }
        }
    }
    if in_class {
        return None;
    }
    out.push('$');
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_escape_quotes_and_backslashes() {
        assert_eq!(lit(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(list(&["x", "y"]), r#"["x", "y"]"#);
    }

    #[test]
    fn an_ensured_field_is_added_empty_first_and_then_written_below() {
        let cfg = super::super::config::from_test_yaml("");
        let plain = PatchCtx {
            spec: "/spec",
            meta: "/metadata",
            config: &cfg,
            ensured: &[],
        };
        let ensured = PatchCtx {
            ensured: &[Field::ContainerSecurityContext, Field::Labels],
            ..plain
        };
        let path = ["securityContext", "allowPrivilegeEscalation"];
        let add = |p: &PatchCtx<'_>| {
            p.add_under("c", "'/spec/containers/0'", "T", &path, |_| "false".into())
        };
        // Not ensured: the whole securityContext where it is missing.
        assert_eq!(
            add(&plain),
            "(c.?securityContext.hasValue() ? JSONPatch{op: 'add', path: '/spec/containers/0' + \
             '/securityContext/allowPrivilegeEscalation', value: false} : JSONPatch{op: 'add', \
             path: '/spec/containers/0' + '/securityContext', value: \
             T.securityContext{allowPrivilegeEscalation: false}})"
        );
        // Ensured: only the leaf.
        assert_eq!(
            add(&ensured),
            "JSONPatch{op: 'add', path: '/spec/containers/0' + \
             '/securityContext/allowPrivilegeEscalation', value: false}"
        );
        assert!(!plain.is_ensured(Field::Labels) && ensured.is_ensured(Field::Labels));
        // The empty field, where missing and a writer's condition holds.
        let sc = ensured
            .ensure(Field::ContainerSecurityContext, "X")
            .expect("ensurable");
        assert!(sc.starts_with('(') && sc.ends_with(')'), "{sc}");
        assert!(sc.contains("transformList(i, c, !c.?securityContext.hasValue() && (X), JSONPatch{op: 'add', path: '/spec/containers/' + string(i) + '/securityContext', value: Object.spec.containers.securityContext{}})"), "{sc}");
        assert_eq!(
            ensured.ensure(Field::Labels, "Y").as_deref(),
            Some("((!object.metadata.?labels.hasValue() && (Y)) ? [JSONPatch{op: 'add', path: '/metadata/labels', value: {}}] : [])")
        );
        assert_eq!(
            ensured.ensure(Field::PodSecurityContext, "W").as_deref(),
            Some("((!object.spec.?securityContext.hasValue() && (W)) ? [JSONPatch{op: 'add', path: '/spec/securityContext', value: Object.spec.securityContext{}}] : [])")
        );
        // Not below a root other than a container.
        assert!(ensured
            .add_under("object.spec", "'/spec'", "T", &path, |_| "false".into())
            .starts_with("(object.spec.?securityContext.hasValue() ? "));
        assert!(ensured.ensure(Field::PodTopologySpread, "Z").is_none());
    }
}
