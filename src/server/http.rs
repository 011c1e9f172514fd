//! Thin HTTP handlers: check method, content type and size, hand the bytes to
//! the admission layer, count and log the record.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tracing::{info, warn};

use super::metrics::Metrics;
use crate::admission::{self, AdmissionRequest, AdmissionSettings, ContextSource, Webhook};
use crate::config::{AuditSettings, Config, OfflineSettings, ServerSettings};
use crate::policy::Engine;
use crate::supply::{Verifier, VerifyError};

/// The configuration in force: the engine built from the policy half, the
/// server's settings, and the digest of the file. Replaced whole on reload.
pub struct Active {
    pub engine: Engine,
    pub server: ServerSettings,
    /// Read with the file, used by nobody here (it is `check`'s).
    offline: OfflineSettings,
    /// The background audit's, read at start-up (a reload keeps it).
    audit: AuditSettings,
    /// FNV-1a of the file's bytes (or of the embedded default).
    pub digest: String,
    /// Image verification, when `images.verify` names images.
    pub verifier: Option<Verifier>,
}

impl Active {
    /// The configuration, with its verifier: `previous`'s when the
    /// `images` section is the same (its cache survives a reload), else a
    /// new one counting into `metrics`. An error (the credentials file
    /// cannot be read) refuses the configuration.
    pub fn new(
        config: Config,
        bytes: Option<&[u8]>,
        previous: Option<&Active>,
        metrics: &Metrics,
    ) -> Result<Self, VerifyError> {
        let images = &config.policy.images;
        let verifier = if images.verify.is_empty() {
            None
        } else {
            match previous.and_then(|p| p.verifier.as_ref()) {
                Some(v) if v.config() == images => Some(v.clone()),
                _ => Some(Verifier::with_metrics(images.clone(), metrics.images())?),
            }
        };
        Ok(Active {
            engine: Engine::new(config.policy),
            server: config.server,
            offline: config.offline,
            audit: config.audit,
            digest: Config::digest(bytes),
            verifier,
        })
    }

    /// The configuration as read (both halves).
    pub fn config(&self) -> Config {
        Config {
            policy: self.engine.config().clone(),
            server: self.server,
            offline: self.offline,
            audit: self.audit.clone(),
        }
    }
}

/// Everything the handlers share.
pub struct AppState {
    active: RwLock<Arc<Active>>,
    pub source: Arc<dyn ContextSource>,
    pub metrics: Metrics,
    /// `--dry-run` on the command line (the config may also turn it on).
    pub dry_run_flag: bool,
    pub ready: AtomicBool,
    pub draining: AtomicBool,
    /// The bytes request bodies may hold at once, in KiB permits: a request
    /// waits for room before its body is read, so the process stays within
    /// its memory at any concurrency.
    inflight: tokio::sync::Semaphore,
    inflight_kib: u32,
    /// The background audit's snapshot and trigger.
    pub audit: super::audit::AuditState,
}

/// The in-flight body budget until one is set (`maxInflightBytes`).
const DEFAULT_INFLIGHT_BYTES: u64 = 32 * 1024 * 1024;

impl AppState {
    pub fn new(
        active: Active,
        source: Arc<dyn ContextSource>,
        metrics: Metrics,
        dry_run_flag: bool,
    ) -> Self {
        AppState {
            active: RwLock::new(Arc::new(active)),
            source,
            metrics,
            dry_run_flag,
            ready: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            inflight: tokio::sync::Semaphore::new(kib(DEFAULT_INFLIGHT_BYTES) as usize),
            inflight_kib: kib(DEFAULT_INFLIGHT_BYTES),
            audit: super::audit::AuditState::default(),
        }
    }

    /// Set the in-flight body budget (before serving).
    pub fn with_inflight_budget(mut self, bytes: u64) -> Self {
        let k = kib(bytes).max(1);
        self.inflight = tokio::sync::Semaphore::new(k as usize);
        self.inflight_kib = k;
        self
    }

    /// The configuration in force.
    pub fn active(&self) -> Arc<Active> {
        match self.active.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Put a new configuration in force (a reload), and export its shape.
    pub fn set_active(&self, a: Active) {
        self.export_config(&a);
        let a = Arc::new(a);
        match self.active.write() {
            Ok(mut g) => *g = a,
            Err(p) => *p.into_inner() = a,
        }
    }

    /// The configuration's shape as metrics (`tiergate_config_*`).
    pub fn export_config(&self, a: &Active) {
        let p = a.engine.config();
        self.metrics.set_config(
            &a.digest,
            self.dry_run_flag || a.server.dry_run,
            p.defaults.tier,
            p.defaults.mode,
        );
    }

    /// Whether the server runs in dry-run (flag or config).
    pub fn dry_run(&self) -> bool {
        self.dry_run_flag || self.active().server.dry_run
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
            && !self.draining.load(Ordering::SeqCst)
            && self.source.ready()
    }
}

pub fn webhook_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/validate", post(validate))
        .route("/mutate", post(mutate))
        .with_state(state)
}

pub fn admin_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/report", get(report_page))
        .route("/report.json", get(report_json))
        .route("/audit", axum::routing::post(audit_now))
        .with_state(state)
}

#[derive(serde::Deserialize)]
struct ReportQuery {
    namespace: Option<String>,
}

/// What /report says when there is no snapshot on this replica.
fn no_report(st: &AppState) -> Response {
    let why = if st.audit.running.load(std::sync::atomic::Ordering::SeqCst) {
        "no audit has finished on this replica yet (only the replica that holds the \
         tiergate-audit Lease audits)\n"
    } else {
        "the background audit is off on this replica (config audit.enabled, and \
         TIERGATE_NAMESPACE or POD_NAMESPACE for its Lease)\n"
    };
    (StatusCode::NOT_FOUND, why).into_response()
}

async fn report_page(
    State(st): State<Arc<AppState>>,
    axum::extract::Query(q): axum::extract::Query<ReportQuery>,
) -> Response {
    match st.audit.snapshot() {
        Some(s) => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            s.html(q.namespace.as_deref()),
        )
            .into_response(),
        None => no_report(&st),
    }
}

async fn report_json(State(st): State<Arc<AppState>>) -> Response {
    match st.audit.snapshot() {
        Some(s) => match serde_json::to_string(&*s) {
            Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        },
        None => no_report(&st),
    }
}

/// `POST /audit`: audit now (on the replica that holds the Lease).
async fn audit_now(State(st): State<Arc<AppState>>) -> Response {
    if !st.audit.running.load(std::sync::atomic::Ordering::SeqCst) {
        return no_report(&st);
    }
    st.audit.trigger.notify_one();
    (StatusCode::ACCEPTED, "audit requested\n").into_response()
}

async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        st.metrics.render(),
    )
        .into_response()
}

async fn readyz(State(st): State<Arc<AppState>>) -> Response {
    if st.is_ready() {
        (StatusCode::OK, "ok\n").into_response()
    } else if st.draining.load(Ordering::SeqCst) {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

async fn validate(
    State(st): State<Arc<AppState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    admit(st, Webhook::Validate, request_timeout(&uri), headers, body).await
}

async fn mutate(
    State(st): State<Arc<AppState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    admit(st, Webhook::Mutate, request_timeout(&uri), headers, body).await
}

/// The apiserver's `?timeout=10s` (the time left for this call).
fn request_timeout(uri: &Uri) -> Option<Duration> {
    uri.query()?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "timeout")
        .and_then(|(_, v)| parse_go_duration(v))
}

/// A Go duration (`10s`, `1m30s`, `500ms`, `1.5s`), as the apiserver formats
/// `?timeout=`. `None` when it does not parse.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_end);
        let n: f64 = num.parse().ok()?;
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_end);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * scale;
        rest = tail;
    }
    Duration::try_from_secs_f64(total).ok()
}

fn plain(status: StatusCode, msg: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        msg,
    )
        .into_response()
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

/// Bodies up to this size are judged on the async worker that read them,
/// when the context source can answer without waiting. A typical review (5
/// to 20 KiB) is judged in well under a millisecond, and handing it to the
/// blocking pool costs two thread switches per request and, under load, one
/// pool thread (with its own allocator heap) per request in flight. Larger
/// bodies still go to the blocking pool, so one huge object cannot stall a
/// worker's other connections; so does a request whose namespace the
/// cluster cache does not know yet (it may wait for it).
pub const INLINE_MAX_BYTES: usize = 64 * 1024;

async fn admit(
    st: Arc<AppState>,
    webhook: Webhook,
    timeout: Option<Duration>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    if let Some(r) = unless_json(&st, webhook, &headers) {
        return r;
    }
    let active = st.active();
    // Room for the body before it is read (its declared length, else the
    // most it may be), waited for within the request's own deadline.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let want = kib(declared.unwrap_or(active.server.max_request_bytes))
        .min(st.inflight_kib)
        .max(1);
    let deadline = timeout.unwrap_or(Duration::from_secs(10));
    let _room = match tokio::time::timeout(deadline, st.inflight.acquire_many(want)).await {
        Ok(Ok(permit)) => permit,
        _ => {
            return refuse(
                &st,
                webhook,
                "busy",
                StatusCode::SERVICE_UNAVAILABLE,
                "no room for the body within the request's deadline",
                "tiergate is at its in-flight request budget; retry\n",
            )
        }
    };
    let bytes = match tokio::time::timeout(
        deadline,
        read_body(&st, webhook, declared, body, &active.server),
    )
    .await
    {
        Ok(Ok(b)) => b,
        Ok(Err(r)) => return r,
        Err(_) => {
            return refuse(
                &st,
                webhook,
                "read",
                StatusCode::REQUEST_TIMEOUT,
                "the body did not arrive within the request's deadline",
                "the request body did not arrive in time\n",
            )
        }
    };
    let settings = AdmissionSettings {
        webhook,
        dry_run: st.dry_run_flag || active.server.dry_run,
        on_error: active.server.on_error,
    };
    let wait = admission::cache_wait_budget(timeout);
    let answer = match judge(&st, active, bytes, settings, wait, timeout).await {
        Ok(a) => a,
        Err(e) => {
            st.metrics.http_error(webhook, "internal");
            return plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("tiergate internal error: {e}\n"),
            );
        }
    };
    record(&st, webhook, &answer, started.elapsed().as_secs_f64());
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    (
        status,
        [(header::CONTENT_TYPE, answer.content_type)],
        answer.body,
    )
        .into_response()
}

/// Count, log and answer a request refused before it is judged.
fn refuse(
    st: &AppState,
    webhook: Webhook,
    error: &'static str,
    status: StatusCode,
    why: &str,
    body: &str,
) -> Response {
    st.metrics.http_error(webhook, error);
    warn!(
        webhook = webhook.name(),
        status = status.as_u16(),
        "rejected: {why}"
    );
    plain(status, body.to_string())
}

/// The 415 answer, unless the body is declared JSON.
fn unless_json(st: &AppState, webhook: Webhook, headers: &HeaderMap) -> Option<Response> {
    (!is_json(headers)).then(|| {
        refuse(
            st,
            webhook,
            "content_type",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content type is not application/json",
            "expected Content-Type: application/json\n",
        )
    })
}

/// Bytes as KiB permits, rounded up.
fn kib(bytes: u64) -> u32 {
    u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX)
}

/// The body, read up to `maxRequestBytes` (413 above, without reading more).
async fn read_body(
    st: &AppState,
    webhook: Webhook,
    declared: Option<u64>,
    body: Body,
    server: &ServerSettings,
) -> Result<axum::body::Bytes, Response> {
    let limit = usize::try_from(server.max_request_bytes).unwrap_or(usize::MAX);
    let too_large = || {
        st.metrics.http_error(webhook, "too_large");
        warn!(
            webhook = webhook.name(),
            status = 413,
            limit,
            "rejected: body over the limit"
        );
        plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body over the limit of {limit} bytes\n"),
        )
    };
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(e) => {
            st.metrics.http_error(webhook, "read");
            Err(plain(
                StatusCode::BAD_REQUEST,
                format!("could not read the request body: {e}\n"),
            ))
        }
    }
}

/// Judge the body: on this worker when it is small and its context needs no
/// wait, else on the blocking pool.
async fn judge(
    st: &AppState,
    active: Arc<Active>,
    bytes: axum::body::Bytes,
    settings: AdmissionSettings,
    wait: Duration,
    timeout: Option<Duration>,
) -> Result<admission::Answer, String> {
    if let Some(v) = active.verifier.clone() {
        return judge_verifying(st, active, bytes, settings, wait, timeout, v).await;
    }
    let source = st.source.clone();
    if bytes.len() > INLINE_MAX_BYTES {
        return tokio::task::spawn_blocking(move || {
            admission::handle_within(&bytes, &active.engine, source.as_ref(), settings, wait)
        })
        .await
        .map_err(|e| e.to_string());
    }
    let req = match AdmissionRequest::from_body(&bytes) {
        Ok(r) => r,
        Err(e) => return Ok(admission::bad_request(e)),
    };
    if let Some(a) = admission::answer_now(&req, &active.engine, source.as_ref(), settings) {
        return Ok(a);
    }
    tokio::task::spawn_blocking(move || {
        admission::answer_within(&req, &active.engine, source.as_ref(), settings, wait)
    })
    .await
    .map_err(|e| e.to_string())
}

/// [`judge`] where image verification is configured: resolve the context
/// first (verification depends on the namespace's tier), verify the images
/// it names within the time left, then decide with what was found.
async fn judge_verifying(
    st: &AppState,
    active: Arc<Active>,
    bytes: axum::body::Bytes,
    settings: AdmissionSettings,
    wait: Duration,
    timeout: Option<Duration>,
    verifier: Verifier,
) -> Result<admission::Answer, String> {
    let source = st.source.clone();
    let large = bytes.len() > INLINE_MAX_BYTES;
    let parsed = if large {
        tokio::task::spawn_blocking(move || AdmissionRequest::from_body(&bytes))
            .await
            .map_err(|e| e.to_string())?
    } else {
        AdmissionRequest::from_body(&bytes)
    };
    let req = match parsed {
        Ok(r) => Arc::new(r),
        Err(e) => return Ok(admission::bad_request(e)),
    };
    let mut resolved = match source.try_context(&req, active.engine.config()) {
        admission::Lookup::Ready(r) => r,
        admission::Lookup::WouldBlock => {
            let (req, active, source) = (req.clone(), active.clone(), source.clone());
            tokio::task::spawn_blocking(move || {
                source.context_within(&req, active.engine.config(), wait)
            })
            .await
            .map_err(|e| e.to_string())?
        }
    };
    if let Some((images, unchanged)) =
        admission::images_to_verify(&req, active.engine.config(), settings, &resolved.ctx)
    {
        let deadline = verification_deadline(verifier.config().budget(), timeout);
        let facts = crate::supply::image_facts(
            &verifier,
            &images,
            resolved.ctx.tier.number(),
            unchanged,
            deadline,
        )
        .await;
        resolved.ctx.images = crate::policy::Fact::Known(Arc::new(facts));
    }
    if large {
        return tokio::task::spawn_blocking(move || {
            admission::answer_resolved(&req, &active.engine, settings, resolved)
        })
        .await
        .map_err(|e| e.to_string());
    }
    Ok(admission::answer_resolved(
        &req,
        &active.engine,
        settings,
        resolved,
    ))
}

/// The time image verification may take: the config's budget, and never
/// more than half of what the apiserver's `?timeout=` gives the request
/// (the rest is for the context, the engine and the answer's way back).
pub fn verification_deadline(budget: Duration, timeout: Option<Duration>) -> Duration {
    match timeout {
        Some(t) => budget.min(t / 2),
        None => budget,
    }
}

/// Longest request field written to a log line: the fields come from the
/// request, and a 5 MB name must not make a 5 MB line.
const LOG_FIELD_MAX: usize = 253;

/// `s` cut to [`LOG_FIELD_MAX`] bytes on a character boundary.
fn bounded(s: &str) -> &str {
    if s.len() <= LOG_FIELD_MAX {
        return s;
    }
    let mut end = LOG_FIELD_MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Each of `items` once, in order, joined by `, ` (a log field: one string
/// instead of a debug-formatted list).
fn distinct<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let mut seen: Vec<&str> = Vec::new();
    let mut out = String::new();
    for i in items {
        if seen.contains(&i) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(bounded(i));
        seen.push(i);
    }
    out
}

/// Count the answer and log one line for it.
fn record(st: &AppState, webhook: Webhook, answer: &admission::Answer, secs: f64) {
    let hook = webhook.name();
    if let Some(bad) = &answer.bad_request {
        st.metrics.http_error(webhook, "bad_request");
        let error = bad.to_string();
        warn!(
            webhook = hook,
            status = 400,
            error = bounded(&error),
            "rejected: not an AdmissionReview"
        );
    }
    let Some(rec) = &answer.record else { return };
    st.metrics.record(rec, secs);
    // One event with every field: recording them one by one on a span
    // re-encodes the span's JSON fields at each call.
    info!(
        webhook = hook,
        uid = bounded(&rec.uid),
        kind = bounded(&rec.kind),
        namespace = bounded(rec.namespace.as_deref().unwrap_or("")),
        object_name = bounded(&rec.name),
        owner = rec.owner.as_deref().map(bounded),
        operation = rec.operation,
        decision = rec.decision.name(),
        duration_ms = secs * 1000.0,
        allowed = rec.allowed,
        tier = rec.tier.map(|t| t.number()),
        mode = rec.mode.map(|m| m.name()),
        findings = rec.findings.len(),
        rules = distinct(rec.findings.iter().map(|f| f.rule)),
        fixes = distinct(rec.fixes.iter().copied()),
        exempted = rec.exempted.len(),
        exceptions = distinct(rec.exceptions.iter().map(|(_, e)| e.as_str())),
        error = rec.error.map(|e| e.name()),
        request_dry_run = rec.request_dry_run,
        "admission decided"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_fields_are_bounded() {
        let huge = "n".repeat(5 * 1024 * 1024);
        assert_eq!(bounded(&huge).len(), LOG_FIELD_MAX);
        assert_eq!(bounded("web"), "web");
        // Cut on a character boundary.
        let multi = "é".repeat(400);
        let b = bounded(&multi);
        assert!(b.len() <= LOG_FIELD_MAX && b.chars().all(|c| c == 'é'));
    }

    #[test]
    fn verification_stays_inside_the_request_timeout() {
        let budget = Duration::from_secs(2);
        assert_eq!(verification_deadline(budget, None), budget);
        assert_eq!(
            verification_deadline(budget, Some(Duration::from_secs(10))),
            budget
        );
        assert_eq!(
            verification_deadline(budget, Some(Duration::from_secs(3))),
            Duration::from_millis(1500)
        );
    }

    #[test]
    fn go_durations_parse() {
        let d = |s| parse_go_duration(s);
        assert_eq!(d("10s"), Some(Duration::from_secs(10)));
        assert_eq!(d("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(d("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(d("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(d("0s"), Some(Duration::ZERO));
        for bad in ["", "10", "s", "10x", "-1s", "1..2s"] {
            assert_eq!(d(bad), None, "{bad}");
        }
    }

    #[test]
    fn timeout_comes_from_the_query() {
        let u: Uri = "/validate?timeout=8s".parse().unwrap();
        assert_eq!(request_timeout(&u), Some(Duration::from_secs(8)));
        assert_eq!(
            admission::cache_wait_budget(request_timeout(&u)),
            Duration::from_secs(1)
        );
        let u: Uri = "/validate?x=1&timeout=2s".parse().unwrap();
        assert_eq!(
            admission::cache_wait_budget(request_timeout(&u)),
            Duration::from_millis(500)
        );
        let u: Uri = "/validate".parse().unwrap();
        assert_eq!(request_timeout(&u), None);
    }
}
