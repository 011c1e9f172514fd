//! The one secret detector: whether a name (an env var, a ConfigMap key) and
//! its literal value hold a credential. `secrets-in-env` and
//! `sensitive-configmap` both ask [`secret_in`], so a value is a secret, or
//! not, in the same words everywhere.
//!
//! - **By name.** The name is split into words ([`words`]); trailing
//!   qualifiers (`value`, `base`, `b64`, `old`, file extensions such as
//!   `json`, ...) are dropped; the last word must then be a secret word
//!   ([`SECRET_WORDS`]: password, passwd, pass, pwd, passphrase, secret(s),
//!   token(s), credential(s), creds, apikey, privatekey, accesskey,
//!   secretkey, clientsecret, authtoken) or the last two words a key pair
//!   (`api`, `private`, `access`, `secret`, `signing`, `encryption`,
//!   `master` or `account`, then `key`). A name that names or points at a
//!   credential (`TOKEN_URL`, `PASSWORD_FILE`, `SECRET_NAME`,
//!   `existingSecret`) is not one, nor is the shell's `PWD`.
//! - **By value**, whatever the name: a PEM private key, a GCP service
//!   account key, AWS access key ids, Google API keys, GitHub and Slack
//!   tokens, Azure storage account keys.
//! - **Never**: an empty value, a boolean, or a bare substitution
//!   placeholder (`${DB_PASSWORD}`, `$(TOKEN)`, `{{ .Values.token }}`).

/// Words that hold a credential when a name ends in them.
pub const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "pass",
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

/// The word before a trailing `key` that makes it a secret.
pub const KEY_QUALIFIERS: &[&str] = &[
    "api",
    "private",
    "access",
    "secret",
    "signing",
    "encryption",
    "master",
    "account",
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
    // File extensions: `credentials.json` holds credentials.
    "json",
    "yaml",
    "yml",
    "txt",
    "conf",
    "cfg",
    "ini",
    "properties",
    "toml",
    "xml",
];

/// A first word that makes the name point at an existing Secret.
const REFERENCE_PREFIXES: &[&str] = &["existing"];

/// The lower-case words of a name: split at `_`, `-`, `.`, `/`, digits and
/// camelCase humps (`HTTPServerToken2` is `http server token`).
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

/// Whether a name says it holds a credential (see the module doc).
pub fn names_a_secret(name: &str) -> bool {
    let mut w = words(name);
    let total = w.len();
    if w.first()
        .is_some_and(|f| REFERENCE_PREFIXES.contains(&f.as_str()))
    {
        return false;
    }
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

/// Why `name: value` holds a credential, if it does. Never mentions the value.
pub fn secret_in(name: &str, value: &str) -> Option<&'static str> {
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
    if names_a_secret(name) && !is_boolean(value) && !is_path(value) && !is_placeholder(value) {
        return Some("is named like a credential and must not hold one");
    }
    None
}

/// Lower-case pieces one of which every credential name holds (each of
/// [`SECRET_WORDS`] and the `key` of a key pair contains one).
const NAME_PIECES: &[&str] = &["pass", "pwd", "secret", "token", "cred", "key"];

/// Pieces one of which every credential value [`secret_in`] recognises by
/// its value holds.
const VALUE_PIECES: &[&str] = &[
    "PRIVATE KEY",
    "service_account",
    "AKIA",
    "ASIA",
    "AIza",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "xoxa-",
    "xoxb-",
    "xoxp-",
    "xoxo-",
    "xoxr-",
    "xoxs-",
    "AccountKey=",
];

/// A cheap test that holds whenever [`secret_in`] finds something (and
/// often when it does not): the name holds one of [`NAME_PIECES`], or the
/// value one of [`VALUE_PIECES`].
pub fn may_hold_secret(name: &str, value: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    NAME_PIECES.iter().any(|p| lower.contains(p)) || VALUE_PIECES.iter().any(|p| value.contains(p))
}

/// [`may_hold_secret`] in CEL, over the CEL strings `name` and `value`.
pub fn may_hold_secret_cel(name: &str, value: &str) -> String {
    format!(
        "{}.exists(p, {name}.lowerAscii().contains(p)) || {}.exists(p, {value}.contains(p))",
        crate::policy::cel::list(NAME_PIECES),
        crate::policy::cel::list(VALUE_PIECES)
    )
}

/// A boolean or 0/1 flag (`MYSQL_ALLOW_EMPTY_PASSWORD=1`): a switch about a
/// secret, not one.
fn is_boolean(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "true" | "false" | "yes" | "no" | "on" | "off" | "0" | "1"
    )
}

/// A file path (`GOOGLE_APPLICATION_CREDENTIALS=/var/run/secrets/key.json`):
/// where a credential is, not the credential.
fn is_path(v: &str) -> bool {
    let v = v.trim();
    (v.starts_with('/') || v.starts_with("./") || v.starts_with("../") || v.starts_with("~/"))
        && v.len() > 1
        && !v.chars().any(char::is_whitespace)
}

/// A value that is only a substitution placeholder (`${DB_PASSWORD}`,
/// `$(TOKEN)`, `{{ .Values.token }}`): filled elsewhere, not a credential.
pub fn is_placeholder(v: &str) -> bool {
    let v = v.trim();
    let wrapped = |open: &str, close: &str| {
        v.strip_prefix(open)
            .and_then(|r| r.strip_suffix(close))
            .is_some_and(|inner| {
                !inner.is_empty() && !inner.contains(open) && !inner.contains(close)
            })
    };
    wrapped("${", "}") || wrapped("$(", ")") || wrapped("{{", "}}")
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
    use super::*;

    #[test]
    fn splits_names_into_words() {
        assert_eq!(words("DB_PASSWORD"), ["db", "password"]);
        assert_eq!(words("apiKey"), ["api", "key"]);
        assert_eq!(words("dbPassword"), ["db", "password"]);
        assert_eq!(words("HTTPServerToken2"), ["http", "server", "token"]);
        assert_eq!(words("x.y-z/w"), ["x", "y", "z", "w"]);
        assert_eq!(
            words("AWS_SECRET_ACCESS_KEY"),
            ["aws", "secret", "access", "key"]
        );
    }

    #[test]
    fn secret_names_are_flagged_and_pointers_spared() {
        for name in [
            "DB_PASSWORD",
            "GITHUB_TOKEN",
            "password",
            "MYSQL_ROOT_PASSWORD",
            "SMTP_PASS",
            "apiKey",
            "API_KEY",
            "STRIPE_APIKEY",
            "stripe.apiKey",
            "AWS_SECRET_ACCESS_KEY",
            "JWT_SECRET",
            "SECRET_KEY_BASE",
            "TLS_PRIVATE_KEY",
            "privateKey",
            "GCP_CREDENTIALS",
            "credentials.json",
            "REDIS_PASSWORD_2",
            "DB_PWD",
            "auth-token",
            "client.secret",
            "client_secret",
            "client-secret",
            "storage-account-key",
        ] {
            assert!(names_a_secret(name), "{name} should be secret-like");
        }
        for name in [
            "TOKEN_URL",
            "PASSWORD_FILE",
            "SECRET_NAME",
            "secretName",
            "existingSecret",
            "AWS_ACCESS_KEY_ID",
            "PWD",
            "OLDPWD",
            "BYPASS",
            "TOKENIZER_MODEL",
            "CACHE_KEY",
            "cache-key",
            "monkey",
            "LOG_LEVEL",
            "TOKEN_TTL",
            "tokenTTL",
            "oidc.token-audience",
            "password-min-length",
            "",
        ] {
            assert!(!names_a_secret(name), "{name} should not be secret-like");
        }
    }

    #[test]
    fn values_decide_too_and_placeholders_never_do() {
        assert_eq!(
            secret_in("notes", "see AKIAIOSFODNN7EXAMPLE"),
            Some("holds an AWS access key")
        );
        assert_eq!(secret_in("notes", "see AKIAIOSFODNN7EXAMPLEX"), None);
        assert!(secret_in("DB_PASSWORD", "hunter2").is_some());
        for v in [
            "",
            "  ",
            "true",
            "${DB_PASSWORD}",
            "$(DB_PASSWORD)",
            "{{ .Values.pw }}",
        ] {
            assert_eq!(secret_in("DB_PASSWORD", v), None, "{v:?}");
        }
        assert!(secret_in("DB_PASSWORD", "$()").is_some());
        // A flag about a secret, or where it is, is not a secret.
        assert_eq!(secret_in("MYSQL_ALLOW_EMPTY_PASSWORD", "1"), None);
        assert_eq!(
            secret_in(
                "GOOGLE_APPLICATION_CREDENTIALS",
                "/var/run/secrets/gcp/key.json"
            ),
            None
        );
        assert!(secret_in("GOOGLE_APPLICATION_CREDENTIALS", "/ not a path").is_some());
        assert_eq!(secret_in("api-token-secret-namespace", "default"), None);
        // A PEM private key is one, whatever the name.
        assert!(secret_in(
            "LOG_LEVEL",
            "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----"
        )
        .is_some());
    }

    /// The hybrid webhook's precondition never misses a credential: on
    /// every name and value built from the detector's own words, tokens and
    /// separators (and arbitrary text), `secret_in` finds something only
    /// where `may_hold_secret` holds.
    #[test]
    fn may_hold_secret_holds_wherever_a_secret_is_found() {
        use proptest::prelude::*;
        let words: Vec<String> = SECRET_WORDS
            .iter()
            .chain(KEY_QUALIFIERS)
            .chain(TRAILING_NOISE)
            .chain(REFERENCE_PREFIXES)
            .chain(&["key", "db", "api", "pwd", "log", "level", "x", "ID", "Url"])
            .flat_map(|w| {
                [w.to_string(), w.to_ascii_uppercase(), {
                    let mut c = w.chars();
                    c.next()
                        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                        .unwrap_or_default()
                }]
            })
            .collect();
        let values = [
            "hunter2",
            "1",
            "true",
            "info",
            "/var/run/x",
            "${X}",
            "see AKIAIOSFODNN7EXAMPLE",
            "ASIAIOSFODNN7EXAMPLE",
            "AIzaSyA1234567890abcdefghijklmnopqrstuv",
            "ghp_0123456789abcdefghijklmnopqrstuvwxyz",
            "github_pat_0123456789abcdefghijkl",
            "xoxb-0123456789-abcdef",
            "AccountName=a;AccountKey=b",
            "-----BEGIN RSA PRIVATE KEY-----\nx\n-----END RSA PRIVATE KEY-----",
            "{\"type\": \"service_account\", \"private_key\": \"x\"}",
        ];
        let name = proptest::collection::vec(
            (
                proptest::sample::select(words),
                proptest::sample::select(vec!["", "_", "-", ".", "2", "/"]),
            ),
            0..4,
        )
        .prop_map(|parts| {
            parts
                .into_iter()
                .map(|(w, sep)| format!("{w}{sep}"))
                .collect::<String>()
        });
        let value = prop_oneof![
            proptest::sample::select(values.to_vec()).prop_map(str::to_string),
            ".{0,40}",
        ];
        let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
            cases: 4000,
            ..Default::default()
        });
        runner
            .run(&(name, value), |(n, v)| {
                prop_assert!(
                    secret_in(&n, &v).is_none() || may_hold_secret(&n, &v),
                    "{n:?} = {v:?}"
                );
                Ok(())
            })
            .expect("the precondition holds");
        assert!(!may_hold_secret("LOG_LEVEL", "info"));
    }
}
