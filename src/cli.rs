//! The command line. Doc comments here are the `--help` text.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::changes::{DiffCache, DocumentDiff};
use crate::config::Settings;
use crate::db::Db;
use crate::domain::{Scope, Slug, SubjectId, VersionNumber, VersionParam};
use crate::policies::{self, PolicySet, SyncError};
use crate::render::diff::Change;
use crate::startup::Application;
use crate::startup::IfMissing;

/// Assent: versioned policies, what changed between versions, and a verifiable record of who
/// accepted which version.
#[derive(Debug, Parser)]
#[command(
    name = "assent",
    version,
    after_help = "Exit codes: 0 done; 1 it failed (each command's --help says how); 2 it could not run (a wrong setting or argument); 141 its reader stopped early (`| head`)."
)]
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

    /// Database connections in the pool (default: 4 on SQLite, 16 on PostgreSQL).
    #[arg(long, global = true, env = "ASSENT_DB_POOL")]
    pub db_pool: Option<u32>,

    /// How long a request waits for a database connection before it is answered 503 (`1s`).
    #[arg(long, global = true, env = "ASSENT_DB_POOL_WAIT", default_value = "1s")]
    pub db_pool_wait: String,

    /// Memory for computed diffs, in MiB.
    #[arg(long, global = true, env = "ASSENT_DIFF_CACHE_MB", default_value_t = 64)]
    pub diff_cache_mb: u64,

    /// How much of a client's IP address the ledger keeps: full, truncated (IPv4 /24, IPv6
    /// /48), hashed (keyed) or none.
    #[arg(long, global = true, env = "ASSENT_IP_MODE", default_value = "truncated")]
    pub ip_mode: String,

    /// The server secret (keys IP hashes and signs links); generated and kept in the database
    /// when unset.
    #[arg(long, global = true, env = "ASSENT_SECRET", hide_env_values = true)]
    pub secret: Option<String>,

    /// The log's signing key, in the Go note package's `PRIVATE+KEY+name+hash+base64` form;
    /// generated and kept in the database when unset.
    #[arg(long, global = true, env = "ASSENT_LOG_KEY", hide_env_values = true)]
    pub log_key: Option<String>,

    /// Erase the IP address and user agent of events older than this (`400d`, `13w`), when the
    /// server starts and at least hourly after; kept forever when unset.
    #[arg(long, global = true, env = "ASSENT_EVIDENCE_RETENTION")]
    pub evidence_retention: Option<String>,

    /// Origins a consent link may send people back to, comma-separated
    /// (`https://app.example.com,http://localhost:3000`).
    #[arg(long, global = true, env = "ASSENT_ALLOWED_RETURN_ORIGINS", default_value = "")]
    pub allowed_return_origins: String,

    /// Proxies whose forwarded headers (X-Forwarded-For, Forwarded, X-Forwarded-Host and
    /// -Proto) are believed, comma-separated addresses or networks.
    #[arg(long, global = true, env = "ASSENT_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,

    /// Which forwarded headers the trusted proxies set: `x-forwarded` (X-Forwarded-For, -Host,
    /// -Proto) or `forwarded` (RFC 7239). Only that family is believed.
    #[arg(long, global = true, env = "ASSENT_FORWARDED_HEADERS", default_value = "x-forwarded")]
    pub forwarded_headers: String,

    /// The address people reach this server at, used in consent links (default: what the
    /// request says, or http://127.0.0.1:8080 on the command line).
    #[arg(long, global = true, env = "ASSENT_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Let webhooks call loopback and private addresses (refused by default: a registered URL
    /// could otherwise reach into the servers' own network).
    #[arg(long, global = true, env = "ASSENT_WEBHOOK_ALLOW_PRIVATE", value_parser = clap::builder::BoolishValueParser::new(),
        num_args = 0..=1, require_equals = true, default_value_t = false, default_missing_value = "true")]
    pub webhook_allow_private: bool,

    /// An admin session not used for this long ends (`30m`, `2h`).
    #[arg(long, global = true, env = "ASSENT_ADMIN_IDLE_TIMEOUT", default_value = "30m")]
    pub admin_idle_timeout: String,

    /// For tests: how long a webhook endpoint has to answer (default 10s).
    #[arg(long, global = true, env = "ASSENT_WEBHOOK_TIMEOUT", default_value = "10s", hide = true)]
    pub webhook_timeout: String,

    /// For tests: the first delay before a failed webhook delivery is retried (default 10s;
    /// later delays grow from it, up to an hour).
    #[arg(long, global = true, env = "ASSENT_WEBHOOK_RETRY_FIRST", default_value = "10s", hide = true)]
    pub webhook_retry_first: String,

    /// For tests: how long a failing webhook delivery is retried before it is marked failed
    /// (default 24h).
    #[arg(long, global = true, env = "ASSENT_WEBHOOK_RETRY_PERIOD", default_value = "24h", hide = true)]
    pub webhook_retry_period: String,

    /// Address to listen on (`serve`, and the base of `link` without ASSENT_PUBLIC_URL).
    #[arg(long, global = true, env = "ASSENT_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,

    /// HTTP worker threads (0: one per core).
    #[arg(long, global = true, env = "ASSENT_WORKERS", default_value_t = 0)]
    pub workers: usize,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Migrate, publish new policy versions, and serve the pages and the API (the default).
    #[command(
        after_help = "Exit codes: 0 stopped; 1 it could not start or stopped with an error (an invalid policy folder, an address in use, a database that cannot be opened); 2 a setting is wrong. Any command: 141 when its reader stopped early (`| head`)."
    )]
    Serve,
    /// Migrate and publish new versions from the policy folder; prints what it published.
    #[command(
        after_help = "Exit codes: 0 published, or nothing was new; 1 the policy folder cannot be published (each problem printed as file:line: message; nothing was changed), or the database failed; 2 a setting is wrong. Any command: 141 when its reader stopped early (`| head`)."
    )]
    Sync,
    /// Validate a policy folder without a database; prints `file:line: message` per problem.
    #[command(
        after_help = "Exit codes: 0 valid; 1 problems found (each printed as file:line: message). Any command: 141 when its reader stopped early (`| head`)."
    )]
    Check {
        /// The folder to check (default: the policy folder).
        dir: Option<PathBuf>,
    },
    /// Print what changed between two published versions of a document: coloured on a
    /// terminal, plain when piped or when NO_COLOR is set.
    #[command(
        after_help = "Exit codes: 0 printed; 1 no such document or version, or the database failed; 2 a setting is wrong. Any command: 141 when its reader stopped early (`| head`)."
    )]
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
    /// Manage API keys.
    #[command(subcommand)]
    #[command(
        after_help = "Exit codes: 0 done; 1 refused (no live key by that name, a name in use, a bad scope or audience) or the database failed; 2 a setting is wrong, or (list) there is no such database. Any command: 141 when its reader stopped early (`| head`)."
    )]
    Keys(KeysCommand),
    /// Print a subject's events, oldest first.
    #[command(
        after_help = "Exit codes: 0 printed (also when the subject has no events); 1 the database failed; 2 a setting is wrong, or the database does not exist or needs upgrading. Any command: 141 when its reader stopped early (`| head`)."
    )]
    History {
        /// The subject id, exactly as the host application sends it.
        subject: String,
        /// One JSON object per event instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Check every subject's hash chain, every stored version against its content hash and its
    /// leaf, and the log; with --checkpoint, also that the log still contains each saved
    /// checkpoint unchanged.
    #[command(
        after_help = "Exit codes: 0 intact; 1 something is broken (each problem is printed); 2 the command could not run (a wrong setting, no such database, an unreadable checkpoint file, a malformed key). Any command: 141 when its reader stopped early (`| head`)."
    )]
    Verify {
        /// A checkpoint saved earlier (`assent log checkpoint > FILE`); may be given many times.
        #[arg(long = "checkpoint", value_name = "FILE")]
        checkpoints: Vec<PathBuf>,
        /// The verifier key the checkpoints were signed with (`name+hash+base64`), as pinned
        /// when they were saved; default: the key in the database.
        #[arg(long, value_name = "KEY")]
        verifier_key: Option<String>,
    },
    /// The log (contract §7).
    #[command(subcommand)]
    #[command(
        after_help = "Exit codes: 0 printed; 1 the database failed; 2 a setting is wrong, or the database does not exist or holds no log key. Any command: 141 when its reader stopped early (`| head`)."
    )]
    Log(LogCommand),
    /// Erase a subject's personal data (its id, IP addresses and user agents): the chains and
    /// the log stay verifiable. Exit 1 when nothing of the subject is held.
    #[command(
        after_help = "Exit codes: 0 erased; 1 nothing of the subject is held, or the database failed; 2 a setting is wrong, or there is no such database. Any command: 141 when its reader stopped early (`| head`)."
    )]
    Erase {
        /// The subject id, exactly as the host application knows it.
        subject: String,
    },
    /// Stream events to standard output, oldest first, in constant memory.
    #[command(
        after_help = "Exit codes: 0 exported (the count on standard error); 1 the database failed; 2 refused: an unknown document, a date that does not parse or is outside the years 1 to 9999, a wrong setting, or no such database (nothing is written). Any command: 141 when its reader stopped early (`| head`)."
    )]
    Export {
        /// `csv` (RFC 4180, formula cells neutralised) or `jsonl`.
        #[arg(long, default_value = "csv", value_parser = ["csv", "jsonl"])]
        format: String,
        /// Only events recorded at or after this time (`2026-01-01` or RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Only events recorded before this time.
        #[arg(long)]
        until: Option<String>,
        /// Only events about this document.
        #[arg(long)]
        document: Option<String>,
    },
    /// Manage webhook endpoints (contract §9): deliveries of events and new versions, signed.
    #[command(subcommand)]
    #[command(
        after_help = "Exit codes: 0 done; 1 refused (a URL that is not public http(s), an unknown event type or endpoint) or the database failed; 2 a setting is wrong, or (list, deliveries) there is no such database. Any command: 141 when its reader stopped early (`| head`)."
    )]
    Webhooks(WebhooksCommand),
    /// Print a signed consent link for a subject.
    #[command(
        after_help = "Exit codes: 0 printed; 1 refused (a return address whose origin is not allowed, a ttl over 7 days, an unknown audience) or the database failed; 2 a setting is wrong. Any command: 141 when its reader stopped early (`| head`)."
    )]
    Link {
        /// The subject id, exactly as the host application knows it.
        subject: String,
        /// Where to send the subject afterwards; its origin must be allowed.
        #[arg(long)]
        return_to: String,
        /// How long the link works, such as 30m, 1h or 2days (at most 7 days).
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// Ask only about the documents of this audience (such as `developers`).
        #[arg(long)]
        audience: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Print the newest signed checkpoint. Save it somewhere the database's owner cannot edit;
    /// `assent verify --checkpoint FILE` later proves the log only grew since.
    Checkpoint,
    /// Print the verifier key that checks the checkpoints' signatures.
    Key,
}

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Register an endpoint and print its id and signing secret (shown only now).
    Add {
        /// Where to POST deliveries: http or https, at most 2 KiB; not a private address unless
        /// ASSENT_WEBHOOK_ALLOW_PRIVATE=1.
        url: String,
        /// What to announce, comma-separated: accepted, declined, withdrawn, erased,
        /// erasure_requested, published.
        #[arg(long, value_delimiter = ',', required = true)]
        events: Vec<String>,
    },
    /// List endpoints, with how many deliveries wait and how many failed.
    List,
    /// Remove an endpoint; what it still had to deliver is cancelled.
    Remove { id: i64 },
    /// An endpoint's delivery log, newest first.
    Deliveries {
        id: i64,
        /// Only deliveries in this state: pending, delivered, failed or cancelled.
        #[arg(long)]
        state: Option<String>,
        /// How many to show.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Retry failed deliveries of an endpoint: every one, or one with --delivery.
    Retry {
        id: i64,
        /// One failed delivery (its id in `assent webhooks deliveries`).
        #[arg(long)]
        delivery: Option<i64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print it once (only a hash is stored).
    Create {
        /// A name for the key, such as the host application's.
        name: String,
        /// What the key may do: read (GET), write (POST and GET) or admin (everything).
        #[arg(long, value_parser = ["read", "write", "admin"])]
        scope: String,
        /// Bind the key to one audience (such as `sdk-users`): it then sees and records only the
        /// documents that apply to it.
        #[arg(long)]
        audience: Option<String>,
    },
    /// List keys: name, scope, when created, when last used, whether revoked.
    List,
    /// Revoke a key by name; requests with it are refused within seconds.
    Revoke { name: String },
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
        if let Some(pool) = self.db_pool {
            s.pool_size = pool.max(1);
        }
        s.diff_cache_bytes = self.diff_cache_mb.saturating_mul(1024 * 1024);
        s.secret = self.secret.clone();
        s.log_key = self.log_key.clone();
        s.bind = self.bind.clone();
        s.workers = self.workers;
        s
    }
}

/// The settings a command line and the environment give, each checked.
fn settings_of(cli: &Cli) -> anyhow::Result<Settings> {
    let mut settings = cli.settings();
    settings.ip_mode = cli.ip_mode.parse().context("ASSENT_IP_MODE")?;
    settings.return_origins =
        crate::consent::ReturnOrigins::parse(&cli.allowed_return_origins).context("ASSENT_ALLOWED_RETURN_ORIGINS")?;
    settings.trusted_proxies = crate::consent::TrustedProxies::parse(
        &cli.trusted_proxies,
        cli.forwarded_headers.parse().context("ASSENT_FORWARDED_HEADERS")?,
    )
    .context("ASSENT_TRUSTED_PROXIES")?;
    settings.public_url = match cli.public_url.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
        None => None,
        Some(raw) => {
            if crate::consent::Origin::of_url(raw).is_none_or(|o| o.scheme != "http" && o.scheme != "https") {
                return Err(Refused(format!(
                    "ASSENT_PUBLIC_URL `{raw}`: use an absolute http(s) URL, such as https://policies.example.com"
                ))
                .into());
            }
            Some(raw.to_owned())
        }
    };
    let duration = |raw: &str, name: &str| {
        humantime::parse_duration(raw.trim())
            .ok()
            .filter(|d| !d.is_zero())
            .with_context(|| format!("{name} `{raw}`: use a duration above zero, such as 10s, 500ms or 24h"))
    };
    settings.admin_idle_timeout = duration(&cli.admin_idle_timeout, "ASSENT_ADMIN_IDLE_TIMEOUT")?;
    settings.pool_wait = duration(&cli.db_pool_wait, "ASSENT_DB_POOL_WAIT")?;
    settings.webhooks = crate::webhooks::WebhookSettings {
        allow_private: cli.webhook_allow_private,
        timeout: duration(&cli.webhook_timeout, "ASSENT_WEBHOOK_TIMEOUT")?,
        retry: crate::webhooks::RetryPolicy {
            first: duration(&cli.webhook_retry_first, "ASSENT_WEBHOOK_RETRY_FIRST")?,
            period: duration(&cli.webhook_retry_period, "ASSENT_WEBHOOK_RETRY_PERIOD")?,
            ..Default::default()
        },
    };
    settings.evidence_retention = match cli.evidence_retention.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(raw) => Some(
            humantime::parse_duration(raw)
                .with_context(|| format!("ASSENT_EVIDENCE_RETENTION `{raw}`: use a duration such as 400d or 13w"))?,
        ),
    };
    Ok(settings)
}

/// Runs a parsed command line and says how the process should exit.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // A wrong setting means the command could not run: exit 2, whatever the command.
    let settings = settings_of(&cli).map_err(|e| Refused(format!("{e:#}")))?;
    match cli.command {
        None | Some(Command::Serve) => serve(settings),
        Some(Command::Sync) => sync(&settings),
        Some(Command::Check { dir }) => Ok(check(dir.as_deref().unwrap_or(&settings.policies_dir))),
        Some(Command::Diff { slug, from, to, format }) => diff(&settings, &slug, &from, &to, format),
        Some(Command::Keys(command)) => keys(&settings, command),
        Some(Command::History { subject, json }) => history(&settings, &subject, json),
        Some(Command::Verify { checkpoints, verifier_key }) => verify(&settings, &checkpoints, verifier_key.as_deref()),
        Some(Command::Log(command)) => log(&settings, command),
        Some(Command::Erase { subject }) => erase(&settings, &subject),
        Some(Command::Webhooks(command)) => webhooks(&settings, command),
        Some(Command::Link { subject, return_to, ttl, audience }) => {
            link(&settings, &subject, &return_to, &ttl, audience.as_deref())
        }
        Some(Command::Export { format, since, until, document }) => {
            export(&settings, &format, since.as_deref(), until.as_deref(), document.as_deref())
        }
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
    let set = match policies::load(&settings.policies_dir) {
        Ok(set) => set,
        Err(problems) => return Ok(report_problems(&problems)),
    };
    let db = Db::open(&settings.database_url, 1).context("opening the database")?;
    if db.created() {
        eprintln!("created a new Assent database: {}", Db::describe(&settings.database_url));
    }
    let mut conn = db.get().context("connecting to the database")?;
    // The keys exist from the first sync on, so that commands that only read find them.
    crate::startup::Keys::load(&mut conn, settings, IfMissing::Generate)?;
    let mut out = std::io::stdout().lock();
    let bar = spinner("publishing the policy folder and taking its versions into the log");
    let synced = policies::sync(&mut conn, &set, chrono::Utc::now());
    bar.finish_and_clear();
    match synced {
        Ok(report) => {
            if !report.published.is_empty() {
                crate::freshness::settle();
            }
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
            let _ = writeln!(std::io::stdout(), "{}: {}", dir.display(), summary(&set));
            ExitCode::SUCCESS
        }
        Err(problems) => report_problems(&problems),
    }
}

/// Prints problems as `file:line: message`, one a line, then how many.
fn report_problems(problems: &[policies::Problem]) -> ExitCode {
    for p in problems {
        eprintln!("{p}");
    }
    eprintln!("{} problem{} found", problems.len(), if problems.len() == 1 { "" } else { "s" });
    ExitCode::FAILURE
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

fn open(settings: &Settings) -> anyhow::Result<crate::db::PooledConnection> {
    let db = Db::open(&settings.database_url, 1).context("opening the database")?;
    db.get().context("connecting to the database")
}

/// For commands that only read: refuses a database that does not exist or holds no Assent data,
/// and creates nothing.
fn open_existing(settings: &Settings) -> anyhow::Result<crate::db::PooledConnection> {
    open_existing_db(settings, 1)?.get().context("connecting to the database")
}

/// The database for a command that only reads: it must exist and be up to date, and nothing
/// is changed. Any reason it cannot be opened means the command cannot run (exit 2).
fn open_existing_db(settings: &Settings, connections: u32) -> anyhow::Result<Db> {
    Db::open_existing(&settings.database_url, connections).map_err(|e| cannot_open(settings, e))
}

/// Why a database that must exist could not be opened: the command cannot run (exit 2).
fn cannot_open(settings: &Settings, e: crate::db::DbError) -> anyhow::Error {
    match e {
        crate::db::DbError::Missing(message) => Refused(message).into(),
        other => Refused(format!("cannot open {}: {other}", Db::describe(&settings.database_url))).into(),
    }
}

/// A spinner on standard error while a command works, on a terminal only (hidden when piped).
fn spinner(template: &str) -> indicatif::ProgressBar {
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new_spinner()
    } else {
        indicatif::ProgressBar::hidden()
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(&format!("{{spinner}} {template} {{elapsed}}")) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

/// A command refused to run; `main` prints it and exits 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

fn time(t: chrono::NaiveDateTime) -> String {
    t.and_utc().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn keys(settings: &Settings, command: KeysCommand) -> anyhow::Result<ExitCode> {
    // Only `create` may start a database: revoking in one that was just made would only say
    // "no such key" about a mistyped database URL.
    let mut conn = match command {
        KeysCommand::Create { .. } => open(settings)?,
        KeysCommand::List => open_existing(settings)?,
        KeysCommand::Revoke { .. } => Db::open_existing_to_change(&settings.database_url)
            .map_err(|e| cannot_open(settings, e))?
            .get()
            .context("connecting to the database")?,
    };
    let mut out = std::io::stdout().lock();
    match command {
        KeysCommand::Create { name, scope, audience } => {
            let scope: Scope = scope.parse()?;
            let audience = known_audience(&mut conn, audience.as_deref())?;
            let key = crate::ledger::keys::create(&mut conn, &name, scope, audience.as_ref(), chrono::Utc::now())?;
            writeln!(out, "{key}")?;
            let bound = audience.map(|a| format!(", audience `{a}`")).unwrap_or_default();
            eprintln!("Key `{name}` ({}{bound}) created. It is shown only now: store it as a secret.", scope.as_str());
        }
        KeysCommand::List => {
            let rows = crate::db::keys::all_keys(&mut conn)?;
            writeln!(
                out,
                "{:<24} {:<6} {:<16} {:<21} {:<21} REVOKED",
                "NAME", "SCOPE", "AUDIENCE", "CREATED", "LAST USED"
            )?;
            for k in rows {
                writeln!(
                    out,
                    "{:<24} {:<6} {:<16} {:<21} {:<21} {}",
                    k.name,
                    k.scope,
                    k.audience.as_deref().unwrap_or("(all)"),
                    time(k.created_at),
                    k.last_used_at.map_or_else(|| "never".to_owned(), time),
                    k.revoked_at.map_or_else(|| "-".to_owned(), time)
                )?;
            }
        }
        KeysCommand::Revoke { name } => {
            crate::ledger::keys::revoke(&mut conn, &name, chrono::Utc::now())?;
            crate::freshness::settle();
            writeln!(out, "revoked `{name}`")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Who the command line is, in what it records: `cli:$USER`.
fn cli_user() -> String {
    std::env::var("USER").map(|u| format!("cli:{u}")).unwrap_or_else(|_| "cli".into())
}

fn webhooks(settings: &Settings, command: WebhooksCommand) -> anyhow::Result<ExitCode> {
    use crate::webhooks::{self as hooks, Subscription, WebhookError};
    let reads = matches!(command, WebhooksCommand::List | WebhooksCommand::Deliveries { .. });
    let mut conn = if reads { open_existing(settings)? } else { open(settings)? };
    let mut out = std::io::stdout().lock();
    let now = chrono::Utc::now();
    let result = match command {
        WebhooksCommand::Add { url, events } => Subscription::parse(&events)
            .and_then(|s| hooks::register(&mut conn, &url, s, &cli_user(), settings.webhooks.allow_private, now))
            .map(|r| {
                let types: Vec<&str> = r.events.iter().map(|t| t.as_str()).collect();
                let _ = writeln!(out, "{}", r.secret);
                eprintln!(
                    "Webhook {} registered for {} ({}). Its secret, above, is shown only now: deliveries are signed with it (Standard Webhooks).",
                    r.id,
                    r.url,
                    types.join(", ")
                );
            }),
        WebhooksCommand::List => hooks::list(&mut conn).map(|endpoints| {
            let _ = writeln!(out, "{:<6} {:<8} {:<7} {:<27} {:<44} URL", "ID", "PENDING", "FAILED", "CREATED", "EVENTS");
            for e in endpoints {
                let types: Vec<&str> = e.events.iter().map(|t| t.as_str()).collect();
                let _ =
                    writeln!(out, "{:<6} {:<8} {:<7} {:<27} {:<44} {}", e.id, e.pending, e.failed, e.created_at, types.join(","), e.url);
            }
        }),
        WebhooksCommand::Remove { id } => hooks::remove(&mut conn, id, now).map(|()| {
            let _ = writeln!(out, "removed webhook {id}; what it still had to deliver is cancelled");
        }),
        WebhooksCommand::Deliveries { id, state, limit } => {
            hooks::deliveries(&mut conn, id, state.as_deref(), None, limit.clamp(1, 1000)).map(|page| {
                let _ = writeln!(out, "{:<8} {:<18} {:<10} {:<8} {:<27} LAST ERROR", "ID", "TYPE", "STATE", "ATTEMPTS", "LAST ATTEMPT");
                for d in page.deliveries {
                    let _ = writeln!(
                        out,
                        "{:<8} {:<18} {:<10} {:<8} {:<27} {}",
                        d.id,
                        d.event_type.as_str(),
                        d.state,
                        d.attempts,
                        d.last_attempt_at.as_deref().unwrap_or("-"),
                        d.last_error.as_deref().unwrap_or("-")
                    );
                }
            })
        }
        WebhooksCommand::Retry { id, delivery } => hooks::retry(&mut conn, id, delivery, now).map(|n| {
            let what = if n == 1 { "1 failed delivery is".to_owned() } else { format!("{n} failed deliveries are") };
            let _ = writeln!(out, "{what} pending again; a running server sends them within seconds");
        }),
    };
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(WebhookError::Db(e)) => Err(e).context("webhooks"),
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn history(settings: &Settings, subject: &str, json: bool) -> anyhow::Result<ExitCode> {
    let subject = SubjectId::parse(subject)?;
    let mut conn = open_existing(settings)?;
    let keys = crate::startup::Keys::load(&mut conn, settings, IfMissing::Refuse)?;
    let rows = crate::db::ledger::events_of(&mut conn, &keys.subject_keys.key(&subject))?;
    let mut out = std::io::stdout().lock();
    if rows.is_empty() {
        eprintln!("no events for subject {:?}", subject.as_str());
        return Ok(ExitCode::SUCCESS);
    }
    if !json {
        writeln!(out, "{}", history_row(["SEQ", "RECORDED AT", "KIND", "COVERS", "VIA", "BY", "IP", "CHAIN HASH"]))?;
    }
    for event in &rows {
        let view = crate::ledger::export::EventView::of(event)?;
        if json {
            writeln!(out, "{}", serde_json::to_string(&view)?)?;
        } else {
            let covers: Vec<String> =
                view.receipt.covers.iter().map(|c| format!("{} v{}", c.document, c.version)).collect();
            let row = &event.row;
            let hash = format!(
                "{}{}",
                &row.chain_hash[..16.min(row.chain_hash.len())],
                if view.erased { "  (erased)" } else { "" }
            );
            let line = history_row([
                &row.seq.to_string(),
                &view.receipt.recorded_at,
                &row.kind,
                &covers.join(", "),
                &row.method,
                &row.recorded_by,
                view.evidence.ip.as_deref().unwrap_or("-"),
                &hash,
            ]);
            writeln!(out, "{line}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A line of `history`'s table: the columns padded to their widths (the last one is not).
fn history_row(cells: [&str; 8]) -> String {
    const WIDTHS: [usize; 7] = [4, 27, 17, 24, 12, 16, 15];
    let mut line = format!("{:>4}", cells[0]);
    for (cell, width) in cells[1..7].iter().zip(&WIDTHS[1..]) {
        line.push_str(&format!("  {cell:<width$}"));
    }
    line.push_str("  ");
    line.push_str(cells[7]);
    line
}

fn verify(settings: &Settings, checkpoints: &[PathBuf], verifier_key: Option<&str>) -> anyhow::Result<ExitCode> {
    use crate::log::note::{CheckpointError, NoteVerifier, open_checkpoint};
    // The log and each share of the chains are walked at once.
    let db = open_existing_db(settings, crate::ledger::verify::CONNECTIONS)?;
    let mut conn = db.get().context("connecting to the database")?;
    let verifier = match verifier_key {
        Some(text) => NoteVerifier::parse(text).map_err(|e| Refused(format!("--verifier-key: {e}")))?,
        None => {
            let key = crate::startup::log_key(&mut conn, settings.log_key.as_deref(), IfMissing::Refuse)?;
            NoteVerifier::parse(&key.verifier()).context("the log's own key")?
        }
    };
    let keys = crate::startup::Keys::load(&mut conn, settings, IfMissing::Refuse)?;
    drop(conn);
    // A file that is not a checkpoint of this log cannot be checked: that is a mistake in the
    // command, not a finding about the ledger. An altered one is a finding.
    let mut saved = Vec::new();
    for path in checkpoints {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Refused(format!("{}: cannot read the checkpoint: {e}", path.display())))?;
        if let Err(CheckpointError::Unreadable(e)) = open_checkpoint(&text, &verifier) {
            let hint = if text.contains('\r') {
                " (its lines end in CR LF: a checkpoint is saved byte for byte, with LF line ends)"
            } else {
                " (pass the log's key with --verifier-key if this database's servers sign with ASSENT_LOG_KEY)"
            };
            return Err(Refused(format!("{}: not a checkpoint of this log: {e}{hint}", path.display())).into());
        }
        saved.push((path.display().to_string(), text));
    }
    let progress = std::io::stderr().is_terminal();
    let report = crate::ledger::verify::verify(&db, &keys.subject_keys, &saved, &verifier, progress)?;
    if report.queued > 0 {
        writeln!(
            std::io::stdout(),
            "note: {} committed entries wait to enter the log (a server is taking them in, or stopped before it could: the next start does)",
            report.queued
        )?;
    }
    for p in &report.problems {
        writeln!(std::io::stdout(), "BROKEN {p}")?;
    }
    writeln!(
        std::io::stdout(),
        "checked {} stored versions, {} subjects, {} events, {} log leaves, {} saved checkpoints: {}",
        report.versions,
        report.subjects,
        report.events,
        report.leaves,
        report.checkpoints,
        if report.problems.is_empty() {
            "all intact".to_owned()
        } else {
            format!("{} problems", report.problems.len())
        }
    )?;
    Ok(if report.problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn log(settings: &Settings, command: LogCommand) -> anyhow::Result<ExitCode> {
    let mut conn = open_existing(settings)?;
    let key = crate::startup::log_key(&mut conn, settings.log_key.as_deref(), IfMissing::Refuse)?;
    match command {
        LogCommand::Checkpoint => {
            let head = crate::log::head(&mut conn)?;
            write!(std::io::stdout(), "{}", key.checkpoint(head.size, &head.root))?;
        }
        LogCommand::Key => writeln!(std::io::stdout(), "{}", key.verifier())?,
    }
    Ok(ExitCode::SUCCESS)
}

fn erase(settings: &Settings, subject: &str) -> anyhow::Result<ExitCode> {
    let subject = SubjectId::parse(subject)?;
    let mut conn = open_existing(settings)?;
    let keys = crate::startup::Keys::load(&mut conn, settings, IfMissing::Generate)?;
    let key = keys.subject_keys.key(&subject);
    let bar = spinner("erasing and logging the erasure");
    let erased =
        crate::ledger::erase(&mut conn, &subject, &key, &cli_user(), crate::ledger::Method::Cli, chrono::Utc::now());
    bar.finish_and_clear();
    match erased {
        Ok(e) => {
            writeln!(
                std::io::stdout(),
                "erased the personal data of {} events; the erasure is log leaf {}",
                e.erased_events,
                e.log_index.map_or_else(|| "-".to_owned(), |i| i.to_string())
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Err(crate::ledger::RecordError::NothingToErase) => {
            eprintln!(
                "nothing to erase: no personal data of {:?} is held (unknown, or erased already)",
                subject.as_str()
            );
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e).context("erasing"),
    }
}

/// `--audience NAME`, checked against the published documents (the API's rule, §6).
fn known_audience(
    conn: &mut crate::db::PooledConnection,
    asked: Option<&str>,
) -> anyhow::Result<Option<crate::domain::Audience>> {
    match asked {
        None => return Ok(None),
        Some(a) if a.trim().is_empty() => anyhow::bail!("--audience: name an audience, such as `developers`"),
        Some(_) => {}
    }
    let catalog = crate::db::versions::load_catalog(conn)?;
    crate::domain::rules::audience_for(&catalog, None, asked)
        .map_err(|e| anyhow::anyhow!("--audience: {e} (`assent sync` publishes the policy folder's audiences)"))
}

fn link(
    settings: &Settings,
    subject: &str,
    return_to: &str,
    ttl: &str,
    audience: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let ttl =
        humantime::parse_duration(ttl).with_context(|| format!("--ttl `{ttl}`: use a duration such as 30m or 1h"))?;
    let mut conn = open(settings)?;
    let audience = known_audience(&mut conn, audience)?;
    let secret = crate::startup::server_secret(&mut conn, settings.secret.as_deref(), IfMissing::Generate)?;
    let key = crate::consent::link_key(&secret).map_err(|e| anyhow::anyhow!("{e}"))?;
    let base = match settings.public_url.clone() {
        Some(public) => public,
        None => {
            // 0.0.0.0 or [::] is where a server listens, not an address anyone can open.
            let unspecified = settings.bind.parse::<std::net::SocketAddr>().is_ok_and(|a| a.ip().is_unspecified());
            if unspecified {
                anyhow::bail!(
                    "ASSENT_BIND is {}, which no browser can open: set ASSENT_PUBLIC_URL to the address people reach the server at",
                    settings.bind
                );
            }
            format!("http://{}", settings.bind)
        }
    };
    let seconds = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
    let link = crate::routes::consent::make_link(
        &key,
        &settings.return_origins,
        &base,
        subject,
        return_to,
        seconds,
        audience,
    )?;
    writeln!(std::io::stdout(), "{}", link.url)?;
    eprintln!("expires at {}", link.expires_at);
    Ok(ExitCode::SUCCESS)
}

fn export(
    settings: &Settings,
    format: &str,
    since: Option<&str>,
    until: Option<&str>,
    document: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let format: crate::ledger::export::Format = format.parse()?;
    let mut conn = open_existing(settings)?;
    let catalog = crate::db::versions::load_catalog(&mut conn)?;
    let text = crate::ledger::export::FilterText { document, since, until, ..Default::default() };
    // The API's rule: an unknown document or a date out of range is refused, not an empty file.
    let filter = crate::ledger::export::parse_filter(text, &catalog, None, None).map_err(|e| match e {
        crate::ledger::export::FilterError::Refused(r) => {
            Refused(format!("--document: {r} (`assent sync` publishes the policy folder)"))
        }
        // "since: …" or "until: …"
        crate::ledger::export::FilterError::Invalid(m) => Refused(format!("--{m}")),
    })?;
    let bar = spinner("exporting: {bytes} written, {bytes_per_sec}");
    let mut out = bar.wrap_write(std::io::BufWriter::with_capacity(256 * 1024, std::io::stdout().lock()));
    let n = crate::ledger::export::export(&mut conn, &filter, format, &mut out)?;
    out.flush()?;
    bar.finish_and_clear();
    eprintln!("{n} events exported");
    Ok(ExitCode::SUCCESS)
}
