//! `secrets-in-env`: no literal env values under secret-like names.
use super::prelude::*;

pub static RULE: Rule = Rule {
    id: "secrets-in-env",
    tier: Tier::Foundation,
    pss: None,
    summary: "no literal env values under secret-like names",
    doc: "A password written as a literal `env[].value` lives in plain text in Git, in \
the object in etcd, in `kubectl get -o yaml`, in every audit log and CI log that prints \
the manifest. Put it in a Secret and reference it with \
`valueFrom.secretKeyRef: {name, key}` (or mount it as a file). The check flags a literal, \
non-empty `value` when the variable's name ends in a secret word: names are split into \
words at `_`, `-`, `.`, digits and camelCase, and the last word (after dropping trailing \
qualifiers such as `value`, `base`, `b64`, `old`, `new` and digits) must be one of \
password, passwd, pass, pwd, passphrase, secret, token, credential(s), creds, apikey, \
or the last two words one of api key, private key, access key, secret key, signing key, \
encryption key, master key. So `DB_PASSWORD`, `GITHUB_TOKEN`, `apiKey`, \
`AWS_SECRET_ACCESS_KEY` and `SECRET_KEY_BASE` are flagged while `TOKEN_URL`, \
`PASSWORD_FILE`, `SECRET_NAME`, `AWS_ACCESS_KEY_ID` and the shell's `PWD` are not. The \
message never shows the value, and a value that is only a `$(OTHER_VAR)` reference \
is not a literal. There is no automatic fix: the secret has to be moved \
by a person (and rotated, since it has been exposed).",
    check: Check::Pod(check),
    fix: Fix::None,
};

const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "pass",
    "pwd",
    "passphrase",
    "secret",
    "token",
    "credential",
    "credentials",
    "creds",
    "apikey",
    "privatekey",
    "accesskey",
    "secretkey",
];

/// The word before a trailing `key` that makes it a secret.
const KEY_QUALIFIERS: &[&str] = &[
    "api",
    "private",
    "access",
    "secret",
    "signing",
    "encryption",
    "master",
];

/// Trailing words that keep a secret name secret (`SECRET_KEY_BASE`, `TOKEN_VALUE`).
const TRAILING_NOISE: &[&str] = &[
    "value",
    "base",
    "b64",
    "base64",
    "encoded",
    "raw",
    "plain",
    "plaintext",
    "old",
    "new",
    "current",
    "previous",
    "prev",
    "primary",
    "secondary",
];

/// The lower-case words of an env var name.
fn words(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev: Option<char> = None;
    let chars: Vec<char> = name.chars().collect();
    for (i, &ch) in chars.iter().enumerate() {
        if !ch.is_ascii_alphabetic() {
            // Separators and digits end a word.
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev = None;
            continue;
        }
        let boundary = match prev {
            // fooBar
            Some(p) if p.is_ascii_lowercase() && ch.is_ascii_uppercase() => true,
            // HTTPServer: the S starts a new word when followed by lower case
            Some(p) if p.is_ascii_uppercase() && ch.is_ascii_uppercase() => {
                chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase())
            }
            _ => false,
        };
        if boundary && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        cur.push(ch.to_ascii_lowercase());
        prev = Some(ch);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Whether an env var name looks like it holds a secret (see the rule's doc).
pub fn is_secret_name(name: &str) -> bool {
    let mut w = words(name);
    let total = w.len();
    while w.len() > 1
        && w.last()
            .is_some_and(|l| TRAILING_NOISE.contains(&l.as_str()))
    {
        w.pop();
    }
    let Some(last) = w.last().map(String::as_str) else {
        return false;
    };
    // `PWD` alone is the shell's working directory.
    if last == "pwd" && total == 1 {
        return false;
    }
    if SECRET_WORDS.contains(&last) {
        return true;
    }
    last == "key" && w.len() >= 2 && KEY_QUALIFIERS.contains(&w[w.len() - 2].as_str())
}

/// A value that is only a `$(VAR)` reference to another variable (which may
/// itself come from a Secret): not a literal secret.
fn is_var_reference(v: &str) -> bool {
    v.strip_prefix("$(")
        .and_then(|r| r.strip_suffix(')'))
        .is_some_and(|n| {
            !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        })
}

fn check(pod: &PodTemplate, _r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    for c in pod.containers() {
        for (i, e) in c.env.unwrap_or_default().iter().enumerate() {
            let literal = e
                .value
                .as_deref()
                .is_some_and(|v| !v.is_empty() && !is_var_reference(v));
            if literal && is_secret_name(&e.name) {
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

#[cfg(test)]
mod tests {
    use super::{is_secret_name, words};
    use crate::policy::rules::testutil::{self, run_rule};
    use crate::policy::Tier;
    use serde_json::json;

    #[test]
    fn splits_names_into_words() {
        assert_eq!(words("DB_PASSWORD"), ["db", "password"]);
        assert_eq!(words("apiKey"), ["api", "key"]);
        assert_eq!(words("HTTPServerToken2"), ["http", "server", "token"]);
        assert_eq!(words("x.y-z"), ["x", "y", "z"]);
    }

    #[test]
    fn heuristic_flags_secrets_and_spares_pointers() {
        for name in [
            "DB_PASSWORD",
            "GITHUB_TOKEN",
            "password",
            "MYSQL_ROOT_PASSWORD",
            "SMTP_PASS",
            "apiKey",
            "API_KEY",
            "STRIPE_APIKEY",
            "AWS_SECRET_ACCESS_KEY",
            "JWT_SECRET",
            "SECRET_KEY_BASE",
            "TLS_PRIVATE_KEY",
            "GCP_CREDENTIALS",
            "REDIS_PASSWORD_2",
            "DB_PWD",
            "auth-token",
            "client.secret",
        ] {
            assert!(is_secret_name(name), "{name} should be secret-like");
        }
        for name in [
            "TOKEN_URL",
            "PASSWORD_FILE",
            "SECRET_NAME",
            "AWS_ACCESS_KEY_ID",
            "PWD",
            "OLDPWD",
            "BYPASS",
            "TOKENIZER_MODEL",
            "CACHE_KEY",
            "LOG_LEVEL",
            "TOKEN_TTL",
            "",
        ] {
            assert!(!is_secret_name(name), "{name} should not be secret-like");
        }
    }

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
