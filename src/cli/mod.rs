//! The offline CLI: `tiergate check`, `fix`, `rules`. (Being built: issue 2.)
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CheckFormat {
    Table,
    Json,
    Sarif,
    Junit,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RulesFormat {
    Table,
    Json,
    Markdown,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Files, directories (recursively *.yaml, *.yml, *.json) or - for stdin.
    #[arg(default_value = "-")]
    pub paths: Vec<String>,
    #[arg(long)]
    pub tier: Option<String>,
    #[arg(long)]
    pub mode: Option<String>,
    /// Evaluate exactly one Pod Security Standard: baseline|restricted[:latest|:v1.N].
    #[arg(long)]
    pub pss: Option<String>,
    /// Evaluate just these rules, whatever their tier.
    #[arg(long, value_delimiter = ',')]
    pub only: Option<Vec<String>>,
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub output: CheckFormat,
}

#[derive(Debug, Args)]
pub struct FixArgs {
    #[arg(default_value = "-")]
    pub paths: Vec<String>,
    #[arg(long)]
    pub tier: Option<String>,
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Rewrite the files instead of printing to stdout.
    #[arg(long)]
    pub in_place: bool,
}

#[derive(Debug, Args)]
pub struct RulesArgs {
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub output: RulesFormat,
}

pub fn check(_a: CheckArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not built yet")
}
pub fn fix(_a: FixArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not built yet")
}
pub fn rules(_a: RulesArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not built yet")
}
