//! Reload the serving certificate and the config when their files change.
//! The directories are watched (Kubernetes swaps Secret and ConfigMap volumes
//! by renaming a `..data` symlink, so watching the files themselves misses
//! it), and polled as a fallback. A torn or invalid file keeps the last good
//! value, is logged and counted once per distinct content.
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::http::{Active, AppState};
use super::tls::{load_pair, CertStore};
use crate::config::Config;

pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub store: Arc<CertStore>,
    /// The contents last tried (good or not).
    pub last: Option<(Vec<u8>, Vec<u8>)>,
}

pub struct ConfigFile {
    pub path: PathBuf,
    pub last: Option<Vec<u8>>,
}

pub struct Reloader {
    pub tls: Option<TlsFiles>,
    pub config: Option<ConfigFile>,
    pub state: Arc<AppState>,
    /// The last error reading `images.credentialsFile` (logged once).
    pub credentials_error: Option<String>,
}

impl Reloader {
    fn dirs(&self) -> Vec<PathBuf> {
        let mut files: Vec<&Path> = Vec::new();
        if let Some(t) = &self.tls {
            files.push(&t.cert);
            files.push(&t.key);
        }
        if let Some(c) = &self.config {
            files.push(&c.path);
        }
        let active = self.state.active();
        let credentials = active
            .engine
            .config()
            .images
            .credentials_file
            .as_deref()
            .map(Path::new);
        files.extend(credentials);
        let mut dirs: Vec<PathBuf> = Vec::new();
        for f in files {
            let d = match f.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            if !dirs.contains(&d) {
                dirs.push(d);
            }
        }
        dirs
    }

    /// Reload whatever changed on disk.
    pub fn check(&mut self) {
        if let Some(t) = &mut self.tls {
            if let (Ok(c), Ok(k)) = (std::fs::read(&t.cert), std::fs::read(&t.key)) {
                let changed = t.last.as_ref().is_none_or(|(lc, lk)| *lc != c || *lk != k);
                if changed {
                    match load_pair(&c, &k) {
                        Ok(pair) => {
                            t.store.set(pair.key);
                            self.state.metrics.set_cert_expiry(pair.not_after);
                            self.state.metrics.tls_reload(true);
                            info!(cert = %t.cert.display(), not_after = pair.not_after, "serving certificate reloaded");
                        }
                        Err(e) => {
                            self.state.metrics.tls_reload(false);
                            warn!(cert = %t.cert.display(), error = %format!("{e:#}"), "serving certificate not reloaded, keeping the last good one");
                        }
                    }
                    t.last = Some((c, k));
                }
            }
        }
        if let Some(cf) = &mut self.config {
            if let Ok(bytes) = std::fs::read(&cf.path) {
                if cf.last.as_ref() != Some(&bytes) {
                    match Config::from_bytes(&bytes, &cf.path.display().to_string()) {
                        Ok(cfg) => {
                            let weakened = self.state.active().config().weakenings(&cfg);
                            if !weakened.is_empty() {
                                self.state.metrics.config_weakened();
                                warn!(
                                    config = %cf.path.display(),
                                    weakened = %weakened.join("; "),
                                    "config reloaded and the policy is weaker than before: {}",
                                    weakened.join("; ")
                                );
                            }
                            let previous = self.state.active();
                            match Active::new(
                                cfg,
                                Some(&bytes),
                                Some(&previous),
                                &self.state.metrics,
                            ) {
                                Ok(a) => {
                                    self.state.set_active(a);
                                    self.state.metrics.config_reload(true);
                                    info!(config = %cf.path.display(), "config reloaded");
                                }
                                Err(e) => {
                                    self.state.metrics.config_reload(false);
                                    warn!(config = %cf.path.display(), error = %e, "config not reloaded, keeping the last good one");
                                }
                            }
                        }
                        Err(e) => {
                            self.state.metrics.config_reload(false);
                            warn!(config = %cf.path.display(), error = %format!("{e:#}"), "config not reloaded, keeping the last good one");
                        }
                    }
                    cf.last = Some(bytes);
                }
            }
        }
        self.check_credentials();
    }

    /// The registry credentials of image verification, when their file
    /// changed (a rotated `kubernetes.io/dockerconfigjson` Secret).
    fn check_credentials(&mut self) {
        let Some(verifier) = self.state.active().verifier.clone() else {
            return;
        };
        match verifier.reload_credentials() {
            Ok(true) => {
                self.credentials_error = None;
                info!(
                    file = verifier
                        .config()
                        .credentials_file
                        .as_deref()
                        .unwrap_or_default(),
                    "registry credentials reloaded"
                );
            }
            Ok(false) => {}
            Err(e) => {
                let e = e.to_string();
                if self.credentials_error.as_ref() != Some(&e) {
                    warn!(error = %e, "registry credentials not reloaded, keeping the last good ones");
                    self.credentials_error = Some(e);
                }
            }
        }
    }
}

/// Watch and poll until shutdown. Returns the watcher (keep it alive) and the task.
pub fn spawn(
    mut reloader: Reloader,
    poll: Duration,
    shutdown: watch::Receiver<bool>,
) -> (Option<RecommendedWatcher>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let watcher = match notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if res.is_ok() {
            let _ = tx.send(());
        }
    }) {
        Ok(mut w) => {
            for d in reloader.dirs() {
                if let Err(e) = w.watch(&d, RecursiveMode::NonRecursive) {
                    warn!(dir = %d.display(), error = %e, "cannot watch; polling only");
                }
            }
            Some(w)
        }
        Err(e) => {
            warn!(error = %e, "file watching unavailable; polling only");
            None
        }
    };
    let mut watching = watcher.is_some();
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                ev = rx.recv(), if watching => {
                    if ev.is_none() {
                        watching = false;
                        continue;
                    }
                    // Let a burst of writes settle, then look once.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    while rx.try_recv().is_ok() {}
                }
                _ = tick.tick() => {}
                _ = until(shutdown.clone()) => break,
            }
            reloader.check();
        }
    });
    (watcher, task)
}

async fn until(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}
