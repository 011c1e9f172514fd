//! `secrets-in-env`: no literal env values under secret-like names.
use super::prelude::*;
use crate::policy::secrets;

pub static RULE: Rule = Rule {
    id: "secrets-in-env",
    tier: Tier::Foundation,
    pss: None,
    summary: "no literal env values under secret-like names",
    doc: "A password written as a literal `env[].value` lives in plain text in Git, in \
the object in etcd, in `kubectl get -o yaml`, in every audit log and CI log that prints \
the manifest. Put it in a Secret and reference it with \
`valueFrom.secretKeyRef: {name, key}` (or mount it as a file). The check flags a literal \
`value` that is a credential by tiergate's one secret detector (the same as \
`sensitive-configmap`'s): the variable's name ends in a secret word (names are split into \
words at `_`, `-`, `.`, digits and camelCase; trailing qualifiers such as `value`, `base`, \
`b64`, `old`, `json` are dropped; the last word must be password, passwd, pass, pwd, \
passphrase, secret(s), token(s), credential(s), creds, apikey, clientsecret, authtoken, or \
the last two words api, private, access, secret, signing, encryption, master or account \
key), or the value itself is a PEM private key or a recognisable cloud credential (AWS, \
GCP, Google API, GitHub, Slack, Azure). So `DB_PASSWORD`, `GITHUB_TOKEN`, `apiKey`, \
`AWS_SECRET_ACCESS_KEY` and `SECRET_KEY_BASE` are flagged while `TOKEN_URL`, \
`PASSWORD_FILE`, `SECRET_NAME`, `AWS_ACCESS_KEY_ID` (unless its value is a key) and the \
shell's `PWD` are not. The message never shows the value; an empty value, a boolean and a \
bare `$(OTHER_VAR)` or `${VAR}` placeholder are not literals. There is no automatic fix: the secret has to be moved \
by a person (and rotated, since it has been exposed).",
    check: Check::Pod(check),
    fix: Fix::None,
    cel: Cel::WebhookWhen {
        why: "its secret-name and secret-value heuristics (policy/secrets.rs) are not written in \
              CEL; the webhook is called only for containers with a literal env value whose name \
              or value may hold one",
        when,
    },
};

fn check(pod: &PodTemplate, _r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    for c in pod.containers() {
        for (i, e) in c.env.unwrap_or_default().iter().enumerate() {
            let value = e.value.as_deref().unwrap_or_default();
            if secrets::secret_in(&e.name, value).is_some() {
                out.push(
                    Violation::new(
                        format!("{}/env/{i}/value", c.path),
                        format!(
                            "secrets in env (container {:?} must not set env {} to a literal value; use valueFrom.secretKeyRef)",
                            c.name, e.name
                        ),
                    )
                    .in_container(c.name),
                );
            }
        }
    }
    Ok(())
}

/// Some container sets a literal env value that may be a credential
/// ([`secrets::may_hold_secret`]).
fn when(containers: &str, _cfg: &crate::policy::PolicyConfig) -> String {
    format!(
        "{containers}.exists(c, c.?env.orValue([]).exists(e, e.?value.orValue('') != '' && ({})))",
        secrets::may_hold_secret_cel("e.name", "e.value")
    )
}

#[cfg(test)]
mod tests {
    use crate::policy::rules::testutil::{self, run_rule};
    use crate::policy::Tier;
    use serde_json::json;

    #[test]
    fn secret_refs_and_harmless_literals_pass() {
        let d = testutil::web_deployment();
        assert!(run_rule("secrets-in-env", &d, Tier::Foundation)
            .findings
            .is_empty());
    }

    #[test]
    fn literal_secret_fails_without_echoing_it() {
        let mut d = testutil::web_deployment();
        let env = d["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array_mut()
            .unwrap();
        env.push(json!({"name": "STRIPE_API_KEY", "value": "sk_live_hunter2"}));
        env.push(json!({"name": "EMPTY_PASSWORD", "value": ""}));
        env.push(json!({"name": "DB_PASS", "value": "$(DB_PASSWORD)"}));
        let n = env.len() - 3;
        let e = run_rule("secrets-in-env", &d, Tier::Foundation);
        assert_eq!(e.findings.len(), 1);
        let f = &e.findings[0];
        assert_eq!(
            f.path,
            format!("/spec/template/spec/containers/0/env/{n}/value")
        );
        assert_eq!(f.container.as_deref(), Some("app"));
        assert_eq!(
            f.message,
            "secrets in env (container \"app\" must not set env STRIPE_API_KEY to a literal value; use valueFrom.secretKeyRef)"
        );
        assert!(!f.message.contains("hunter2"));
    }

    #[test]
    fn ephemeral_containers_are_checked_too() {
        let mut pod = testutil::bare_pod();
        pod["spec"]["ephemeralContainers"] = json!([{"name": "debug", "image": "redis:7.2",
            "env": [{"name": "REDISCLI_AUTH", "value": "x"}, {"name": "redisPassword", "value": "x"}]}]);
        let e = run_rule("secrets-in-env", &pod, Tier::Foundation);
        assert_eq!(e.findings.len(), 1);
        assert_eq!(
            e.findings[0].path,
            "/spec/ephemeralContainers/0/env/1/value"
        );
        assert_eq!(e.findings[0].container.as_deref(), Some("debug"));
    }
}
