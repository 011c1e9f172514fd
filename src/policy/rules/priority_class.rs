//! `priority-class`: workloads say how much they matter.
use super::prelude::*;

pub static RULE: Rule = Rule {
    id: "priority-class",
    tier: Tier::MultiCluster,
    pss: None,
    summary: "pods set a priorityClassName",
    doc: "Across clusters, failover and capacity decisions are priority decisions: when a \
cluster or zone is lost and the survivors fill up, the scheduler preempts the pods of the \
lowest priority first, and a pod with no `priorityClassName` gets the cluster's default \
(usually 0), the same as every batch job. Set `spec.priorityClassName` in the pod template \
to a PriorityClass your platform defines (for example `business-critical`, `standard`, \
`batch`). There is no automatic fix: which class a workload deserves is a decision, and \
a class that does not exist makes the apiserver reject the pod.",
    check: Check::Pod(check),
    fix: Fix::None,
    cel: Cel::Findings(cel),
};

fn check(pod: &PodTemplate, _r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    if pod
        .spec
        .priority_class_name
        .as_deref()
        .is_none_or(str::is_empty)
    {
        out.push(Violation::new(
            format!("{}/priorityClassName", pod.spec_path),
            "priority class (pod must set priorityClassName)".to_string(),
        ));
    }
    Ok(())
}

fn cel(_cx: &CelCtx<'_>) -> String {
    "variables.pod.?priorityClassName.orValue('') == '' ? ['priority class (pod must set \
     priorityClassName)'] : []"
        .to_string()
}

#[cfg(test)]
mod tests {
    use crate::policy::rules::testutil::{self, run_rule};
    use crate::policy::Tier;
    use serde_json::json;

    #[test]
    fn pods_without_a_priority_class_are_findings() {
        let mut d = testutil::web_deployment();
        let e = run_rule("priority-class", &d, Tier::MultiCluster);
        assert_eq!(e.findings.len(), 1);
        assert_eq!(e.findings[0].path, "/spec/template/spec/priorityClassName");
        assert_eq!(
            e.findings[0].message,
            "priority class (pod must set priorityClassName)"
        );
        d["spec"]["template"]["spec"]["priorityClassName"] = json!("business-critical");
        assert!(run_rule("priority-class", &d, Tier::MultiCluster)
            .findings
            .is_empty());
    }
}
