//! The admission webhook server (`tiergate serve`) and `tiergate certs`.
//!
//! Composition happens here; the decisions are made in [`crate::admission`]
//! (pure), and HTTP stays in [`http`]. [`start`] runs the server in the
//! current tokio runtime and returns a [`Handle`], which is how `tiergate
//! serve` and the integration tests both drive it.
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

mod audit;
mod facts;
mod http;
pub mod metrics;
mod policies;
mod reload;
mod run;
pub mod tls;

pub use run::{run_certs, run_serve, start, ClusterMode, Handle, ServeOptions, TlsSource};

/// `tiergate serve`
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Config file (YAML); embedded defaults when absent.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Serving certificate (PEM); generated with a self-signed CA when absent.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Serving key (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// HTTPS address of the webhook endpoints.
    #[arg(long, default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,
    /// Plain HTTP address of /metrics, /livez, /readyz.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub admin_listen: SocketAddr,
    /// Record would-be denials and patches, deny and patch nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Where to write the generated CA bundle.
    #[arg(long, default_value = "./tiergate-ca.pem")]
    pub ca_out: PathBuf,
    /// Do not watch the cluster for namespace tiers and facts, even when a
    /// kubeconfig (KUBECONFIG, ~/.kube/config) or in-cluster config is found.
    #[arg(long)]
    pub no_cluster: bool,
    /// On SIGTERM, keep accepting (with /readyz failing) this many seconds
    /// while the Service's endpoints drop this pod, then drain.
    #[arg(long, default_value_t = 5)]
    pub shutdown_delay: u64,
}

/// `tiergate certs`
#[derive(Debug, Clone, Args)]
pub struct CertsArgs {
    /// Service name.
    #[arg(long, default_value = "tiergate")]
    pub service: String,
    /// Service namespace.
    #[arg(long, default_value = "tiergate-system")]
    pub namespace: String,
    /// Output directory for ca.crt, tls.crt, tls.key.
    #[arg(long, default_value = "certs")]
    pub out: PathBuf,
}
