//! Prometheus metrics. Labels are bounded: webhook, operation, kind (known
//! kinds, else `other`), decision, rule, tier, action, result. No namespaces
//! or object names.
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::admission::{DecisionRecord, Webhook};
use crate::policy::{rules, Mode, Tier};

/// The duration buckets: 0.1 ms to 1 s.
pub const DURATION_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    findings: IntCounterVec,
    patches: IntCounterVec,
    exemptions: IntCounterVec,
    exceptions_applied: IntCounterVec,
    errors: IntCounterVec,
    config_reloads: IntCounterVec,
    tls_reloads: IntCounterVec,
    cert_expiry: IntGauge,
    config_info: IntGaugeVec,
    config_dry_run: IntGauge,
    config_default_tier: IntGauge,
    config_default_mode: IntGaugeVec,
    config_weakened: IntCounter,
    /// Image verification's (`tiergate_image_*`), shared by every verifier
    /// the server builds.
    images: crate::supply::Metrics,
}

/// A kind as a bounded label value: a kind some rule judges, `Namespace`,
/// `EphemeralContainers`, else `other`.
pub fn kind_label(kind: &str) -> &'static str {
    static KNOWN: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    let known = KNOWN.get_or_init(|| {
        let mut v: Vec<&'static str> = vec!["Namespace", "EphemeralContainers"];
        for k in rules::ALL.iter().flat_map(|r| r.kinds().names()) {
            if !v.contains(&k) {
                v.push(k);
            }
        }
        v
    });
    known
        .iter()
        .find(|k| **k == kind)
        .copied()
        .unwrap_or("other")
}

/// Register a collector and hand it back.
fn register<C: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    c: C,
) -> Result<C, prometheus::Error> {
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            register(
                &registry,
                IntCounterVec::new(Opts::new(name, help), labels)?,
            )
        };
        let requests = counter(
            "tiergate_admission_requests_total",
            "Admission requests answered, by webhook, operation, kind and decision.",
            &["webhook", "operation", "kind", "decision"],
        )?;
        let duration = register(
            &registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "tiergate_admission_duration_seconds",
                    "Time to answer an admission request.",
                )
                .buckets(DURATION_BUCKETS.to_vec()),
                &["webhook"],
            )?,
        )?;
        let findings = counter(
            "tiergate_rule_findings_total",
            "Rule findings, by rule, namespace tier and action.",
            &["rule", "tier", "action"],
        )?;
        let patches = counter(
            "tiergate_patches_total",
            "Fixes sent in a patch, by rule.",
            &["rule"],
        )?;
        let exemptions = counter(
            "tiergate_exemptions_total",
            "Exemptions applied, by rule.",
            &["rule"],
        )?;
        let exceptions_applied = counter(
            "tiergate_exceptions_applied_total",
            "Findings' rules excepted, by rule: config exemptions and TierExceptions alike.",
            &["rule"],
        )?;
        let errors = counter(
            "tiergate_errors_total",
            "Requests tiergate could not judge or read, by webhook and error kind.",
            &["webhook", "kind"],
        )?;
        let config_reloads = counter(
            "tiergate_config_reloads_total",
            "Config reloads, by result.",
            &["result"],
        )?;
        let tls_reloads = counter(
            "tiergate_tls_reloads_total",
            "Serving certificate reloads, by result.",
            &["result"],
        )?;
        let cert_expiry = register(
            &registry,
            IntGauge::new(
                "tiergate_tls_cert_expiry_timestamp_seconds",
                "When the serving certificate expires (Unix seconds).",
            )?,
        )?;
        let gauge = |name: &str, help: &str| register(&registry, IntGauge::new(name, help)?);
        let config_info = register(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "tiergate_config_info",
                    "The configuration in force: 1 for its digest (FNV-1a of the file).",
                ),
                &["hash"],
            )?,
        )?;
        let config_dry_run = gauge(
            "tiergate_config_dry_run",
            "1 when the server denies and patches nothing (--dry-run or dryRun: true).",
        )?;
        let config_default_tier = gauge(
            "tiergate_config_default_tier",
            "The tier (1..5) of namespaces without a tier label.",
        )?;
        let config_default_mode = register(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "tiergate_config_default_mode",
                    "1 for the mode of namespaces without a mode label.",
                ),
                &["mode"],
            )?,
        )?;
        let config_weakened = register(
            &registry,
            IntCounter::new(
                "tiergate_config_weakened_total",
                "Reloads that made the policy weaker than the one running (logged at warn).",
            )?,
        )?;
        let build_info = register(
            &registry,
            IntGaugeVec::new(
                Opts::new("tiergate_build_info", "tiergate build information."),
                &["version"],
            )?,
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        // Series that exist from the start, so dashboards and alerts see 0.
        for r in ["success", "error"] {
            config_reloads.with_label_values(&[r]);
            tls_reloads.with_label_values(&[r]);
        }
        for w in [Webhook::Validate, Webhook::Mutate] {
            duration.with_label_values(&[w.name()]);
        }
        let images = crate::supply::Metrics::registered(&registry)?;
        Ok(Metrics {
            images,
            registry,
            requests,
            duration,
            findings,
            patches,
            exemptions,
            exceptions_applied,
            errors,
            config_reloads,
            tls_reloads,
            cert_expiry,
            config_info,
            config_dry_run,
            config_default_tier,
            config_default_mode,
            config_weakened,
        })
    }

    /// Image verification's metrics, for a verifier.
    pub fn images(&self) -> crate::supply::Metrics {
        self.images.clone()
    }

    /// Export the shape of the configuration in force.
    pub fn set_config(&self, hash: &str, dry_run: bool, tier: Tier, mode: Mode) {
        self.config_info.reset();
        self.config_info.with_label_values(&[hash]).set(1);
        self.config_dry_run.set(i64::from(dry_run));
        self.config_default_tier.set(i64::from(tier.number()));
        self.config_default_mode.reset();
        self.config_default_mode
            .with_label_values(&[mode.name()])
            .set(1);
    }

    /// Count a reload that weakened the policy.
    pub fn config_weakened(&self) {
        self.config_weakened.inc();
    }

    /// Count one decision.
    pub fn record(&self, rec: &DecisionRecord, seconds: f64) {
        self.requests
            .with_label_values(&[
                rec.webhook,
                rec.operation,
                kind_label(&rec.kind),
                rec.decision.name(),
            ])
            .inc();
        self.duration
            .with_label_values(&[rec.webhook])
            .observe(seconds);
        const TIERS: [&str; 6] = ["", "1", "2", "3", "4", "5"];
        let tier = rec
            .tier
            .and_then(|t| TIERS.get(usize::from(t.number())))
            .copied()
            .unwrap_or_default();
        // The validating side owns findings; the mutating side owns patches.
        // An object a controller made is judged, but its findings are its
        // owner's: counted once, at the owner.
        if rec.webhook == Webhook::Validate.name() && rec.owner.is_none() {
            // One series lookup per run of the same rule and action (a
            // rule's findings are together: one per container, say).
            let mut rest = rec.findings.as_slice();
            while let Some(f) = rest.first() {
                let n = rest
                    .iter()
                    .take_while(|g| g.rule == f.rule && g.action == f.action)
                    .count();
                self.findings
                    .with_label_values(&[f.rule, tier, f.action.name()])
                    .inc_by(n as u64);
                rest = &rest[n..];
            }
            for (rule, _) in &rec.exempted {
                self.exemptions.with_label_values(&[rule]).inc();
                self.exceptions_applied.with_label_values(&[rule]).inc();
            }
            for (rule, _) in &rec.exceptions {
                self.exceptions_applied.with_label_values(&[rule]).inc();
            }
        } else if rec.decision == crate::admission::Decision::Patch {
            for rule in &rec.fixes {
                self.patches.with_label_values(&[rule]).inc();
            }
        }
        if let Some(e) = rec.error {
            self.errors
                .with_label_values(&[rec.webhook, e.name()])
                .inc();
        }
    }

    /// Count a request that was not a review (400, 413, 415...).
    pub fn http_error(&self, webhook: Webhook, kind: &'static str) {
        self.errors.with_label_values(&[webhook.name(), kind]).inc();
    }

    pub fn config_reload(&self, ok: bool) {
        self.config_reloads
            .with_label_values(&[if ok { "success" } else { "error" }])
            .inc();
    }

    pub fn tls_reload(&self, ok: bool) {
        self.tls_reloads
            .with_label_values(&[if ok { "success" } else { "error" }])
            .inc();
    }

    pub fn set_cert_expiry(&self, unix_seconds: i64) {
        self.cert_expiry.set(unix_seconds);
    }

    /// The registry, for collectors owned elsewhere (the cluster caches).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let enc = TextEncoder::new();
        if enc.encode(&self.registry.gather(), &mut buf).is_err() {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}
