//! Registry credentials from a `.dockerconfigjson` file (the key of a
//! `kubernetes.io/dockerconfigjson` Secret, mounted): `auths` by registry,
//! each with `auth` (base64 of `user:password`) or `username` and
//! `password`. Registries it does not name are read anonymously.
use std::collections::BTreeMap;

use base64::Engine as _;
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// User and password by registry host (`host[:port]`).
#[derive(Default, Clone)]
pub struct Credentials {
    by_host: BTreeMap<String, (String, String)>,
}

impl std::fmt::Debug for Credentials {
    // Never the passwords.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.by_host.keys()).finish()
    }
}

/// `https://index.docker.io/v1/` → `index.docker.io`; `host:5000` stays.
fn host_of(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k).to_string()
}

impl Credentials {
    /// The file's contents; an error names what is wrong (never a
    /// password).
    pub fn parse(bytes: &[u8]) -> Result<Credentials, String> {
        let cfg: DockerConfig =
            serde_json::from_slice(bytes).map_err(|e| format!("not a .dockerconfigjson ({e})"))?;
        let mut by_host = BTreeMap::new();
        for (registry, e) in cfg.auths {
            let pair = match (e.username, e.password, e.auth) {
                (Some(u), Some(p), _) => (u, p),
                (_, _, Some(a)) => {
                    let raw = base64::engine::general_purpose::STANDARD
                        .decode(a.trim())
                        .map_err(|_| format!("auths.{registry:?}.auth is not base64"))?;
                    let text = String::from_utf8(raw)
                        .map_err(|_| format!("auths.{registry:?}.auth is not UTF-8"))?;
                    let (u, p) = text
                        .split_once(':')
                        .ok_or_else(|| format!("auths.{registry:?}.auth is not user:password"))?;
                    (u.to_string(), p.to_string())
                }
                _ => {
                    return Err(format!(
                        "auths.{registry:?} has neither auth nor username and password"
                    ))
                }
            };
            by_host.insert(host_of(&registry), pair);
        }
        Ok(Credentials { by_host })
    }

    fn get(&self, registry: &str) -> Option<&(String, String)> {
        self.by_host.get(registry).or_else(|| {
            // Docker Hub is written many ways.
            let hub = ["docker.io", "index.docker.io", "registry-1.docker.io"];
            if hub.contains(&registry) {
                hub.iter().find_map(|h| self.by_host.get(*h))
            } else {
                None
            }
        })
    }

    /// For oci-client.
    pub fn oci(&self, registry: &str) -> RegistryAuth {
        match self.get(registry) {
            Some((u, p)) => RegistryAuth::Basic(u.clone(), p.clone()),
            None => RegistryAuth::Anonymous,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_are_read_by_host() {
        let c = Credentials::parse(
            br#"{"auths": {
              "https://index.docker.io/v1/": {"auth": "aHViOnNlY3JldA=="},
              "reg.example:5000": {"username": "ci", "password": "p:w"}}}"#,
        )
        .expect("parse");
        assert_eq!(
            c.oci("docker.io"),
            RegistryAuth::Basic("hub".into(), "secret".into())
        );
        assert_eq!(
            c.oci("reg.example:5000"),
            RegistryAuth::Basic("ci".into(), "p:w".into())
        );
        assert_eq!(c.oci("ghcr.io"), RegistryAuth::Anonymous);
        assert!(!format!("{c:?}").contains("secret"));
    }

    #[test]
    fn bad_files_are_errors_that_name_the_entry() {
        for (text, want) in [
            (&b"{"[..], "not a .dockerconfigjson"),
            (br#"{"auths": {"r": {"auth": "!!"}}}"#, "not base64"),
            (
                br#"{"auths": {"r": {"auth": "bm9jb2xvbg=="}}}"#,
                "not user:password",
            ),
            (br#"{"auths": {"r": {}}}"#, "neither auth"),
        ] {
            let e = Credentials::parse(text).expect_err("bad");
            assert!(e.contains(want), "{e}");
        }
    }
}
