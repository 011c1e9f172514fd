//! Start, run and stop the server; `tiergate certs`.
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use base64::Engine as _;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use super::http::{admin_router, webhook_router, Active, AppState};
use super::metrics::Metrics;
use super::reload::{self, ConfigFile, Reloader, TlsFiles};
use super::tls::{self, CertStore};
use super::{CertsArgs, ServeArgs};
use crate::admission::{ContextSource, DefaultsSource};
use crate::cluster::{self, CacheMetrics, ClusterSource, Watches};
use crate::config::Config;

/// Where the serving certificate comes from.
#[derive(Debug, Clone)]
pub enum TlsSource {
    /// PEM files, reloaded when they change.
    Files { cert: PathBuf, key: PathBuf },
    /// A CA and certificate made at start for these names; the CA bundle is
    /// written to `ca_out` when given.
    Generate {
        names: Vec<String>,
        ca_out: Option<PathBuf>,
    },
}

/// Whether namespace tiers and facts come from the cluster.
#[derive(Clone, Default)]
pub enum ClusterMode {
    /// Config defaults and Namespace objects' own labels only.
    #[default]
    Off,
    /// Watch the cluster when a kubeconfig (`KUBECONFIG`, `~/.kube/config`)
    /// or in-cluster config is found; else as `Off`.
    Auto,
    /// Watch the cluster through this client.
    Client(kube::Client),
}

/// Everything [`start`] needs.
#[derive(Clone)]
pub struct ServeOptions {
    /// Config file; the embedded defaults when `None`.
    pub config: Option<PathBuf>,
    pub tls: TlsSource,
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    /// `--dry-run`.
    pub dry_run: bool,
    /// How long in-flight requests may take to finish on shutdown.
    pub grace: Duration,
    /// How long to keep accepting after shutdown starts, with `/readyz`
    /// answering 503, while the endpoints drop this pod.
    pub shutdown_delay: Duration,
    /// How long a connection may take to send its first request.
    pub first_request_timeout: Duration,
    /// How often the watched files are also polled.
    pub poll: Duration,
    /// Where namespace tier and mode come from when the cluster is not
    /// watched.
    pub context_source: Arc<dyn ContextSource>,
    /// Whether to watch the cluster (then the cluster caches are the context
    /// source).
    pub cluster: ClusterMode,
}

impl ServeOptions {
    pub fn from_args(a: &ServeArgs) -> Self {
        let tls = match (&a.tls_cert, &a.tls_key) {
            (Some(cert), Some(key)) => TlsSource::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
            _ => TlsSource::Generate {
                names: tls::default_serve_names(),
                ca_out: Some(a.ca_out.clone()),
            },
        };
        ServeOptions {
            config: a.config.clone(),
            tls,
            listen: a.listen,
            admin_listen: a.admin_listen,
            dry_run: a.dry_run,
            grace: Duration::from_secs(20),
            shutdown_delay: Duration::from_secs(a.shutdown_delay),
            first_request_timeout: FIRST_REQUEST_TIMEOUT,
            poll: Duration::from_secs(10),
            context_source: Arc::new(DefaultsSource),
            cluster: if a.no_cluster {
                ClusterMode::Off
            } else {
                ClusterMode::Auto
            },
        }
    }

    /// Both ports on 127.0.0.1, chosen by the OS; a generated certificate;
    /// embedded config. For tests and local runs.
    pub fn local() -> Self {
        ServeOptions {
            config: None,
            tls: TlsSource::Generate {
                names: tls::default_serve_names(),
                ca_out: None,
            },
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            dry_run: false,
            grace: Duration::from_secs(10),
            shutdown_delay: Duration::ZERO,
            first_request_timeout: FIRST_REQUEST_TIMEOUT,
            poll: Duration::from_secs(10),
            context_source: Arc::new(DefaultsSource),
            cluster: ClusterMode::Off,
        }
    }
}

/// A running server.
pub struct Handle {
    /// The webhook (HTTPS) address.
    pub addr: SocketAddr,
    /// The admin (HTTP) address.
    pub admin_addr: SocketAddr,
    /// The generated CA (PEM), when the certificate was generated.
    pub ca_pem: Option<String>,
    state: Arc<AppState>,
    shutdown_tx: watch::Sender<bool>,
    admin_shutdown_tx: watch::Sender<bool>,
    webhook_task: tokio::task::JoinHandle<()>,
    admin_task: tokio::task::JoinHandle<()>,
    reload_task: Option<tokio::task::JoinHandle<()>>,
    _watcher: Option<notify::RecommendedWatcher>,
    cluster: Option<Watches>,
    audit_task: Option<tokio::task::JoinHandle<()>>,
    policies_task: Option<tokio::task::JoinHandle<()>>,
    facts_task: Option<tokio::task::JoinHandle<()>>,
    shutdown_delay: Duration,
}

impl Handle {
    /// Whether /readyz answers 200.
    pub fn is_ready(&self) -> bool {
        self.state.is_ready()
    }

    /// Drain and stop: readiness fails at once, the listener stops accepting,
    /// in-flight requests finish (bounded by the grace period), then the
    /// admin port closes.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        self.state.draining.store(true, Ordering::SeqCst);
        if !self.shutdown_delay.is_zero() {
            info!(
                delay_seconds = self.shutdown_delay.as_secs_f64(),
                "shutting down: /readyz answers 503; still accepting while the endpoints drop this pod"
            );
            tokio::time::sleep(self.shutdown_delay).await;
        }
        info!(
            "draining: no new connections; HTTP/2 connections get GOAWAY, HTTP/1.1 answers close"
        );
        let _ = self.shutdown_tx.send(true);
        let _ = self.webhook_task.await;
        if let Some(t) = self.reload_task {
            let _ = t.await;
        }
        let _ = self.admin_shutdown_tx.send(true);
        let _ = self.admin_task.await;
        for t in [
            self.audit_task.take(),
            self.policies_task.take(),
            self.facts_task.take(),
        ]
        .into_iter()
        .flatten()
        {
            t.abort();
        }
        if let Some(w) = self.cluster.as_mut() {
            w.stop();
        }
        info!("stopped");
        Ok(())
    }
}

async fn until(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// The serving certificate, from files or generated.
struct Serving {
    acceptor: TlsAcceptor,
    /// The files to reload, with the contents read.
    files: Option<TlsFiles>,
    /// The generated CA, when generated.
    ca_pem: Option<String>,
}

fn serving_certificate(tls: &TlsSource, metrics: &Metrics) -> anyhow::Result<Serving> {
    let (pair, files, ca_pem) = match tls {
        TlsSource::Files { cert, key } => {
            let c = std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?;
            let k = std::fs::read(key).with_context(|| format!("reading {}", key.display()))?;
            let pair = tls::load_pair(&c, &k)
                .with_context(|| format!("loading {} and {}", cert.display(), key.display()))?;
            (pair, Some((cert.clone(), key.clone(), c, k)), None)
        }
        TlsSource::Generate { names, ca_out } => {
            let g = tls::generate(names)?;
            if let Some(out) = ca_out {
                std::fs::write(out, &g.ca_pem)
                    .with_context(|| format!("writing the CA bundle to {}", out.display()))?;
                info!(
                    ca = %out.display(),
                    "generated a self-signed CA and serving certificate; the CA bundle is in {} \
                     (use it with curl --cacert, or base64 as a webhook caBundle)",
                    out.display()
                );
            }
            let pair = tls::load_pair(g.cert_pem.as_bytes(), g.key_pem.as_bytes())?;
            (pair, None, Some(g.ca_pem))
        }
    };
    metrics.set_cert_expiry(pair.not_after);
    let store = Arc::new(CertStore::new(pair.key));
    let acceptor = TlsAcceptor::from(Arc::new(tls::server_config(store.clone())?));
    Ok(Serving {
        acceptor,
        files: files.map(|(cert, key, c, k)| TlsFiles {
            cert,
            key,
            store,
            last: Some((c, k)),
        }),
        ca_pem,
    })
}

/// The kube client to watch the cluster with, if any.
async fn cluster_client(mode: ClusterMode) -> Option<kube::Client> {
    match mode {
        ClusterMode::Off => {
            info!("cluster facts are off (--no-cluster): namespace tiers come from the config defaults, namespace-fact rules report unknown");
            None
        }
        ClusterMode::Client(c) => Some(c),
        ClusterMode::Auto => match kube::Client::try_default().await {
            Ok(c) => Some(c),
            Err(e) => {
                info!(reason = %e, "no cluster configuration found (KUBECONFIG, ~/.kube/config or in-cluster): cluster facts are off; namespace tiers come from the config defaults, namespace-fact rules report unknown");
                None
            }
        },
    }
}

/// The context source: the cluster caches when watching, else `fallback`.
fn context_source(
    client: Option<kube::Client>,
    fallback: Arc<dyn ContextSource>,
    metrics: &Metrics,
) -> anyhow::Result<(Arc<dyn ContextSource>, Option<Watches>)> {
    let Some(client) = client else {
        return Ok((fallback, None));
    };
    let cm = CacheMetrics::new().context("cluster metrics")?;
    cm.register(metrics.registry()).context("cluster metrics")?;
    let watches = cluster::spawn(client, cm);
    let em = cluster::ExceptionMetrics::new(watches.caches.clone()).context("exception metrics")?;
    metrics
        .registry()
        .register(Box::new(em))
        .context("exception metrics")?;
    info!(resources = ?cluster::watch::RESOURCES, "watching the cluster; not ready until every cache has synced");
    let src: Arc<dyn ContextSource> = Arc::new(ClusterSource::new(watches.caches.clone()));
    Ok((src, Some(watches)))
}

/// The admin server (`/metrics`, `/livez`, `/readyz`), until `shutdown`.
fn spawn_admin(
    admin: TcpListener,
    state: Arc<AppState>,
    shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let app = admin_router(state);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(admin, app)
            .with_graceful_shutdown(until(shutdown))
            .await
        {
            warn!(error = %e, "admin server failed");
        }
    })
}

async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))
}

/// Start the server in the current tokio runtime.
pub async fn start(opts: ServeOptions) -> anyhow::Result<Handle> {
    crate::install_crypto_provider();
    let metrics = Metrics::new().context("metrics")?;
    let (config, config_bytes) = Config::load(opts.config.as_deref())?;
    let serving = serving_certificate(&opts.tls, &metrics)?;
    let client = cluster_client(opts.cluster.clone()).await;
    let (source, cluster) = context_source(client.clone(), opts.context_source.clone(), &metrics)?;
    let budget = config.server.max_inflight_bytes;
    let audit_settings = config.audit.clone();
    let active = Active::new(config, config_bytes.as_deref(), None, &metrics)
        .context("image verification")?;
    let state =
        Arc::new(AppState::new(active, source, metrics, opts.dry_run).with_inflight_budget(budget));
    state.export_config(&state.active());
    let audit_task = match (&client, &cluster) {
        (Some(c), Some(w)) => {
            let am = crate::audit::report::AuditMetrics::new(
                state.metrics.registry(),
                audit_settings.namespace_metrics,
            )
            .context("audit metrics")?;
            super::audit::spawn(
                c.clone(),
                w.caches.clone(),
                state.clone(),
                audit_settings,
                am,
            )
        }
        _ => None,
    };
    let policies_task = match &client {
        Some(c) => {
            let pm = super::policies::PolicyMetrics::new(state.metrics.registry())
                .context("admission-policies metrics")?;
            super::policies::spawn(c.clone(), state.clone(), pm)
        }
        None => None,
    };
    let facts_task = match (&client, &cluster) {
        (Some(c), Some(w)) => {
            let fm = super::facts::FactsMetrics::new(state.metrics.registry())
                .context("namespace-facts metrics")?;
            super::facts::spawn(c.clone(), w.caches.clone(), state.clone(), fm)
        }
        _ => {
            use crate::policy::config::AdmissionPolicies;
            if matches!(
                state.active().engine.config().admission_policies,
                AdmissionPolicies::Hybrid | AdmissionPolicies::Managed
            ) {
                warn!("admissionPolicies: hybrid and managed need the cluster caches to write each namespace's NamespaceFacts: without them the policies of the rules that read cluster facts find no params and refuse writes in enforce namespaces");
            }
            None
        }
    };

    let listener = bind(opts.listen).await?;
    let admin = bind(opts.admin_listen).await?;
    let addr = listener.local_addr()?;
    let admin_addr = admin.local_addr()?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (admin_shutdown_tx, admin_shutdown_rx) = watch::channel(false);
    let admin_task = spawn_admin(admin, state.clone(), admin_shutdown_rx);
    let webhook_task = tokio::spawn(serve_webhook(
        listener,
        serving.acceptor,
        webhook_router(state.clone()),
        shutdown_rx.clone(),
        opts.grace,
        opts.first_request_timeout,
    ));
    let reloader = Reloader {
        tls: serving.files,
        config: opts.config.clone().map(|path| ConfigFile {
            path,
            last: config_bytes,
        }),
        state: state.clone(),
        credentials_error: None,
    };
    let (watcher, reload_task) = match reloader.tls.is_some() || reloader.config.is_some() {
        true => {
            let (w, t) = reload::spawn(reloader, opts.poll, shutdown_rx);
            (w, Some(t))
        }
        false => (None, None),
    };

    state.ready.store(true, Ordering::SeqCst);
    info!(
        webhook_addr = %addr,
        admin_addr = %admin_addr,
        dry_run = state.dry_run(),
        "tiergate listening: POST https://{addr}/validate and /mutate; http://{admin_addr}/metrics, /livez, /readyz"
    );
    Ok(Handle {
        addr,
        admin_addr,
        ca_pem: serving.ca_pem,
        state,
        shutdown_tx,
        admin_shutdown_tx,
        webhook_task,
        admin_task,
        reload_task,
        _watcher: watcher,
        cluster,
        audit_task,
        policies_task,
        facts_task,
        shutdown_delay: opts.shutdown_delay,
    })
}

/// How long a connection may take to send its first request after the TLS
/// handshake (an idle connection holds a file descriptor and memory).
pub const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections served at once: the file descriptors the process may open,
/// less a reserve for the admin port, the cluster watches and files, so that
/// `/readyz` and `/metrics` answer whatever the webhook port suffers.
fn connection_cap() -> usize {
    const RESERVE: u64 = 128;
    let soft = raise_fd_limit();
    usize::try_from(soft.saturating_sub(RESERVE).clamp(16, 16_384)).unwrap_or(16_384)
}

/// Raise the soft limit on open files to the hard limit; the soft limit in
/// force after that.
fn raise_fd_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            warn!(error = %e, "cannot read or raise the open-file limit; assuming 1024");
            1024
        }
    }
}

async fn serve_webhook(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: Router,
    shutdown: watch::Receiver<bool>,
    grace: Duration,
    first_request: Duration,
) {
    // Every connection task holds a clone of `done_tx`; when all are gone,
    // `done_rx` yields None.
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let cap = connection_cap();
    let slots = Arc::new(tokio::sync::Semaphore::new(cap));
    info!(max_connections = cap, "webhook connections capped");
    loop {
        // A free slot before accepting: at the cap, connections wait in the
        // kernel's backlog instead of taking the process's last descriptors.
        let slot = tokio::select! {
            _ = until(shutdown.clone()) => break,
            s = slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
        };
        tokio::select! {
            _ = until(shutdown.clone()) => break,
            r = listener.accept() => {
                let (tcp, peer) = match r {
                    Ok(x) => x,
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let app = app.clone();
                let sd = shutdown.clone();
                let guard = done_tx.clone();
                tokio::spawn(async move {
                    let _guard = guard;
                    let _slot = slot;
                    serve_connection(tcp, peer, acceptor, app, sd, first_request).await;
                });
            }
        }
    }
    drop(listener);
    drop(done_tx);
    if tokio::time::timeout(grace, done_rx.recv()).await.is_err() {
        warn!(
            grace_seconds = grace.as_secs_f64(),
            "grace period over with requests still in flight"
        );
    }
}

/// One connection: TLS handshake (10 s), the first request within
/// [`FIRST_REQUEST_TIMEOUT`], HTTP/2 keep-alive pings to drop dead peers, and
/// on shutdown a graceful close (GOAWAY for HTTP/2, `Connection: close` for
/// HTTP/1.1) once in-flight requests are answered.
async fn serve_connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    app: Router,
    shutdown: watch::Receiver<bool>,
    first_request: Duration,
) {
    let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let seen = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mark = seen.clone();
    let svc = tower::ServiceExt::map_request(
        app,
        move |r: axum::http::Request<hyper::body::Incoming>| {
            mark.store(true, Ordering::Relaxed);
            r
        },
    );
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10));
    let conn = builder.serve_connection(TokioIo::new(tls), TowerToHyperService::new(svc));
    tokio::pin!(conn);
    let first_deadline = tokio::time::sleep(first_request);
    tokio::pin!(first_deadline);
    let mut waiting_first = true;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    debug!(%peer, error = %e, "connection error");
                }
                return;
            }
            _ = &mut first_deadline, if waiting_first => {
                waiting_first = false;
                if !seen.load(Ordering::Relaxed) {
                    debug!(%peer, "no request within the first-request timeout; closing");
                    return;
                }
            }
            _ = until(shutdown.clone()) => {
                conn.as_mut().graceful_shutdown();
                if let Err(e) = conn.as_mut().await {
                    debug!(%peer, error = %e, "connection error while draining");
                }
                return;
            }
        }
    }
}

/// Lines the log writer may hold before a request waits for it: about 3 MB
/// of decision lines, so a stalled stdout costs bounded memory and then
/// slows admission down rather than dropping a decision.
const LOG_BUFFERED_LINES: usize = 4096;

/// The log: JSON lines (compact text on a terminal) written by a thread of
/// their own, in batches, so a request formats its line but never waits on
/// the write; lossless (a full buffer blocks, it never drops a line). The
/// guard flushes what is left when `serve` returns.
fn init_logging() -> tracing_appender::non_blocking::WorkerGuard {
    use tracing_subscriber::EnvFilter;
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(LOG_BUFFERED_LINES)
        .thread_name("tiergate-log")
        .finish(std::io::BufWriter::new(std::io::stdout()));
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let res = if std::io::stdout().is_terminal() {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(writer)
            .compact()
            .try_init()
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(writer)
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    };
    if res.is_err() {
        eprintln!("tiergate: logging already initialised");
    }
    guard
}

async fn wait_for_signal() -> anyhow::Result<&'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        tokio::select! {
            _ = term.recv() => Ok("SIGTERM"),
            r = tokio::signal::ctrl_c() => r.map(|()| "SIGINT").context("waiting for SIGINT"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
        Ok("Ctrl-C")
    }
}

/// `tiergate serve`: run until SIGTERM or SIGINT, then drain and exit 0.
pub fn run_serve(args: ServeArgs) -> anyhow::Result<()> {
    let _log = init_logging();
    // Reviews are judged on the workers (see `http::INLINE_MAX_BYTES`); the
    // blocking pool only takes the rare large body and file reloads, so it
    // is bounded: a flood of large bodies queues instead of adding a thread
    // (and an allocator heap) per request.
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads((2 * cores).max(4))
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(async {
        let handle = start(ServeOptions::from_args(&args)).await?;
        let sig = wait_for_signal().await?;
        info!(signal = sig, "shutting down");
        handle.shutdown().await
    })
}

/// `tiergate certs`: write ca.crt, tls.crt, tls.key and print the caBundle.
pub fn run_certs(args: CertsArgs) -> anyhow::Result<()> {
    let names = tls::service_names(&args.service, &args.namespace);
    let g = tls::generate(&names)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let write = |name: &str, text: &str| -> anyhow::Result<()> {
        let p = args.out.join(name);
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))
    };
    write("ca.crt", &g.ca_pem)?;
    write("tls.crt", &g.cert_pem)?;
    write("tls.key", &g.key_pem)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let p = args.out.join("tls.key");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("restricting {}", p.display()))?;
    }
    eprintln!(
        "tiergate: wrote {}/ca.crt, tls.crt, tls.key for {}; the caBundle (base64 of ca.crt) follows:",
        args.out.display(),
        names.join(", ")
    );
    println!(
        "{}",
        base64::engine::general_purpose::STANDARD.encode(g.ca_pem.as_bytes())
    );
    Ok(())
}
