//! `tiergate export admission-policies`: the catalog as policies the
//! apiserver runs itself ([`crate::export`]), on stdout or in a directory,
//! with the list of what stays in the webhook.
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use crate::config::Config;
use crate::export::{self, ExportOptions};

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(subcommand)]
    pub what: ExportWhat,
}

#[derive(Debug, Subcommand)]
pub enum ExportWhat {
    /// ValidatingAdmissionPolicies and bindings for every rule CEL can judge
    /// from the object alone, and the list of what stays in the webhook.
    AdmissionPolicies(AdmissionPoliciesArgs),
}

#[derive(Debug, Args)]
pub struct AdmissionPoliciesArgs {
    /// Config file (YAML); the embedded defaults when absent.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The apiserver's version, 1.30 to 1.37.
    #[arg(long, default_value = "1.37")]
    pub kube_version: String,
    /// Write admission-policies.yaml and webhook-only.md (and, with
    /// --webhooks, webhooks-hybrid.yaml) here instead of printing the
    /// policies.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Webhook configurations (YAML, as deploy/base/webhooks.yaml) to narrow
    /// for hybrid mode: the apiserver then calls tiergate only for what the
    /// policies leave, and for fixes that may change the object.
    #[arg(long)]
    pub webhooks: Option<PathBuf>,
    /// Namespaces never judged (the shipped webhooks' exclusions by default).
    #[arg(long = "exclude-namespace", value_name = "NS",
          default_values_t = crate::audit::EXCLUDED.iter().map(|s| s.to_string()).collect::<Vec<_>>())]
    pub exclude: Vec<String>,
    /// No tiergate mutating webhook runs beside the policies: bind each
    /// fix's MutatingAdmissionPolicy in every tier the fix is on (by
    /// default, where hybrid mode calls the mutating webhook anyway, the
    /// webhook applies the fix in that call; see webhook-only.md).
    #[arg(long, conflicts_with = "fixes_in_webhook")]
    pub without_mutating_webhook: bool,
    /// In hybrid mode the mutating webhook applies every fix and no
    /// MutatingAdmissionPolicy is bound: one webhook call costs the
    /// apiserver less than every fix's CEL on writes that need many fixes
    /// (see the README's measurements).
    #[arg(long)]
    pub fixes_in_webhook: bool,
}

/// `1.37` (or `v1.37`) → 37.
fn kube_minor(v: &str) -> anyhow::Result<u32> {
    let t = v.trim().trim_start_matches('v');
    t.strip_prefix("1.")
        .map(|m| m.split('.').next().unwrap_or(m))
        .and_then(|m| m.parse::<u32>().ok())
        .ok_or_else(|| anyhow::anyhow!("--kube-version {v:?}: expected 1.30 to 1.37"))
}

/// `tiergate export`
pub fn export(a: ExportArgs) -> anyhow::Result<ExitCode> {
    let ExportWhat::AdmissionPolicies(a) = a.what;
    let (cfg, bytes) = Config::load(a.config.as_deref())?;
    let opts = ExportOptions {
        kube_minor: kube_minor(&a.kube_version)?,
        excluded_namespaces: a.exclude.clone(),
        config_digest: Config::digest(bytes.as_deref()),
        without_mutating_webhook: a.without_mutating_webhook,
        fixes_in_webhook: a.fixes_in_webhook,
    };
    let exported = export::admission_policies(&cfg, &opts)?;
    let policies = export::to_yaml(&exported.objects)?;
    let stays = export::stays_markdown(&exported);
    let hybrid = match &a.webhooks {
        None => None,
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading --webhooks {}", p.display()))?;
            let src = crate::manifest::parse_source(&p.display().to_string(), Some(p), &text)
                .map_err(|e| anyhow::anyhow!("--webhooks {}: {e}", p.display()))?;
            let mut narrowed = Vec::new();
            for doc in src.documents.into_iter().filter_map(|d| d.value) {
                match doc.get("kind").and_then(serde_json::Value::as_str) {
                    Some("ValidatingWebhookConfiguration") => {
                        narrowed.push(export::hybrid_webhooks(&doc, &cfg.policy));
                    }
                    Some("MutatingWebhookConfiguration") => {
                        narrowed.push(export::hybrid_mutating_webhooks(
                            &doc,
                            &cfg.policy,
                            &exported.fixed,
                        ));
                    }
                    _ => {}
                }
            }
            if narrowed.is_empty() {
                anyhow::bail!(
                    "--webhooks {}: no ValidatingWebhookConfiguration or \
                     MutatingWebhookConfiguration in it",
                    p.display()
                );
            }
            Some(export::to_yaml(&narrowed)?)
        }
    };
    match &a.out {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            let write = |name: &str, text: &str| {
                let p = dir.join(name);
                std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))
            };
            write("admission-policies.yaml", &policies)?;
            write("webhook-only.md", &stays)?;
            if let Some(h) = &hybrid {
                write("webhooks-hybrid.yaml", h)?;
            }
            eprintln!(
                "tiergate: {} rules as ValidatingAdmissionPolicies and {} fixes as \
                 MutatingAdmissionPolicies in {}; what stays in the webhook is in webhook-only.md",
                exported.covered.len(),
                exported.fixed.len(),
                dir.display()
            );
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(policies.as_bytes())?;
            if let Some(h) = &hybrid {
                out.write_all(h.as_bytes())?;
            }
            eprint!("{stays}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse() {
        assert_eq!(kube_minor("1.37").expect("1.37"), 37);
        assert_eq!(kube_minor("v1.30.2").expect("v1.30.2"), 30);
        assert!(kube_minor("2.0").is_err());
    }
}
