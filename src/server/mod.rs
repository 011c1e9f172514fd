//! The admission webhook server (`tiergate serve`) and `tiergate certs`.
//! (Being built: issue 3.)
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

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

pub fn run_serve(_args: ServeArgs) -> anyhow::Result<()> {
    anyhow::bail!("tiergate serve is not built yet")
}

pub fn run_certs(_args: CertsArgs) -> anyhow::Result<()> {
    anyhow::bail!("tiergate certs is not built yet")
}
