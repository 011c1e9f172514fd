//! Image verification's metrics: verifications by result, cache hits,
//! misses and single-flight waits, and registry latency. The server
//! registers one set and hands it to every verifier it builds (a reload
//! keeps the counts).
use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

use super::{Outcome, VerifyError};

/// The collectors, or none (a verifier of the CLI or of a test counts
/// nothing).
#[derive(Clone, Default)]
pub struct Metrics(Option<Collectors>);

#[derive(Clone)]
struct Collectors {
    verifications: IntCounterVec,
    cache: IntCounterVec,
    registry: HistogramVec,
    credentials: IntCounterVec,
}

/// Registry latency buckets: 1 ms to 10 s.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

impl Metrics {
    /// Registered in `registry`.
    pub fn registered(registry: &Registry) -> Result<Metrics, prometheus::Error> {
        let c = Collectors {
            verifications: IntCounterVec::new(
                Opts::new(
                    "tiergate_image_verifications_total",
                    "Image verification answers, by result: verified, refused, timeout, error.",
                ),
                &["result"],
            )?,
            cache: IntCounterVec::new(
                Opts::new(
                    "tiergate_image_cache_total",
                    "Image verification cache lookups, by result: hit, miss (a verification \
                     ran), wait (another request's verification was waited for).",
                ),
                &["result"],
            )?,
            registry: HistogramVec::new(
                HistogramOpts::new(
                    "tiergate_image_registry_seconds",
                    "Registry time of image verification, by call: tag (tag to digest), \
                     verify (signatures and attestations of one digest).",
                )
                .buckets(BUCKETS.to_vec()),
                &["call"],
            )?,
            credentials: IntCounterVec::new(
                Opts::new(
                    "tiergate_image_credentials_reloads_total",
                    "Reloads of images.credentialsFile after it changed, by result: success, \
                     error (the last good credentials stay).",
                ),
                &["result"],
            )?,
        };
        registry.register(Box::new(c.verifications.clone()))?;
        registry.register(Box::new(c.cache.clone()))?;
        registry.register(Box::new(c.registry.clone()))?;
        registry.register(Box::new(c.credentials.clone()))?;
        Ok(Metrics(Some(c)))
    }

    pub(super) fn verified(&self, r: &Result<Outcome, VerifyError>) {
        let Some(c) = &self.0 else { return };
        let result = match r {
            Ok(Outcome::Verified { .. }) => "verified",
            Ok(Outcome::Refused { .. }) => "refused",
            Err(VerifyError::Timeout(_)) => "timeout",
            Err(_) => "error",
        };
        c.verifications.with_label_values(&[result]).inc();
    }

    pub(super) fn cache(&self, result: &str) {
        if let Some(c) = &self.0 {
            c.cache.with_label_values(&[result]).inc();
        }
    }

    pub(super) fn credentials_reload(&self, ok: bool) {
        if let Some(c) = &self.0 {
            let result = if ok { "success" } else { "error" };
            c.credentials.with_label_values(&[result]).inc();
        }
    }

    pub(super) fn registry(&self, call: &str, took: Duration) {
        if let Some(c) = &self.0 {
            c.registry
                .with_label_values(&[call])
                .observe(took.as_secs_f64());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_counted_by_result() {
        let r = Registry::new();
        let m = Metrics::registered(&r).expect("metrics");
        m.verified(&Ok(Outcome::Verified { digest: "d".into() }));
        m.verified(&Err(VerifyError::Timeout("i".into())));
        m.cache("wait");
        m.registry("tag", Duration::from_millis(3));
        let text = {
            use prometheus::Encoder;
            let mut b = Vec::new();
            prometheus::TextEncoder::new()
                .encode(&r.gather(), &mut b)
                .expect("encode");
            String::from_utf8(b).expect("utf8")
        };
        assert!(text.contains("tiergate_image_verifications_total{result=\"verified\"} 1"));
        assert!(text.contains("tiergate_image_verifications_total{result=\"timeout\"} 1"));
        assert!(text.contains("tiergate_image_cache_total{result=\"wait\"} 1"));
        assert!(text.contains("tiergate_image_registry_seconds_count{call=\"tag\"} 1"));
    }
}
