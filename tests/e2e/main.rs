//! End-to-end tests: tiergate behind a real kube-apiserver and etcd.
//!
//! Run with `make e2e` (or `scripts/e2e-build.sh` then
//! `cargo test --features e2e --test e2e`). The binaries come from
//! `target/e2e-bin/` (or `$E2E_BIN_DIR`); see tests/e2e/README section in the
//! top-level README ("End-to-end tests").
//!
//! One etcd and one kube-apiserver serve the whole run (started on first
//! use, killed when the test process exits, also when it dies). Every
//! scenario gets its own namespace, its own `tiergate serve` process with the
//! scenario's config, and its own webhook configurations whose
//! namespaceSelector picks only that namespace, so scenarios run in parallel
//! without seeing each other.
mod audit;
mod bench;
mod cluster;
#[path = "../common/mod.rs"]
mod common;
mod deploy;
mod harness;
mod policies;
mod rollout;
mod scaffold;
mod scenarios;
mod supply;
