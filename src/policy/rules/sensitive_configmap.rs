//! `sensitive-configmap`: no credentials in ConfigMap `data` / `binaryData`.
use super::prelude::*;
use k8s_openapi::api::core::v1::ConfigMap;

use crate::policy::fixutil::escape;
use crate::policy::secrets;

pub static RULE: Rule = Rule {
    id: "sensitive-configmap",
    tier: Tier::Foundation,
    pss: None,
    summary: "ConfigMaps hold no passwords, tokens, private keys or cloud access keys",
    doc: "ConfigMaps are not secret: they are readable by anyone who may read the \
namespace's configuration, are never encrypted at rest, are printed by `kubectl describe` \
and end up in Git, logs and support bundles. tiergate's one secret detector (the same as \
`secrets-in-env`'s) decides: a key whose last word is a credential word (password, passwd, \
pass, pwd, token(s), secret(s), credential(s), creds, apikey, clientsecret, authtoken, or api, \
private, access, secret, signing, encryption, master or account key; trailing qualifiers and \
file extensions such as `json` dropped, so `credentials.json` counts) with a non-empty \
value, a PEM private key (`-----BEGIN ... PRIVATE KEY-----`) in any value, or a recognisable \
cloud credential (AWS access key ids `AKIA`/`ASIA...`, a GCP service-account JSON key, \
Google API keys, GitHub and Slack tokens, Azure storage account keys) is a finding. Keys \
that only name or point at a credential (`...-name`, `-file`, `-url`, `-ttl`, \
`existingSecret`, ...), boolean values and bare substitution placeholders \
(`${DB_PASSWORD}`, `{{ .Values.token }}`) are not. The finding names the key, never \
its value. Move the value to a Secret (better: a SealedSecret or ExternalSecret) and \
reference it with `secretKeyRef` or a secret volume.",
    check: Check::Object(Kinds::Only(&[kinds::CONFIG_MAP]), check),
    fix: Fix::None,
    cel: Cel::WebhookWhen {
        why: "it scans every value for passwords, tokens and key material with the heuristics of \
              policy/secrets.rs, not written in CEL; the webhook is called only for ConfigMaps \
              with binary data or a key or value that may hold one",
        when,
    },
};

fn check(t: &Target<'_>, _r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    let cm: ConfigMap = t.typed()?;
    for (key, value) in cm.data.iter().flatten() {
        if let Some(why) = secrets::secret_in(key, value) {
            out.push(violation("data", key, why));
        }
    }
    for (key, bytes) in cm.binary_data.iter().flatten() {
        let value = String::from_utf8_lossy(&bytes.0);
        if let Some(why) = secrets::secret_in(key, &value) {
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

/// Some key or value may hold a credential ([`secrets::may_hold_secret`]),
/// or the ConfigMap has binary data.
fn when(_containers: &str, _cfg: &crate::policy::PolicyConfig) -> String {
    format!(
        "object.?binaryData.orValue({{}}).size() > 0 || object.?data.orValue({{}}).exists(k, {})",
        secrets::may_hold_secret_cel("k", "object.data[k]")
    )
}

#[cfg(test)]
mod tests {
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
}
