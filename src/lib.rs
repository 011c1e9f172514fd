//! tiergate: a Kubernetes admission webhook that judges workloads by the tier
//! of the namespace they land in. See the README for the two commands.
pub mod admission;
pub mod audit;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod export;
pub mod manifest;
pub mod policy;
pub mod scaffold;
pub mod server;
pub mod supply;
pub mod yaml;

/// Make ring the process's TLS crypto for every client that does not pick
/// one (kube, the registry clients): sigstore links aws-lc-rs too, and with
/// both present rustls cannot choose by itself. Idempotent; call it first.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
