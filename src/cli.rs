//! The command line. Doc comments here are the `--help` text.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::changes::{DiffCache, DocumentDiff};
use crate::config::Settings;
use crate::db::Db;
use crate::domain::{Slug, VersionNumber, VersionParam};
use crate::policies::{self, PolicySet, SyncError};
use crate::render::diff::Change;
use crate::startup::Application;

/// Assent: versioned policies, what changed between versions, and a verifiable record of who
/// accepted which version.
#[derive(Debug, Parser)]
#[command(name = "assent", version)]
pub struct Cli {
    /// Database: `sqlite://FILE` (created on first use) or `postgres://USER@HOST/DB`.
    #[arg(long, global = true, env = "ASSENT_DATABASE_URL", default_value = "sqlite://assent.db")]
    pub database_url: String,

    /// The policy folder: one sub-folder per document, holding v1.md, v2.md …
    #[arg(long, global = true, env = "ASSENT_POLICIES", default_value = "./policies")]
    pub policies: PathBuf,

    /// Language of the untranslated policy files (a BCP 47 tag).
    #[arg(long, global = true, env = "ASSENT_LOCALE", default_value = "en")]
    pub locale: String,

    /// Database connections in the pool.
    #[arg(long, global = true, env = "ASSENT_DB_POOL", default_value_t = 16)]
    pub db_pool: u32,

    /// Memory for computed diffs, in MiB.
    #[arg(long, global = true, env = "ASSENT_DIFF_CACHE_MB", default_value_t = 64)]
    pub diff_cache_mb: u64,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Migrate, publish new policy versions, and serve the pages and the API (the default).
    Serve {
        /// Address to listen on.
        #[arg(long, env = "ASSENT_BIND", default_value = "127.0.0.1:8080")]
        bind: String,
        /// HTTP worker threads (0: one per core).
        #[arg(long, env = "ASSENT_WORKERS", default_value_t = 0)]
        workers: usize,
    },
    /// Migrate and publish new versions from the policy folder; prints what it published.
    Sync,
    /// Validate a policy folder without a database; prints `file:line: message` per problem.
    Check {
        /// The folder to check (default: the policy folder).
        dir: Option<PathBuf>,
    },
    /// Print what changed between two published versions of a document: coloured on a
    /// terminal, plain when piped or when NO_COLOR is set.
    Diff {
        /// The document's slug, such as `privacy-policy`.
        slug: String,
        /// The version to compare from.
        from: String,
        /// The version to compare to.
        to: String,
        /// `word`: each changed block with its changed words marked; `unified`: a patch of the
        /// files that `patch` applies.
        #[arg(long, value_enum, default_value_t = DiffFormat::Word)]
        format: DiffFormat,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DiffFormat {
    Word,
    Unified,
}

impl Cli {
    fn settings(&self) -> Settings {
        let mut s = Settings::new(self.database_url.clone(), self.policies.clone());
        s.original_locale = self.locale.clone();
        s.pool_size = self.db_pool.max(1);
        s.diff_cache_bytes = self.diff_cache_mb.saturating_mul(1024 * 1024);
        s
    }
}

/// Runs a parsed command line and says how the process should exit.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut settings = cli.settings();
    match cli.command {
        None => serve(settings),
        Some(Command::Serve { bind, workers }) => {
            settings.bind = bind;
            settings.workers = workers;
            serve(settings)
        }
        Some(Command::Sync) => sync(&settings),
        Some(Command::Check { dir }) => Ok(check(dir.as_deref().unwrap_or(&settings.policies_dir))),
        Some(Command::Diff { slug, from, to, format }) => diff(&settings, &slug, &from, &to, format),
    }
}

fn serve(settings: Settings) -> anyhow::Result<ExitCode> {
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings)?;
        tracing::info!("Assent is serving at http://{}", app.address());
        app.run().await.context("the web server stopped with an error")?;
        Ok(ExitCode::SUCCESS)
    })
}

fn sync(settings: &Settings) -> anyhow::Result<ExitCode> {
    let Ok(set) = policies::load(&settings.policies_dir) else {
        return Ok(check(&settings.policies_dir));
    };
    let db = Db::open(&settings.database_url, 1).context("opening the database")?;
    let mut conn = db.get().context("connecting to the database")?;
    let mut out = std::io::stdout().lock();
    match policies::sync(&mut conn, &set, chrono::Utc::now()) {
        Ok(report) => {
            for line in &report.published {
                writeln!(out, "published {line}")?;
            }
            writeln!(
                out,
                "{} published, {} already published and unchanged",
                report.published.len(),
                report.unchanged
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Err(SyncError::Refused(problems)) => {
            let mut err = std::io::stderr().lock();
            for p in &problems {
                writeln!(err, "{p}")?;
            }
            writeln!(err, "nothing was published")?;
            Ok(ExitCode::FAILURE)
        }
        Err(SyncError::Db(e)) => Err(e).context("publishing the policy folder"),
    }
}

/// Validates a folder: problems to standard error, a one-line summary to standard output.
pub fn check(dir: &std::path::Path) -> ExitCode {
    match policies::load(dir) {
        Ok(set) => {
            println!("{}: {}", dir.display(), summary(&set));
            ExitCode::SUCCESS
        }
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            eprintln!("{} problem{} found", problems.len(), if problems.len() == 1 { "" } else { "s" });
            ExitCode::FAILURE
        }
    }
}

fn summary(set: &PolicySet) -> String {
    let versions: usize = set.documents.iter().map(|d| d.versions.len()).sum();
    let translations: usize = set.documents.iter().flat_map(|d| &d.versions).map(|v| v.translations.len()).sum();
    let drafts = set.documents.iter().flat_map(|d| &d.versions).filter(|v| v.front.draft).count();
    format!(
        "{} documents, {versions} versions ({drafts} drafts), {translations} translations: all valid",
        set.documents.len()
    )
}

fn version_arg(raw: &str) -> anyhow::Result<VersionNumber> {
    match VersionNumber::parse_param(raw)? {
        VersionParam::Number(n) => Ok(n),
        VersionParam::NoSuchVersion => anyhow::bail!("there is no version {raw}"),
    }
}

fn diff(settings: &Settings, slug: &str, from: &str, to: &str, format: DiffFormat) -> anyhow::Result<ExitCode> {
    let slug = Slug::parse(slug)?;
    let (from, to) = (version_arg(from)?, version_arg(to)?);
    let db = Db::open(&settings.database_url, 1).context("opening the database")?;
    let mut conn = db.get().context("connecting to the database")?;
    let catalog = crate::db::versions::load_catalog(&mut conn)?;
    let Some(doc) = catalog.document(&slug) else {
        anyhow::bail!("no published document `{slug}` (`assent sync` publishes the policy folder)");
    };
    for n in [from, to] {
        if doc.version(n).is_none() {
            anyhow::bail!("`{slug}` has no version {n}; its versions are 1 to {}", doc.versions.len());
        }
    }
    let cache = DiffCache::new(16 * 1024 * 1024);
    let Some(found) = cache.diff(&mut conn, &slug, from, to)? else {
        anyhow::bail!("the text of `{slug}` version {from} or {to} is missing");
    };
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let mut out = std::io::stdout().lock();
    match format {
        DiffFormat::Word => write_word_diff(&mut out, &found, color)?,
        DiffFormat::Unified => write_unified(&mut out, &found.unified, color)?,
    }
    Ok(ExitCode::SUCCESS)
}

const RED_STRIKE: &str = "\x1b[31;9m";
const GREEN_UNDERLINE: &str = "\x1b[32;4m";
const BOLD: &str = "\x1b[1m";
const CYAN: &str = "\x1b[36m";
const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const RESET: &str = "\x1b[0m";

/// Each changed block under its section heading, with deleted words as `[-…-]` and inserted
/// ones as `{+…+}` (or red struck-through and green underlined on a terminal).
pub fn write_word_diff(out: &mut impl Write, diff: &DocumentDiff, color: bool) -> std::io::Result<()> {
    let changes = &diff.changes;
    writeln!(
        out,
        "{}: version {} → version {} ({} words inserted, {} deleted)",
        diff.slug, diff.from, diff.to, changes.insertions, changes.deletions
    )?;
    if changes.is_empty() {
        return writeln!(out, "The text is the same.");
    }
    let mut section: Option<&str> = None;
    for block in changes.blocks.iter().filter(|b| b.change != Change::Unchanged) {
        let here = block.section.as_deref().unwrap_or("Opening text");
        if section != Some(here) {
            if color {
                writeln!(out, "\n{BOLD}§ {here}{RESET}")?;
            } else {
                writeln!(out, "\n§ {here}")?;
            }
            section = Some(here);
        }
        let mut line = String::new();
        for seg in &block.segments {
            let text = seg.text.trim_matches('\n');
            match (seg.op, color) {
                ("insert", true) => line.push_str(&format!("{GREEN_UNDERLINE}{text}{RESET}")),
                ("delete", true) => line.push_str(&format!("{RED_STRIKE}{text}{RESET}")),
                ("insert", false) => line.push_str(&format!("{{+{text}+}}")),
                ("delete", false) => line.push_str(&format!("[-{text}-]")),
                _ => line.push_str(text),
            }
        }
        for l in line.trim().lines() {
            writeln!(out, "  {l}")?;
        }
    }
    Ok(())
}

fn write_unified(out: &mut impl Write, unified: &str, color: bool) -> std::io::Result<()> {
    if !color {
        return out.write_all(unified.as_bytes());
    }
    for line in unified.split_inclusive('\n') {
        let style = if line.starts_with("+++") || line.starts_with("---") {
            BOLD
        } else if line.starts_with("@@") {
            CYAN
        } else if line.starts_with('+') {
            GREEN
        } else if line.starts_with('-') {
            RED
        } else {
            ""
        };
        if style.is_empty() {
            out.write_all(line.as_bytes())?;
        } else {
            write!(
                out,
                "{style}{}{RESET}{}",
                line.trim_end_matches('\n'),
                if line.ends_with('\n') { "\n" } else { "" }
            )?;
        }
    }
    Ok(())
}
