//! The offline CLI: `tiergate check`, `fix`, `rules`, `scaffold`: the engine on manifest
//! files, with each object's context made from the input as the webhook makes
//! it from the cluster.
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

/// What `check` and `fix` both read: the input, the tier, the config.
#[derive(Debug, Args)]
pub struct InputArgs {
    /// Files, directories (recursively *.yaml, *.yml, *.json) or - for stdin.
    #[arg(default_value = "-")]
    pub paths: Vec<String>,
    /// Judge every object at this tier (1..5 or its name), whatever its
    /// namespace's label says.
    #[arg(long)]
    pub tier: Option<String>,
    /// Config file (YAML); the embedded defaults when absent.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Largest input file (or stdin) read, in bytes.
    #[arg(long, default_value_t = manifest::DEFAULT_MAX_INPUT_BYTES)]
    pub max_input_bytes: u64,
    /// A document that is not a Kubernetes object (no apiVersion or kind:
    /// Helm values, app configs) is an error, not skipped with a note.
    #[arg(long)]
    pub strict: bool,
    /// Render this kustomize tree (`kubectl kustomize`, else `kustomize
    /// build`, from PATH) and judge the rendering. Repeatable.
    #[arg(short = 'k', long = "kustomize", value_name = "DIR")]
    pub kustomize: Vec<PathBuf>,
    /// The input is the whole of each namespace it mentions (objects with no
    /// namespace are one namespace): a PodDisruptionBudget, default-deny
    /// NetworkPolicy, ResourceQuota or LimitRange not in it does not exist,
    /// and its absence is a finding, not "unknown". Also config
    /// `offline.complete`.
    #[arg(long)]
    pub complete: bool,
    /// TierException files or directories (read with the input: their
    /// exceptions apply to the input's namespaces, as the cluster's do).
    /// Repeatable.
    #[arg(long = "exceptions", value_name = "PATH")]
    pub exceptions: Vec<String>,
    /// Judge TierException expiry at this RFC 3339 time instead of now
    /// (reproducible CI runs, tests).
    #[arg(long, value_name = "TIME")]
    pub now: Option<String>,
    /// Ask the registries: verify the signatures and provenance the
    /// config's `images.verify` asks for, as admission does (same cache
    /// rules, same budget, same messages). Without it `image-signature`
    /// warns that it did not check, and `fix` pins nothing.
    #[arg(long)]
    pub verify_images: bool,
}

/// What `check` and `fix` start from.
struct Input {
    engine: Engine,
    tier: Option<Tier>,
    /// `--complete` or the config's `offline.complete`.
    complete: bool,
    /// `--now`, else the clock.
    now: Option<i64>,
    /// The input files that parsed.
    sources: Vec<SourceFile>,
    /// One problem per file that did not (a bad file never hides the others).
    unreadable: Vec<Problem>,
    /// What `--verify-images` found.
    images: Option<std::sync::Arc<crate::supply::Verdicts>>,
}

impl InputArgs {
    /// The engine, the tier override and the input.
    fn load(&self) -> anyhow::Result<Input> {
        let config = Config::load(self.config.as_deref())?.0;
        let complete = self.complete || config.offline.complete;
        let policy = config.policy;
        let tier = self.tier.as_deref().map(str::parse::<Tier>).transpose()?;
        let now = match &self.now {
            Some(t) => Some(
                crate::policy::exception::parse_time(t)
                    .map_err(|e| anyhow::anyhow!("--now: {e}"))?,
            ),
            None => crate::clock::now(),
        };
        let mut sources = Vec::new();
        let mut problems = Vec::new();
        for dir in &self.kustomize {
            match kustomize_build(dir) {
                Ok(text) => {
                    let name = format!("{} (kustomize)", dir.display());
                    match manifest::parse_source(&name, None, &text) {
                        Ok(s) => sources.push(s),
                        Err(e) => problems.push(Problem::unreadable(name, e.to_string())),
                    }
                }
                Err(e) => problems.push(Problem::unreadable(
                    dir.display().to_string(),
                    format!("{e:#}"),
                )),
            }
        }
        // Paths default to stdin, unless only kustomize trees are given.
        let mut paths: Vec<String> = if self.kustomize.is_empty() || self.paths != ["-"] {
            self.paths.clone()
        } else {
            Vec::new()
        };
        paths.extend(self.exceptions.iter().cloned());
        let paths = paths.as_slice();
        let mut patches = KustomizePatches::default();
        for p in manifest::expand_paths(paths)? {
            if let Some(note) = p.as_deref().and_then(|p| patches.patch_note(p)) {
                problems.push(note);
                continue;
            }
            match manifest::read_source_limited(p.as_deref(), self.max_input_bytes) {
                Ok(s) => sources.push(s),
                Err(e) => {
                    let file = p
                        .as_deref()
                        .map_or("<stdin>".to_string(), |p| p.display().to_string());
                    problems.push(Problem::unreadable(file, e.to_string()));
                }
            }
        }
        // A path that holds no manifest must not pass silently (a CI step
        // pointed at the wrong directory would pass forever).
        if sources.is_empty() && problems.is_empty() {
            anyhow::bail!(
                "no manifests found in {} (directories are searched for *.yaml, *.yml and \
                 *.json)",
                paths.join(", ")
            );
        }
        let images = if self.verify_images {
            Some(std::sync::Arc::new(verify_images(
                &policy.images,
                &sources,
            )?))
        } else {
            None
        };
        Ok(Input {
            engine: Engine::new(policy),
            tier,
            complete,
            now,
            sources,
            unreadable: problems,
            images,
        })
    }
}

/// `--verify-images`: every image of the input that the config's
/// `images.verify` names, verified once.
fn verify_images(
    cfg: &crate::supply::ImagesConfig,
    sources: &[SourceFile],
) -> anyhow::Result<crate::supply::Verdicts> {
    if cfg.verify.is_empty() {
        anyhow::bail!(
            "--verify-images: the config's images.verify names no image to verify (see \
             `tiergate rules image-signature`)"
        );
    }
    let verifier = crate::supply::Verifier::new(cfg.clone())?;
    let mut images: Vec<String> = Vec::new();
    for doc in sources.iter().flat_map(|s| s.documents.iter()) {
        let Some(v) = &doc.value else { continue };
        for (_, obj) in manifest::objects_with_paths(v) {
            for i in crate::supply::images_of(obj) {
                if !images.contains(&i) {
                    images.push(i);
                }
            }
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("a runtime for --verify-images")?;
    Ok(rt.block_on(crate::supply::verify_all(&verifier, &images)))
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub input: InputArgs,
    #[arg(long)]
    pub mode: Option<String>,
    /// Evaluate exactly one Pod Security Standard: baseline|restricted[:latest|:v1.N].
    #[arg(long)]
    pub pss: Option<String>,
    /// Evaluate just these rules, whatever their tier.
    #[arg(long, value_delimiter = ',')]
    pub only: Option<Vec<String>>,
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub output: CheckFormat,
}

#[derive(Debug, Args)]
pub struct FixArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Rewrite the files instead of printing to stdout.
    #[arg(long, conflicts_with = "diff")]
    pub in_place: bool,
    /// Print a unified diff per changed file (what to review in CI) instead
    /// of the fixed files.
    #[arg(long)]
    pub diff: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReadyFor {
    Enforce,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The cluster (default: KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (default: its current one).
    #[arg(long)]
    pub context: Option<String>,
    /// Only this namespace (no cluster-scoped objects).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// Judge every object at this tier, whatever its namespace's label says.
    #[arg(long)]
    pub tier: Option<String>,
    /// Config file (YAML); the embedded defaults when absent.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub output: CheckFormat,
    /// Exit 1 when some namespace is not ready to enforce its tier (an
    /// object its next write would be denied for, that no fix covers).
    #[arg(long, value_enum)]
    pub ready_for: Option<ReadyFor>,
    /// Namespaces not judged (the shipped webhooks' exclusions by default).
    #[arg(long = "exclude-namespace", value_name = "NS",
          default_values_t = crate::audit::EXCLUDED.iter().map(|s| s.to_string()).collect::<Vec<_>>())]
    pub exclude: Vec<String>,
    /// Objects per list request.
    #[arg(long, default_value_t = 500)]
    pub page_size: u32,
    /// Only the readiness table (and the counts): no object's results are
    /// kept, so memory stays flat at any cluster size.
    #[arg(long)]
    pub summary: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ScaffoldKind {
    Deployment,
    Statefulset,
    Cronjob,
}

#[derive(Debug, Args)]
pub struct ScaffoldArgs {
    /// The application's name (a DNS label): its namespace and objects.
    pub name: String,
    /// The tier it must pass (1..5 or its name).
    #[arg(long)]
    pub tier: String,
    #[arg(long, value_enum, default_value = "deployment")]
    pub kind: ScaffoldKind,
    /// The container image; from tier 2 pinned by digest (REPO:TAG@sha256:...).
    /// Default: a placeholder to replace.
    #[arg(long)]
    pub image: Option<String>,
    /// The port the application listens on.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// The Ingress host (from tier 2). Default: NAME.example.com.
    #[arg(long)]
    pub host: Option<String>,
    /// Make the namespace this tenant's (config tenancy.label); at tier 5 its
    /// pods then run with a sandboxed RuntimeClass.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Write one file per object and a kustomization.yaml into this
    /// directory (created; existing files are never overwritten) instead of
    /// printing one stream.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Config file (YAML) the scaffold must pass; the embedded defaults when
    /// absent.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RulesArgs {
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub output: RulesFormat,
}

pub mod edit;
pub mod export;
pub mod judge;
mod output;

pub use judge::{judge_all, judge_sources, Judged, Problem, Report, Settings};

use std::io::Write;

use anyhow::Context as _;

use crate::config::Config;
use crate::manifest::{self, Format, SourceFile};
use crate::policy::{pss, rules as catalog, Engine, Mode, Tier};

/// `tiergate check`
pub fn check(a: CheckArgs) -> anyhow::Result<ExitCode> {
    let mode = a.mode.as_deref().map(str::parse::<Mode>).transpose()?;
    let pss = a.pss.as_deref().map(pss::parse_level_version).transpose()?;
    if let Some(only) = &a.only {
        for id in only {
            if catalog::by_id(id).is_none() {
                anyhow::bail!("--only: unknown rule {id:?} (see `tiergate rules`)");
            }
        }
    }
    let input = a.input.load()?;
    let report = input.judge(&judge::Settings {
        tier: input.tier,
        mode: mode.unwrap_or(Mode::Enforce),
        pss,
        only: a.only.clone(),
        fix: false,
        strict: a.input.strict,
        complete: input.complete,
        now: input.now,
        images: input.images.clone(),
    });
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    match a.output {
        CheckFormat::Json => output::json(&report, &mut stdout)?,
        CheckFormat::Sarif => stdout.write_all(output::sarif(&report).as_bytes())?,
        CheckFormat::Junit => stdout.write_all(output::junit(&report).as_bytes())?,
        CheckFormat::Table => {
            stdout.write_all(output::table(&report, output::use_colour()).as_bytes())?
        }
    }
    stdout.flush()?;
    Ok(exit_code(&report))
}

impl Input {
    /// Judge the input: the unreadable files come first among the problems,
    /// and every problem is also a line on stderr.
    fn judge(&self, settings: &judge::Settings) -> Report {
        let mut report = judge_all(&self.engine, &self.sources, settings);
        report
            .problems
            .splice(0..0, self.unreadable.iter().cloned());
        report_problems_on_stderr(&report);
        report
    }
}

/// 2 when some input could not be judged (after the results), else 1 when
/// something denies, else 0.
fn exit_code(report: &Report) -> ExitCode {
    if report.has_errors() {
        ExitCode::from(2)
    } else if report.judged.iter().any(|j| j.eval.denies()) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Every problem, one line each on stderr (the results go to stdout).
fn report_problems_on_stderr(report: &Report) {
    for p in &report.problems {
        let word = if p.skipped { "note" } else { "error" };
        eprintln!("tiergate: {word}: {}", output::printable(&p.message));
    }
}

/// `tiergate fix`
pub fn fix(a: FixArgs) -> anyhow::Result<ExitCode> {
    let input = a.input.load()?;
    if a.in_place && input.sources.iter().any(|s| s.path.is_none()) {
        anyhow::bail!("--in-place cannot rewrite stdin (-)");
    }
    let report = input.judge(&judge::Settings {
        tier: input.tier,
        mode: Mode::Enforce,
        pss: None,
        only: None,
        fix: true,
        strict: a.input.strict,
        complete: input.complete,
        now: input.now,
        images: input.images.clone(),
    });
    // Documents that could not be judged are written back as they were.
    let mut failed = report.has_errors();
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let mut first = true;
    for (si, src) in input.sources.iter().enumerate() {
        let (text, problems) = judge::render_fixed(src, si, &report.judged);
        for p in &problems {
            eprintln!("tiergate: error: {}", output::printable(&p.message));
            failed = true;
        }
        let original = original_text(src);
        if a.in_place {
            if let Some(path) = &src.path {
                let on_disk = std::fs::read_to_string(path)
                    .with_context(|| format!("re-reading {}", path.display()))?;
                // One file that cannot be written never stops the others.
                let written = if on_disk != original {
                    Err(anyhow::anyhow!(
                        "{} changed while it was being fixed: not rewritten",
                        path.display()
                    ))
                } else if on_disk != text {
                    write_atomically(path, &text).map(|()| eprintln!("fixed {}", path.display()))
                } else {
                    Ok(())
                };
                if let Err(e) = written {
                    eprintln!("tiergate: error: {}", output::printable(&format!("{e:#}")));
                    failed = true;
                }
            }
        } else if a.diff {
            if text != original {
                stdout.write_all(unified_diff(&src.name, &original, &text).as_bytes())?;
            }
        } else {
            // One stream; when it holds several files, each one's start is
            // marked as `helm template` marks it.
            if !first && src.format == Format::Yaml && !text.starts_with("---") {
                stdout.write_all(b"---\n")?;
            }
            first = false;
            if input.sources.len() > 1 {
                writeln!(stdout, "# Source: {}", src.name)?;
            }
            stdout.write_all(text.as_bytes())?;
            if !text.ends_with('\n') {
                stdout.write_all(b"\n")?;
            }
        }
    }
    stdout.flush()?;
    Ok(if failed {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// A source's text as read.
fn original_text(src: &SourceFile) -> String {
    src.documents
        .iter()
        .flat_map(|d| [d.separator.as_str(), d.text.as_str()])
        .collect()
}

/// A unified diff of one file, `a/` and `b/` as `git diff` names them.
fn unified_diff(name: &str, old: &str, new: &str) -> String {
    let diff = similar::TextDiff::from_lines(old, new);
    let mut out = diff
        .unified_diff()
        .context_radius(3)
        .header(
            &format!("a/{}", name.trim_start_matches('/')),
            &format!("b/{}", name.trim_start_matches('/')),
        )
        .to_string();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// `kubectl kustomize DIR`, else `kustomize build DIR`: the rendered YAML.
fn kustomize_build(dir: &std::path::Path) -> anyhow::Result<String> {
    let attempts: [(&str, &[&str]); 2] = [("kubectl", &["kustomize"]), ("kustomize", &["build"])];
    let mut missing = Vec::new();
    for (tool, args) in attempts {
        match std::process::Command::new(tool)
            .args(args)
            .arg(dir)
            .output()
        {
            Ok(out) if out.status.success() => {
                return String::from_utf8(out.stdout)
                    .with_context(|| format!("{tool} {}: output is not UTF-8", args.join(" ")));
            }
            Ok(out) => anyhow::bail!(
                "{}: `{tool} {} {}` failed: {}",
                dir.display(),
                args.join(" "),
                dir.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => missing.push(tool),
            Err(e) => anyhow::bail!("{}: running {tool}: {e}", dir.display()),
        }
    }
    anyhow::bail!(
        "{}: -k needs kubectl (kubectl kustomize) or kustomize on PATH; found neither ({})",
        dir.display(),
        missing.join(", ")
    )
}

/// The patch files kustomization files name, by directory: they are not
/// whole objects, and are judged only as part of the rendering (`-k`).
#[derive(Default)]
struct KustomizePatches {
    by_dir: std::collections::BTreeMap<PathBuf, Option<(PathBuf, Vec<PathBuf>)>>,
}

impl KustomizePatches {
    /// A note when `file` is a patch its directory's kustomization names.
    fn patch_note(&mut self, file: &std::path::Path) -> Option<Problem> {
        let dir = file.parent()?.to_path_buf();
        let entry = self
            .by_dir
            .entry(dir.clone())
            .or_insert_with(|| kustomization_patches(&dir));
        let (kfile, patches) = entry.as_ref()?;
        let name = std::fs::canonicalize(file).ok()?;
        patches.contains(&name).then(|| Problem {
            file: file.display().to_string(),
            document: None,
            line: None,
            message: format!(
                "{}: a kustomize patch listed in {}, not a whole object, skipped (judge the \
                 rendering with -k {})",
                file.display(),
                kfile.display(),
                dir.display()
            ),
            skipped: true,
        })
    }
}

/// The kustomization file of `dir` and the patch files it names
/// (`patches[].path`, `patchesStrategicMerge[]`, `patchesJson6902[].path`).
fn kustomization_patches(dir: &std::path::Path) -> Option<(PathBuf, Vec<PathBuf>)> {
    let kfile = ["kustomization.yaml", "kustomization.yml", "Kustomization"]
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())?;
    let text = std::fs::read_to_string(&kfile).ok()?;
    let k: serde_json::Value = serde_saphyr::from_str(&text).ok()?;
    let mut names: Vec<&str> = Vec::new();
    for key in ["patches", "patchesJson6902"] {
        for p in k
            .get(key)
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(path) = p.get("path").and_then(serde_json::Value::as_str) {
                names.push(path);
            }
        }
    }
    for p in k
        .get("patchesStrategicMerge")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(path) = p.as_str() {
            names.push(path);
        }
    }
    let patches = names
        .into_iter()
        .filter_map(|n| std::fs::canonicalize(dir.join(n)).ok())
        .collect();
    Some((kfile, patches))
}

/// Replace a manifest's contents atomically: write a temporary file created
/// exclusively, with an unpredictable name, in the same directory, give it
/// the file's permissions, and rename it over the file (so a crash never
/// leaves a half-written manifest, and nobody can plant a link where the
/// temporary file goes). A symlinked manifest has its target rewritten (the
/// link stays). A read-only file is not rewritten: that is an error naming
/// it, as an editor would refuse. A failed rename removes the temporary file.
fn write_atomically(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    let target =
        std::fs::canonicalize(path).with_context(|| format!("resolving {}", path.display()))?;
    let meta = std::fs::metadata(&target)
        .with_context(|| format!("reading the permissions of {}", target.display()))?;
    if meta.permissions().readonly() {
        anyhow::bail!(
            "{} is read-only: not rewritten (make it writable to fix it in place)",
            path.display()
        );
    }
    let dir = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| std::path::Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".tiergate-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    tmp.write_all(text.as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("writing {}", tmp.path().display()))?;
    std::fs::set_permissions(tmp.path(), meta.permissions())
        .with_context(|| format!("setting the permissions of {}", tmp.path().display()))?;
    // On error the temporary file is dropped, which removes it.
    tmp.persist(&target)
        .map_err(|e| anyhow::anyhow!("replacing {}: {}", target.display(), e.error))?;
    Ok(())
}

/// `tiergate rules`
/// `tiergate audit`
pub fn audit(a: AuditArgs) -> anyhow::Result<ExitCode> {
    let cfg = Config::load(a.config.as_deref())?.0.policy;
    let engine = Engine::new(cfg);
    let tier = a.tier.as_deref().map(str::parse::<Tier>).transpose()?;
    let opts = crate::audit::AuditOptions {
        namespace: a.namespace.clone(),
        tier,
        exclude: a.exclude.clone(),
        page: a.page_size.max(1),
        sync_timeout: std::time::Duration::from_secs(60),
        skip_kinds: Vec::new(),
        qps: 50,
        keep_per_namespace: a.summary.then_some(0),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let audit = rt.block_on(async {
        let client = audit_client(a.kubeconfig.as_deref(), a.context.as_deref()).await?;
        crate::audit::run(client, &engine, &opts).await
    })?;
    rt.shutdown_background();
    let report = Report {
        judged: audit.judged,
        problems: Vec::new(),
    };
    for n in &audit.not_listed {
        eprintln!("tiergate: note: not audited: {}", output::printable(n));
    }
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let readiness = output::readiness_table(&audit.readiness, audit.at_owner);
    match a.output {
        CheckFormat::Json => output::json(&report, &mut stdout)?,
        CheckFormat::Sarif => stdout.write_all(output::sarif(&report).as_bytes())?,
        CheckFormat::Junit => stdout.write_all(output::junit(&report).as_bytes())?,
        CheckFormat::Table => {
            stdout.write_all(output::table(&report, output::use_colour()).as_bytes())?;
            stdout.write_all(readiness.as_bytes())?;
        }
    }
    stdout.flush()?;
    if !matches!(a.output, CheckFormat::Table) {
        eprint!("{readiness}");
    }
    let not_ready = audit.readiness.values().any(|r| !r.ready());
    Ok(if a.ready_for == Some(ReadyFor::Enforce) && not_ready {
        ExitCode::from(1)
    } else {
        exit_code(&report)
    })
}

async fn audit_client(
    kubeconfig: Option<&std::path::Path>,
    context: Option<&str>,
) -> anyhow::Result<kube::Client> {
    let options = kube::config::KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &options).await?
        }
        None if context.is_some() => kube::Config::from_kubeconfig(&options).await?,
        None => kube::Config::infer().await?,
    };
    Ok(kube::Client::try_from(config)?)
}

/// `tiergate scaffold`
pub fn scaffold(a: ScaffoldArgs) -> anyhow::Result<ExitCode> {
    use crate::scaffold::{self, AppKind};
    let cfg = Config::load(a.config.as_deref())?.0.policy;
    let req = scaffold::Request {
        name: a.name,
        tier: a.tier.parse::<Tier>()?,
        kind: match a.kind {
            ScaffoldKind::Deployment => AppKind::Deployment,
            ScaffoldKind::Statefulset => AppKind::StatefulSet,
            ScaffoldKind::Cronjob => AppKind::CronJob,
        },
        image: a.image,
        port: a.port,
        host: a.host,
        tenant: a.tenant,
    };
    let files = scaffold::scaffold(&req, &cfg)?;
    let Some(dir) = a.out else {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        for (i, f) in files
            .iter()
            .filter(|f| f.name != "kustomization.yaml")
            .enumerate()
        {
            if i > 0 {
                out.write_all(b"---\n")?;
            }
            writeln!(out, "# Source: {}", f.name)?;
            out.write_all(f.text.as_bytes())?;
        }
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    };
    // Nothing is overwritten: an existing file is the user's work.
    let existing: Vec<String> = files
        .iter()
        .map(|f| dir.join(&f.name))
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if !existing.is_empty() {
        anyhow::bail!(
            "not overwriting what is there (remove it or choose another --out): {}",
            existing.join(", ")
        );
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for f in &files {
        let path = dir.join(&f.name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        file.write_all(f.text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    eprintln!(
        "tiergate: wrote {} files to {} (tier {}, {}); apply with `kubectl apply -k {}`",
        files.len(),
        dir.display(),
        req.tier.number(),
        req.tier,
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn rules(a: RulesArgs) -> anyhow::Result<ExitCode> {
    let text = match a.output {
        RulesFormat::Json => output::rules_json(),
        RulesFormat::Markdown => output::rules_markdown(),
        RulesFormat::Table => output::rules_table(),
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
