//! The command line. Doc comments here are the `--help` text.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::Settings;
use crate::db::Db;
use crate::policies::{self, PolicySet, SyncError};
use crate::startup::Application;

/// Assent: versioned policies, what changed between versions, and a verifiable record of who
/// accepted which version.
#[derive(Debug, Parser)]
#[command(name = "assent", version)]
pub struct Cli {
    /// Database: `sqlite://FILE` (created on first use) or `postgres://USER@HOST/DB`.
    #[arg(
        long,
        global = true,
        env = "ASSENT_DATABASE_URL",
        default_value = "sqlite://assent.db"
    )]
    pub database_url: String,

    /// The policy folder: one sub-folder per document, holding v1.md, v2.md …
    #[arg(
        long,
        global = true,
        env = "ASSENT_POLICIES",
        default_value = "./policies"
    )]
    pub policies: PathBuf,

    /// Language of the untranslated policy files (a BCP 47 tag).
    #[arg(long, global = true, env = "ASSENT_LOCALE", default_value = "en")]
    pub locale: String,

    /// Database connections in the pool.
    #[arg(long, global = true, env = "ASSENT_DB_POOL", default_value_t = 16)]
    pub db_pool: u32,

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
}

impl Cli {
    fn settings(&self) -> Settings {
        let mut s = Settings::new(self.database_url.clone(), self.policies.clone());
        s.original_locale = self.locale.clone();
        s.pool_size = self.db_pool.max(1);
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
    }
}

fn serve(settings: Settings) -> anyhow::Result<ExitCode> {
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings)?;
        tracing::info!("Assent is serving at http://{}", app.address());
        app.run()
            .await
            .context("the web server stopped with an error")?;
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
            eprintln!(
                "{} problem{} found",
                problems.len(),
                if problems.len() == 1 { "" } else { "s" }
            );
            ExitCode::FAILURE
        }
    }
}

fn summary(set: &PolicySet) -> String {
    let versions: usize = set.documents.iter().map(|d| d.versions.len()).sum();
    let translations: usize = set
        .documents
        .iter()
        .flat_map(|d| &d.versions)
        .map(|v| v.translations.len())
        .sum();
    let drafts = set
        .documents
        .iter()
        .flat_map(|d| &d.versions)
        .filter(|v| v.front.draft)
        .count();
    format!(
        "{} documents, {versions} versions ({drafts} drafts), {translations} translations: all valid",
        set.documents.len()
    )
}
