use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use tiergate::{cli, server};

/// tiergate: Kubernetes admission by namespace tier.
#[derive(Debug, Parser)]
#[command(name = "tiergate", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check manifests against a tier (exit 1 when something denies).
    Check(cli::CheckArgs),
    /// Print manifests with the safe fixes applied.
    Fix(cli::FixArgs),
    /// List the rule catalog.
    Rules(cli::RulesArgs),
    /// Judge what already runs in a cluster, and whether each namespace is
    /// ready to enforce its tier.
    Audit(cli::AuditArgs),
    /// Write a minimal application that passes a tier (what the tier asks).
    Scaffold(cli::ScaffoldArgs),
    /// Compile the catalog into policies the apiserver runs itself.
    Export(cli::export::ExportArgs),
    /// Run the admission webhook server.
    Serve(server::ServeArgs),
    /// Write a CA and serving certificate for the webhook Service.
    Certs(server::CertsArgs),
}

fn main() -> ExitCode {
    tiergate::install_crypto_provider();
    let args = Cli::parse();
    let result = match args.command {
        Command::Check(a) => cli::check(a),
        Command::Fix(a) => cli::fix(a),
        Command::Rules(a) => cli::rules(a),
        Command::Scaffold(a) => cli::scaffold(a),
        Command::Audit(a) => cli::audit(a),
        Command::Export(a) => cli::export::export(a),
        Command::Serve(a) => server::run_serve(a).map(|()| ExitCode::SUCCESS),
        Command::Certs(a) => server::run_certs(a).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tiergate: {e:#}");
            ExitCode::from(2)
        }
    }
}
