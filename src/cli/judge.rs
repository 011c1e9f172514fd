//! Judging the objects of the CLI's input: each object's namespace labels and
//! facts come from the input itself, and become its context through the same
//! resolver the webhook uses ([`namespace::resolve`]).
use std::collections::BTreeMap;

use serde_json::Value;

use rayon::prelude::*;

use crate::manifest::{objects_with_paths, Document, Format, SourceFile};
use crate::policy::namespace::{self, NamespaceInput};
use crate::policy::pss::{PssLevel, PssVersion};
use crate::policy::{exception, facts, Engine, Evaluation, Mode, NamespaceFacts, Options, Tier};

pub struct Settings {
    pub tier: Option<Tier>,
    pub mode: Mode,
    pub pss: Option<(PssLevel, PssVersion)>,
    pub only: Option<Vec<String>>,
    pub fix: bool,
    /// A document that is not a Kubernetes object is an error, not a skip.
    pub strict: bool,
    /// The input is the whole of each namespace it mentions (`--complete`).
    pub complete: bool,
    /// The time `TierException`s are judged at (`--now`, else the clock).
    pub now: Option<i64>,
    /// What `--verify-images` found (`None`: it did not run, and the
    /// `image-signature` rule says so).
    pub images: Option<std::sync::Arc<crate::supply::Verdicts>>,
}

impl Settings {
    /// What `check` does with no flags but `--tier`: every rule of the tier,
    /// as `enforce`, no fixes.
    pub fn check(tier: Option<Tier>) -> Settings {
        Settings {
            tier,
            mode: Mode::Enforce,
            pss: None,
            only: None,
            fix: false,
            strict: false,
            complete: false,
            now: crate::clock::now(),
            images: None,
        }
    }
}

/// A file or document that was not judged: it did not read or parse, the
/// engine could not judge it (errors), or it is not a Kubernetes object
/// (skipped, with a note).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub document: Option<usize>,
    pub line: Option<usize>,
    pub message: String,
    /// Skipped (not a Kubernetes object), not an error.
    pub skipped: bool,
}

impl Problem {
    /// An input file that could not be read or parsed.
    pub fn unreadable(file: String, message: String) -> Self {
        Problem {
            file,
            document: None,
            line: None,
            message,
            skipped: false,
        }
    }
}

/// What a run judged, and what it could not.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub judged: Vec<Judged>,
    /// In input order.
    pub problems: Vec<Problem>,
}

impl Report {
    /// Whether anything was an error (exit 2, after the results).
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(|p| !p.skipped)
    }
}

/// One judged object and where it came from.
#[derive(Debug, Clone)]
pub struct Judged {
    pub file: String,
    pub source: usize,
    pub document: usize,
    /// Index in a `kind: List`, if the object is an item of one.
    /// Where in a `kind: List` (nested Lists too) the object is: the item
    /// index at each level; empty for the document itself.
    pub item: Vec<usize>,
    pub line: usize,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub tier: Tier,
    /// What the context resolver had to say (an invalid tier label and the
    /// tier used instead), as the webhook warns.
    pub notes: Vec<String>,
    pub eval: Evaluation,
}

/// Judge every object of every source; the first problem that is an error
/// ends it (for callers that want all or nothing).
pub fn judge_sources(
    engine: &Engine,
    sources: &[SourceFile],
    settings: &Settings,
) -> anyhow::Result<Vec<Judged>> {
    let report = judge_all(engine, sources, settings);
    if let Some(p) = report.problems.iter().find(|p| !p.skipped) {
        anyhow::bail!("{}", p.message);
    }
    Ok(report.judged)
}

/// Judge every object of every source, and report every document that could
/// not be judged, in input order: one bad document never hides the others.
pub fn judge_all(engine: &Engine, sources: &[SourceFile], settings: &Settings) -> Report {
    let documents = || {
        sources
            .iter()
            .flat_map(|s| s.documents.iter())
            .filter_map(|d| d.value.as_ref())
    };
    let ns_facts: BTreeMap<String, std::sync::Arc<NamespaceFacts>> =
        facts::facts_of_input(documents(), settings.complete)
            .into_iter()
            .map(|(ns, f)| (ns, std::sync::Arc::new(f)))
            .collect();
    let ns_labels = facts::namespace_labels(documents());

    // Every object, in input order; judged in parallel (objects are
    // independent), then reported in input order, the first error first.
    let mut tasks = Vec::new();
    for (si, src) in sources.iter().enumerate() {
        for doc in &src.documents {
            let Some(value) = &doc.value else { continue };
            for (item, obj) in objects_with_paths(value) {
                tasks.push(Task {
                    si,
                    src,
                    doc,
                    item,
                    obj,
                });
            }
        }
    }
    let results: Vec<Result<Judged, Problem>> = tasks
        .par_iter()
        .map(|t| judge_one(engine, settings, &ns_facts, &ns_labels, t))
        .collect();
    let mut report = Report::default();
    for r in results {
        match r {
            Ok(j) => report.judged.push(j),
            Err(p) => report.problems.push(p),
        }
    }
    report
}

/// Why a document is not a Kubernetes object, if it is not one.
fn not_an_object(obj: &Value) -> Option<&'static str> {
    let Some(m) = obj.as_object() else {
        return Some("not a mapping");
    };
    let has = |k: &str| {
        m.get(k)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    };
    match (has("apiVersion"), has("kind")) {
        (true, true) => None,
        (false, false) => Some("no apiVersion and no kind"),
        (false, true) => Some("no apiVersion"),
        (true, false) => Some("no kind"),
    }
}

struct Task<'a> {
    si: usize,
    src: &'a SourceFile,
    doc: &'a Document,
    item: Vec<usize>,
    obj: &'a Value,
}

/// ` item 2` (or ` item 2.0` inside a nested List), empty for a document.
fn item_label(item: &[usize]) -> String {
    if item.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = item.iter().map(usize::to_string).collect();
    format!(" item {}", parts.join("."))
}

fn judge_one(
    engine: &Engine,
    settings: &Settings,
    ns_facts: &BTreeMap<String, std::sync::Arc<NamespaceFacts>>,
    ns_labels: &BTreeMap<String, BTreeMap<String, String>>,
    t: &Task<'_>,
) -> Result<Judged, Problem> {
    let (src, doc, obj) = (t.src, t.doc, t.obj);
    let problem = |message: String, skipped: bool| Problem {
        file: src.name.clone(),
        document: Some(doc.index),
        line: Some(doc.line),
        message,
        skipped,
    };
    if let Some(why) = not_an_object(obj) {
        let what = if settings.strict {
            "not a Kubernetes object (--strict)"
        } else {
            "not a Kubernetes object, skipped"
        };
        let item = item_label(&t.item);
        return Err(problem(
            format!(
                "{}:{}: document {}{item}: {what}: {why}",
                src.name, doc.line, doc.index
            ),
            !settings.strict,
        ));
    }
    let where_ = || {
        let item = item_label(&t.item);
        format!("{}:{}: document {}{item}", src.name, doc.line, doc.index)
    };
    let namespace = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .map(str::to_string);
    // A Namespace object is judged in itself, as admission judges it.
    let (judged_in, own_labels) = if is_namespace(obj) {
        let (name, labels) = namespace::subject_namespace(Some(obj), "");
        (name, Some(labels))
    } else {
        (namespace.clone(), None)
    };
    let labels = own_labels
        .as_ref()
        .or_else(|| judged_in.as_ref().and_then(|n| ns_labels.get(n)));
    let resolved = namespace::resolve(
        NamespaceInput {
            name: judged_in.as_deref(),
            labels,
            facts: judged_in
                .as_deref()
                .map_or(ns_facts.get(facts::NO_NAMESPACE), |n| ns_facts.get(n))
                .cloned()
                .unwrap_or_default(),
            requester: None,
            tier: settings.tier,
            mode: Some(settings.mode),
            now: settings.now,
        },
        engine.config(),
    );
    let mut ctx = resolved.ctx;
    if let Some(v) = &settings.images {
        let images = crate::supply::images_of(obj);
        ctx.images = crate::policy::Fact::Known(std::sync::Arc::new(crate::supply::facts_from(
            v,
            &engine.config().images,
            &images,
            ctx.tier.number(),
        )));
    }
    // A TierException that does not read, or breaks the config's limits,
    // excepts nothing, and says so (the webhook refuses it).
    if exception::is_exception(obj) {
        let problems = match settings.now {
            Some(now) => exception::validate(obj, now, engine.config()).err(),
            None => exception::parse(obj).err(),
        };
        if let Some(p) = problems {
            return Err(problem(
                format!(
                    "{}: TierException {:?} is invalid and excepts nothing: {}",
                    where_(),
                    obj.pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or(""),
                    p.join("; ")
                ),
                false,
            ));
        }
    }
    let opts = Options {
        pss: settings.pss,
        only: settings.only.clone(),
        fix: settings.fix,
        exact_fixable: true,
        // Every rule, also those the apiserver's policies judge.
        skip_covered: false,
    };
    let eval = engine
        .evaluate(obj, &ctx, &opts)
        .map_err(|e| problem(format!("{}: {e}", where_()), false))?;
    Ok(Judged {
        file: src.name.clone(),
        source: t.si,
        document: doc.index,
        item: t.item.clone(),
        line: doc.line,
        kind: obj
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        namespace,
        name: obj
            .pointer("/metadata/name")
            .or_else(|| obj.pointer("/metadata/generateName"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        tier: ctx.tier,
        notes: resolved.notes,
        eval,
    })
}

/// The object at `item` inside a document (nested `items` arrays).
fn item_slot<'a>(doc: &'a mut Value, item: &[usize]) -> Option<&'a mut Value> {
    let mut at = doc;
    for i in item {
        at = at.get_mut("items")?.as_array_mut()?.get_mut(*i)?;
    }
    Some(at)
}

/// Whether an object is a core Namespace.
fn is_namespace(obj: &Value) -> bool {
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    namespace::is_namespace_kind(crate::policy::kinds::group_of(api_version), kind)
}

/// The source's text with each fix written into its document's text (see
/// [`super::edit`]): every other byte is kept. A document whose fix cannot be
/// written that way is kept as it was, with a problem saying why.
pub fn render_fixed(src: &SourceFile, si: usize, judged: &[Judged]) -> (String, Vec<Problem>) {
    let mut fixed_items: BTreeMap<usize, Vec<(&[usize], &Value)>> = BTreeMap::new();
    for j in judged.iter().filter(|j| j.source == si) {
        if let Some(f) = &j.eval.fixed {
            fixed_items
                .entry(j.document)
                .or_default()
                .push((&j.item, f));
        }
    }
    let mut text = String::new();
    let mut problems = Vec::new();
    for doc in &src.documents {
        text.push_str(&doc.separator);
        let changed = fixed_items
            .get(&doc.index)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let Some(value) = doc.value.as_ref().filter(|_| !changed.is_empty()) else {
            text.push_str(&doc.text);
            continue;
        };
        let mut new_value = value.clone();
        for (item, fixed) in changed {
            if let Some(slot) = item_slot(&mut new_value, item) {
                *slot = (*fixed).clone();
            }
        }
        let reparse = |t: &str| match src.format {
            Format::Json => serde_json::from_str::<Value>(t).ok(),
            Format::Yaml => crate::manifest::parse_document(t).ok().flatten(),
        };
        match super::edit::write_fix(&doc.text, value, &new_value, reparse) {
            Ok(t) => text.push_str(&t),
            Err(why) => {
                text.push_str(&doc.text);
                problems.push(Problem {
                    file: src.name.clone(),
                    document: Some(doc.index),
                    line: Some(doc.line),
                    message: format!(
                        "{}:{}: document {}: fix not written, the document is left as it was: {}",
                        src.name, doc.line, doc.index, why.0
                    ),
                    skipped: false,
                });
            }
        }
    }
    (text, problems)
}
