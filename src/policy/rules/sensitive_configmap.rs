//! `sensitive-configmap`: no credentials in ConfigMap `data` / `binaryData`.
use super::prelude::*;
use k8s_openapi::api::core::v1::ConfigMap;

use crate::policy::fixutil::escape;

pub static RULE: Rule = Rule {
    id: "sensitive-configmap",
    tier: Tier::Foundation,
    pss: None,
    summary: "ConfigMaps hold no passwords, tokens, private keys or cloud access keys",
    doc: "ConfigMaps are not secret: they are readable by anyone who may read the \
namespace's configuration, are never encrypted at rest, are printed by `kubectl describe` \
and end up in Git, logs and support bundles. A key named like a credential (password, \
passwd, token, secret, api key, access key, private key, credentials, client secret) with \
a non-empty value, a PEM private key (`-----BEGIN ... PRIVATE KEY-----`) in any value, or a \
recognisable cloud credential (AWS access key ids `AKIA`/`ASIA...`, a GCP service-account \
JSON key, Google API keys, GitHub and Slack tokens, Azure storage account keys) is a \
finding. Keys that only name or point at a credential (`...-name`, `-file`, `-path`, \
`-url`, `-ref`, `-ttl`, `existingSecret`, ...), boolean values and bare substitution \
placeholders (`${DB_PASSWORD}`, `{{ .Values.token }}`) are not. The finding names the key, never \
its value. Move the value to a Secret (better: a SealedSecret or ExternalSecret) and \
reference it with `secretKeyRef` or a secret volume.",
    check: Check::Object(Kinds::Only(&[kinds::CONFIG_MAP]), check),
    fix: Fix::None,
};

fn check(t: &Target<'_>, _r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    let cm: ConfigMap = t.typed()?;
    for (key, value) in cm.data.iter().flatten() {
        if let Some(why) = credential_in(key, value) {
            out.push(violation("data", key, why));
        }
    }
    for (key, bytes) in cm.binary_data.iter().flatten() {
        let value = String::from_utf8_lossy(&bytes.0);
        if let Some(why) = credential_in(key, &value) {
            out.push(violation("binaryData", key, why));
        }
    }
    Ok(())
}

fn violation(field: &str, key: &str, why: &str) -> Violation {
    Violation::new(
        format!("/{field}/{}", escape(key)),
        format!("credentials in ConfigMap (key {key:?} {why}; move it to a Secret)"),
    )
}

/// Why this entry holds a credential, if it does. Never mentions the value.
fn credential_in(key: &str, value: &str) -> Option<&'static str> {
    if value.trim().is_empty() {
        return None;
    }
    if has_pem_private_key(value) {
        return Some("holds a PEM private key");
    }
    if has_gcp_service_account_key(value) {
        return Some("holds a GCP service account key");
    }
    if let Some(what) = cloud_token(value) {
        return Some(what);
    }
    if is_secret_like_key(key) && !is_boolean(value) && !is_placeholder(value) {
        return Some("is named like a credential and must not hold one");
    }
    None
}

fn is_boolean(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "true" | "false" | "yes" | "no" | "on" | "off"
    )
}

/// A value that is only a substitution placeholder (`${DB_PASSWORD}`,
/// `$(TOKEN)`, `{{ .Values.token }}`): filled elsewhere, not a credential.
fn is_placeholder(v: &str) -> bool {
    let v = v.trim();
    let wrapped = |open: &str, close: &str| {
        v.strip_prefix(open)
            .and_then(|r| r.strip_suffix(close))
            .is_some_and(|inner| !inner.contains(open) && !inner.contains(close))
    };
    wrapped("${", "}") || wrapped("$(", ")") || wrapped("{{", "}}")
}

/// Split a key into lower-case words at `_-. /`, digits and camelCase humps.
fn words(key: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for ch in key.chars() {
        if !ch.is_ascii_alphabetic() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if ch.is_ascii_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = ch.is_ascii_lowercase();
        cur.push(ch.to_ascii_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Words that make a key a credential on their own.
const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "secret",
    "secrets",
    "token",
    "tokens",
    "credential",
    "credentials",
    "creds",
    "apikey",
    "privatekey",
    "accesskey",
    "secretkey",
    "clientsecret",
    "authtoken",
];

/// Word pairs that make a key a credential (`api_key`, `privateKey`, ...).
const SECRET_PAIRS: &[(&str, &str)] = &[
    ("api", "key"),
    ("private", "key"),
    ("access", "key"),
    ("secret", "key"),
    ("signing", "key"),
    ("encryption", "key"),
    ("master", "key"),
    ("account", "key"),
];

/// A last word that makes the key name or point at a credential rather than
/// hold one (`token-url`, `secret-name`, `password-file`, `token-ttl`).
const REFERENCE_SUFFIXES: &[&str] = &[
    "name",
    "names",
    "ref",
    "file",
    "path",
    "dir",
    "url",
    "uri",
    "endpoint",
    "ttl",
    "expiry",
    "expiration",
    "lifetime",
    "timeout",
    "duration",
    "interval",
    "seconds",
    "length",
    "len",
    "size",
    "count",
    "max",
    "min",
    "policy",
    "header",
    "type",
    "kind",
    "mode",
    "enabled",
    "id",
    "mount",
    "env",
    "field",
    "prefix",
    "format",
    "version",
    "audience",
    "issuer",
    "scope",
    "scopes",
    "algorithm",
    "provider",
    "store",
    "location",
];

/// A first word that makes the key name an existing Secret (`existingSecret`).
const REFERENCE_PREFIXES: &[&str] = &["existing"];

fn is_secret_like_key(key: &str) -> bool {
    let w = words(key);
    let Some(last) = w.last() else { return false };
    // `*Key` only counts in a pair; a reference suffix is not a credential.
    if REFERENCE_SUFFIXES.contains(&last.as_str())
        || w.first()
            .is_some_and(|f| REFERENCE_PREFIXES.contains(&f.as_str()))
    {
        return false;
    }
    w.iter().any(|x| SECRET_WORDS.contains(&x.as_str()))
        || w.windows(2)
            .any(|p| SECRET_PAIRS.contains(&(p[0].as_str(), p[1].as_str())))
}

/// `-----BEGIN <anything> PRIVATE KEY-----` (RSA, EC, OPENSSH, ENCRYPTED, PGP ... BLOCK).
fn has_pem_private_key(v: &str) -> bool {
    let mut rest = v;
    while let Some(i) = rest.find("-----BEGIN ") {
        let after = &rest[i + "-----BEGIN ".len()..];
        let header = after.split("-----").next().unwrap_or("");
        if !header.contains('\n') && header.contains("PRIVATE KEY") {
            return true;
        }
        rest = after;
    }
    false
}

/// A GCP service account key file: JSON with `"type": "service_account"` and
/// a `private_key`.
fn has_gcp_service_account_key(v: &str) -> bool {
    if let Ok(serde_json::Value::Object(m)) = serde_json::from_str::<serde_json::Value>(v) {
        return m.get("type").and_then(|t| t.as_str()) == Some("service_account")
            && m.contains_key("private_key");
    }
    // Not standalone JSON (embedded in YAML or a larger file): look for both parts.
    let compact: String = v.chars().filter(|c| !c.is_whitespace()).collect();
    compact.contains("\"type\":\"service_account\"") && compact.contains("\"private_key\"")
}

/// Well-known cloud and SaaS credential formats.
fn cloud_token(v: &str) -> Option<&'static str> {
    let b = v.as_bytes();
    let is_upper_alnum = |c: u8| c.is_ascii_uppercase() || c.is_ascii_digit();
    let is_token_char = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'-';
    let boundary_before = |i: usize, f: &dyn Fn(u8) -> bool| i == 0 || !f(b[i - 1]);
    let run_len = |from: usize, f: &dyn Fn(u8) -> bool| {
        b.get(from..)
            .map(|s| s.iter().take_while(|c| f(**c)).count())
            .unwrap_or(0)
    };
    for i in 0..b.len() {
        let rest = &b[i..];
        // AWS access key id: AKIA / ASIA + 16 upper-case letters or digits.
        if (rest.starts_with(b"AKIA") || rest.starts_with(b"ASIA"))
            && boundary_before(i, &is_upper_alnum)
            && run_len(i + 4, &is_upper_alnum) == 16
        {
            return Some("holds an AWS access key");
        }
        // Google API key: AIza + 35 of [A-Za-z0-9_-].
        if rest.starts_with(b"AIza")
            && boundary_before(i, &is_token_char)
            && run_len(i + 4, &is_token_char) == 35
        {
            return Some("holds a Google API key");
        }
        // GitHub tokens: gh[pousr]_ + 36 alphanumerics, or github_pat_.
        if rest.len() > 4
            && rest.starts_with(b"gh")
            && b"pousr".contains(&rest[2])
            && rest[3] == b'_'
            && boundary_before(i, &is_token_char)
            && run_len(i + 4, &|c: u8| c.is_ascii_alphanumeric()) >= 36
        {
            return Some("holds a GitHub token");
        }
        if rest.starts_with(b"github_pat_")
            && boundary_before(i, &is_token_char)
            && run_len(i + 11, &is_token_char) >= 22
        {
            return Some("holds a GitHub token");
        }
        // Slack tokens: xox[abpors]-...
        if rest.len() > 5
            && rest.starts_with(b"xox")
            && b"abpors".contains(&rest[3])
            && rest[4] == b'-'
            && boundary_before(i, &is_token_char)
            && run_len(i + 5, &is_token_char) >= 10
        {
            return Some("holds a Slack token");
        }
    }
    // Azure storage connection string with an account key.
    if v.contains("AccountKey=") && v.contains("AccountName=") {
        return Some("holds an Azure storage account key");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::{is_secret_like_key, words};
    use crate::policy::rules::testutil::run_rule;
    use crate::policy::Tier;
    use serde_json::{json, Value};

    fn cm(data: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "app", "namespace": "shop"}, "data": data})
    }

    fn findings(obj: &Value) -> Vec<(String, String)> {
        run_rule("sensitive-configmap", obj, Tier::Foundation)
            .findings
            .into_iter()
            .map(|f| (f.path, f.message))
            .collect()
    }

    #[test]
    fn plain_configuration_passes() {
        let c = cm(json!({
            "LOG_LEVEL": "info",
            "token-url": "https://auth.example.com/token",
            "db-secret-name": "db-credentials",
            "password-min-length": "12",
            "PASSWORD_FILE": "/etc/creds/password",
            "tokenTTL": "3600",
            "DB_PASSWORD": "",
            "ca.crt": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
            "password-auth-enabled": "true",
            "existingSecret": "db-credentials",
            "oidc.token-audience": "api",
            "SMTP_PASSWORD": "${SMTP_PASSWORD}",
            "keyboard": "qwerty",
        }));
        assert_eq!(findings(&c), vec![]);
    }

    #[test]
    fn secret_like_keys_are_flagged_without_echoing_values() {
        let c = cm(json!({"DB_PASSWORD": "hunter2", "stripe.apiKey": "sk_test_abc"}));
        let f = findings(&c);
        assert_eq!(
            f,
            vec![
                (
                    "/data/DB_PASSWORD".to_string(),
                    "credentials in ConfigMap (key \"DB_PASSWORD\" is named like a credential \
                     and must not hold one; move it to a Secret)"
                        .to_string()
                ),
                (
                    "/data/stripe.apiKey".to_string(),
                    "credentials in ConfigMap (key \"stripe.apiKey\" is named like a credential \
                     and must not hold one; move it to a Secret)"
                        .to_string()
                ),
            ]
        );
        assert!(f.iter().all(|(_, m)| !m.contains("hunter2")));
    }

    #[test]
    fn pem_private_keys_anywhere_and_escaped_paths() {
        let key =
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\n";
        let c = cm(json!({"tls/server.pem": format!("cert stuff\n{key}")}));
        assert_eq!(
            findings(&c),
            vec![(
                "/data/tls~1server.pem".to_string(),
                "credentials in ConfigMap (key \"tls/server.pem\" holds a PEM private key; \
                 move it to a Secret)"
                    .to_string()
            )]
        );
        let c = cm(
            json!({"id": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----"}),
        );
        assert_eq!(findings(&c).len(), 1);
    }

    #[test]
    fn cloud_keys_are_recognised() {
        let c = cm(json!({
            "aws.conf": "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n",
            "gcp.json": "{\"type\": \"service_account\", \"project_id\": \"p\", \"private_key_id\": \"1\", \"private_key\": \"x\"}",
            "notes": "see AKIAIOSFODNN7EXAMPLEX for details",
        }));
        let f = findings(&c);
        assert_eq!(f.len(), 2, "{f:?}");
        assert_eq!(f[0].0, "/data/aws.conf");
        assert!(f[0].1.contains("holds an AWS access key"));
        assert_eq!(f[1].0, "/data/gcp.json");
        assert!(f[1].1.contains("holds a GCP service account key"));
        assert!(f.iter().all(|(_, m)| !m.contains("AKIAIOSFODNN7EXAMPLE")));

        let c = cm(
            json!({"gh": "token: ghp_0123456789abcdefghijABCDEFGHIJ012345",
                          "az": "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=abc==;"}),
        );
        let f = findings(&c);
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(f[0].1.contains("Azure"));
        assert!(f[1].1.contains("GitHub"));
    }

    #[test]
    fn binary_data_is_checked_too() {
        use base64::Engine as _;
        let pem = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----\n";
        let enc = base64::engine::general_purpose::STANDARD.encode(pem);
        let c = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"},
                       "binaryData": {"key.der": enc, "logo.png": "iVBORw0KGgo="}});
        assert_eq!(
            findings(&c),
            vec![(
                "/binaryData/key.der".to_string(),
                "credentials in ConfigMap (key \"key.der\" holds a PEM private key; move it to a Secret)"
                    .to_string()
            )]
        );
    }

    #[test]
    fn key_words() {
        assert_eq!(words("dbPassword"), vec!["db", "password"]);
        assert_eq!(
            words("AWS_SECRET_ACCESS_KEY"),
            vec!["aws", "secret", "access", "key"]
        );
        assert!(is_secret_like_key("AWS_SECRET_ACCESS_KEY"));
        assert!(is_secret_like_key("privateKey"));
        assert!(is_secret_like_key("credentials.json"));
        assert!(is_secret_like_key("client_secret"));
        assert!(!is_secret_like_key("secretName"));
        assert!(!is_secret_like_key("monkey"));
        assert!(!is_secret_like_key("cache-key"));
        assert!(!is_secret_like_key("existingSecret"));
        assert!(is_secret_like_key("client-secret"));
    }
}
