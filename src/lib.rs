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
pub mod yaml;
