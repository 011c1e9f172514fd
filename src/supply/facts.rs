//! From an object to the engine's [`ImageFacts`]: which of its images the
//! config names at the namespace's tier, verified concurrently (each within
//! the budget, so all of them within about one budget). The webhook, the
//! background audit and `tiergate check --verify-images` all call this.
use std::collections::BTreeSet;

use serde_json::Value;

use super::{Outcome, Verifier, VerifyError};
use crate::policy::rules::image_tag::is_build_reference;
use crate::policy::{kinds, ImageFacts, ImageVerdict};

/// The images of an object's pod template (every container list), each
/// once, in order; none for an object without one. Read from the JSON as it
/// is (no typed parse: the engine parses the object once, after this).
pub fn images_of(obj: &Value) -> Vec<String> {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    let group = kinds::group_of(
        obj.get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default(),
    );
    let Some(spec) = kinds::workload_of(group, kind).and_then(|w| obj.pointer(w.spec)) else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        let containers = spec.get(list).and_then(Value::as_array);
        for c in containers.into_iter().flatten() {
            if let Some(i) = c.get("image").and_then(Value::as_str) {
                if !is_build_reference(i) && !out.iter().any(|o| o == i) {
                    out.push(i.to_string());
                }
            }
        }
    }
    out
}

/// Verify the images some `images.verify` rule names at `tier`; the rest
/// are left out (nothing is required of them). `unchanged`: images the
/// object already ran (an UPDATE's old object), never pinned.
pub async fn image_facts(
    verifier: &Verifier,
    images: &[String],
    tier: u8,
    unchanged: BTreeSet<String>,
    deadline: std::time::Duration,
) -> ImageFacts {
    let wanted: Vec<(&String, usize)> = images
        .iter()
        .filter_map(|i| verifier.rule_for(i, tier).map(|r| (i, r)))
        .collect();
    let all = futures::future::join_all(wanted.iter().map(|(i, r)| verifier.verify(i, *r)));
    // Each verification stops at the config's budget; the whole at the
    // caller's deadline (less, when the request's own timeout is short).
    let answers = match tokio::time::timeout(deadline, all).await {
        Ok(a) => a,
        Err(_) => wanted
            .iter()
            .map(|(i, _)| Err(VerifyError::Timeout((*i).clone())))
            .collect(),
    };
    let budget = deadline.min(verifier.config().budget());
    let mut facts = ImageFacts {
        unchanged,
        ..ImageFacts::default()
    };
    for ((image, _), answer) in wanted.into_iter().zip(answers) {
        facts
            .verdicts
            .insert(image.clone(), verdict(answer, budget));
    }
    facts
}

/// Verdicts by image and `images.verify` rule, for callers that judge many
/// objects at once (`tiergate check --verify-images`).
pub type Verdicts = std::collections::BTreeMap<(String, usize), ImageVerdict>;

/// Verify, once each, `images` under every rule that names them at some
/// tier (an object's tier is known only when it is judged).
pub async fn verify_all(verifier: &Verifier, images: &[String]) -> Verdicts {
    let mut wanted: Vec<(String, usize)> = Vec::new();
    for i in images {
        for tier in 1..=5 {
            if let Some(r) = verifier.rule_for(i, tier) {
                if !wanted.iter().any(|(wi, wr)| wi == i && *wr == r) {
                    wanted.push((i.clone(), r));
                }
            }
        }
    }
    let budget = verifier.config().budget();
    let answers =
        futures::future::join_all(wanted.iter().map(|(i, r)| verifier.verify(i, *r))).await;
    wanted
        .into_iter()
        .zip(answers)
        .map(|(k, a)| (k, verdict(a, budget)))
        .collect()
}

/// The facts of one object, from [`verify_all`]'s verdicts, at its tier.
pub fn facts_from(
    verdicts: &Verdicts,
    cfg: &super::ImagesConfig,
    images: &[String],
    tier: u8,
) -> ImageFacts {
    let mut facts = ImageFacts::default();
    for i in images {
        if let Some(v) = cfg
            .rule_for(i, tier)
            .and_then(|r| verdicts.get(&(i.clone(), r)))
        {
            facts.verdicts.insert(i.clone(), v.clone());
        }
    }
    facts
}

fn verdict(answer: Result<Outcome, VerifyError>, budget: std::time::Duration) -> ImageVerdict {
    match answer {
        Ok(Outcome::Verified { digest }) => ImageVerdict::Verified { digest },
        Ok(Outcome::Refused { digest, reason }) => ImageVerdict::Refused { digest, reason },
        // An image reference that does not parse cannot be verified, and
        // is no registry's fault: refused, whatever onTimeout says.
        Err(VerifyError::Reference(_, why)) => ImageVerdict::Refused {
            digest: String::new(),
            reason: format!("not an image reference: {why}"),
        },
        Err(VerifyError::Timeout(_)) => ImageVerdict::Unavailable {
            reason: format!(
                "verification did not finish within images.budgetMs ({} ms)",
                budget.as_millis()
            ),
        },
        Err(e) => ImageVerdict::Unavailable {
            reason: e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_container_list_once_and_no_build_references() {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w"},
          "spec": {"selector": {}, "template": {"spec": {
            "initContainers": [{"name": "i", "image": "reg/a:1"}],
            "containers": [{"name": "c", "image": "reg/b:1"}, {"name": "d", "image": "reg/a:1"},
                           {"name": "k", "image": "ko://example.com/cmd"}]}}}});
        assert_eq!(images_of(&d), vec!["reg/a:1", "reg/b:1"]);
        assert!(images_of(&json!({"apiVersion": "v1", "kind": "Service"})).is_empty());
    }

    #[test]
    fn errors_become_verdicts_the_rule_reads() {
        let b = std::time::Duration::from_millis(1500);
        assert!(matches!(
            verdict(Err(VerifyError::Timeout("i".into())), b),
            ImageVerdict::Unavailable { reason } if reason.contains("1500 ms")
        ));
        assert!(matches!(
            verdict(Err(VerifyError::Reference("i".into(), "bad".into())), b),
            ImageVerdict::Refused { .. }
        ));
        assert!(matches!(
            verdict(
                Err(VerifyError::Registry {
                    image: "i".into(),
                    reason: "connection refused".into()
                }),
                b
            ),
            ImageVerdict::Unavailable { reason } if reason.contains("connection refused")
        ));
    }
}
