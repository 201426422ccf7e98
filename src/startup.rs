//! Building the application: open and migrate the database, publish the policy folder, bind
//! (port 0 works), and hand back the real address.

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::{Compress, from_fn};
use actix_web::{App, HttpServer, web};
use anyhow::Context;

use crate::changes::DiffCache;
use crate::config::Settings;
use crate::db::Db;
use crate::policies::{self, SyncError, SyncReport};
use crate::routes::{self, AppState, Metrics};

pub struct Application {
    server: Server,
    address: SocketAddr,
    pub report: SyncReport,
}

impl Application {
    /// Opens the database, publishes new policy versions, and binds the server. Must be called
    /// inside an actix system; the server runs once [`Application::run`] is awaited.
    pub fn build(settings: Settings) -> anyhow::Result<Self> {
        let db = Db::open_waiting(&settings.database_url, settings.pool_size, settings.pool_wait)
            .context("opening the database")?;
        if db.created() {
            tracing::info!("created a new Assent database: {}", Db::describe(&settings.database_url));
        }
        let set = policies::load(&settings.policies_dir).map_err(|problems| {
            let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
            anyhow::anyhow!("the policy folder has problems; nothing was published:\n{}", lines.join("\n"))
        })?;
        let mut conn = db.get().context("connecting to the database")?;
        let report = match policies::sync(&mut conn, &set, chrono::Utc::now()) {
            Ok(r) => r,
            Err(SyncError::Refused(problems)) => {
                let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
                anyhow::bail!("the policy folder cannot be published; nothing was changed:\n{}", lines.join("\n"));
            }
            Err(SyncError::Db(e)) => return Err(e).context("publishing the policy folder"),
        };
        let keys = Keys::load(&mut conn, &settings, IfMissing::Generate)?;
        drop(conn);
        for line in &report.published {
            tracing::info!("published {line}");
        }
        if let Some(keep) = settings.evidence_retention {
            start_retention(db.clone(), keep);
        }
        if db.backend() == "postgres" {
            start_coverage_folding(db.clone());
        }
        let freshness = Arc::new(crate::freshness::Freshness::default());
        crate::freshness::watch(&db, freshness.clone());
        let metrics = Arc::new(Metrics::default());
        let wake_webhooks = Arc::new(tokio::sync::Notify::new());
        let recorder = crate::ledger::lane::Recorder::new(db.clone(), metrics.clone(), wake_webhooks.clone());
        crate::webhooks::deliver::start(recorder.writer(), settings.webhooks.clone(), metrics.clone(), wake_webhooks);
        let state = web::Data::new(AppState {
            recorder,
            db,
            settings: Arc::new(settings.clone()),
            metrics,
            diffs: Arc::new(DiffCache::new(settings.diff_cache_bytes)),
            catalog: routes::catalog::CatalogCache::new(freshness.clone()),
            keys: routes::KeyCache::new(freshness.clone()),
            pages: Default::default(),
            exports: std::sync::Arc::new(tokio::sync::Semaphore::new(routes::audit::EXPORTS_AT_ONCE)),
            freshness,
            signins: Default::default(),
            link_key: crate::consent::link_key(&keys.server_secret)
                .map_err(|e| anyhow::anyhow!("deriving the link key: {e}"))?,
            subject_keys: keys.subject_keys,
            log_key: keys.log_key,
            ip_secret: keys.server_secret,
        });
        let query_config = web::QueryConfig::default().error_handler(routes::query_error);
        let json_config = web::JsonConfig::default().limit(routes::MAX_JSON_BYTES).error_handler(routes::json_error);
        let csp = routes::content_security_policy(&settings);
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(query_config.clone())
                .app_data(json_config.clone())
                .app_data(web::FormConfig::default().limit(routes::MAX_JSON_BYTES).error_handler(routes::form_error))
                .wrap(
                    actix_web::middleware::DefaultHeaders::new()
                        .add(("Content-Security-Policy", csp.clone()))
                        .add(("X-Content-Type-Options", "nosniff"))
                        .add(("Referrer-Policy", "same-origin"))
                        .add(("X-Frame-Options", "DENY")),
                )
                .wrap(from_fn(routes::cache_headers))
                .wrap(from_fn(routes::head_as_get))
                .wrap(from_fn(routes::metrics::record))
                .wrap(Compress::default())
                .configure(routes::configure)
        });
        if settings.workers > 0 {
            server = server.workers(settings.workers);
        }
        let server = server.bind(&settings.bind).with_context(|| format!("binding {}", settings.bind))?;
        let address = *server.addrs().first().context("the server bound no address")?;
        Ok(Self { server: server.run(), address, report })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    pub async fn run(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// Whether a key the database does not hold yet may be made: by commands that write, not by
/// those that only read (they must leave the database as they found it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfMissing {
    Generate,
    Refuse,
}

/// A secret kept in the database under `name`, made by `make` when missing and allowed.
fn kept(
    conn: &mut crate::db::DbConnection,
    name: &str,
    what: &str,
    env: &str,
    missing: IfMissing,
    make: impl FnOnce() -> anyhow::Result<String>,
) -> anyhow::Result<String> {
    if let Some(value) = crate::db::keys::stored_secret(conn, name).with_context(|| format!("reading the {what}"))? {
        return Ok(value);
    }
    if missing == IfMissing::Refuse {
        return Err(crate::cli::Refused(format!(
            "the database holds no {what}: set {env} as the servers do, or let `assent sync` or a server make one; nothing was changed"
        ))
        .into());
    }
    let fresh = make()?;
    crate::db::keys::secret(conn, name, || fresh, chrono::Utc::now()).with_context(|| format!("keeping the {what}"))
}

/// The server's secret: `ASSENT_SECRET` when set, otherwise one generated once and kept in the
/// database, so every server on the same database agrees.
pub fn server_secret(
    conn: &mut crate::db::DbConnection,
    configured: Option<&str>,
    missing: IfMissing,
) -> anyhow::Result<Vec<u8>> {
    if let Some(s) = configured.filter(|s| !s.is_empty()) {
        return Ok(sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(s.as_bytes())).to_vec());
    }
    let stored = kept(conn, "server", "server secret", "ASSENT_SECRET", missing, || {
        Ok(hex::encode(crate::ledger::keys::random_bytes::<32>().context("generating the server secret")?))
    })?;
    hex::decode(stored).context("the stored server secret is not hex")
}

/// The server's keys, all from the database (or the environment), so that every server and the
/// CLI agree.
pub struct Keys {
    pub server_secret: Vec<u8>,
    pub subject_keys: crate::ledger::SubjectKeys,
    pub log_key: crate::log::note::LogKey,
}

impl Keys {
    pub fn load(conn: &mut crate::db::DbConnection, settings: &Settings, missing: IfMissing) -> anyhow::Result<Self> {
        let server_secret = server_secret(conn, settings.secret.as_deref(), missing)?;
        Ok(Self {
            subject_keys: crate::ledger::SubjectKeys::new(&server_secret),
            log_key: log_key(conn, settings.log_key.as_deref(), missing)?,
            server_secret,
        })
    }
}

/// The log's signing key: `ASSENT_LOG_KEY` when set (the Go note package's
/// `PRIVATE+KEY+name+hash+base64` form), otherwise one generated once and kept in the database
/// like the server secret.
pub fn log_key(
    conn: &mut crate::db::DbConnection,
    configured: Option<&str>,
    missing: IfMissing,
) -> anyhow::Result<crate::log::note::LogKey> {
    use crate::log::note::LogKey;
    if let Some(text) = configured.filter(|s| !s.trim().is_empty()) {
        return LogKey::parse(text).map_err(|e| crate::cli::Refused(format!("ASSENT_LOG_KEY: {e:#}")).into());
    }
    let stored = kept(conn, "log_key", "log key", "ASSENT_LOG_KEY", missing, || {
        let seed = crate::ledger::keys::random_bytes::<32>().context("generating the log key")?;
        let tag = crate::ledger::keys::random_bytes::<4>().context("generating the log key")?;
        let fresh = LogKey::from_seed(&format!("assent-log-{}", hex::encode(tag)), seed)
            .map_err(|e| anyhow::anyhow!("generating the log key: {e}"))?;
        Ok(fresh.to_private_string())
    })?;
    LogKey::parse(&stored).context("the stored log key")
}

/// Folds the coverage counts' appended changes into the counts every few seconds (PostgreSQL;
/// see `db::coverage`), so that a coverage read sums a few rows, not every change since start.
fn start_coverage_folding(db: Db) {
    let run = move || {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(5));
            let folded = db.get().and_then(|mut c| crate::db::coverage::fold(&mut c));
            if let Err(e) = folded {
                tracing::warn!(error = %e, "could not fold the coverage counts; will try again");
            }
        }
    };
    if let Err(e) = std::thread::Builder::new().name("assent-coverage".into()).spawn(run) {
        tracing::error!(error = %e, "no coverage thread: coverage reads grow slower as changes pile up");
    }
}

/// Erases old evidence now and then at intervals, on a thread of its own.
fn start_retention(db: Db, keep: std::time::Duration) {
    let run =
        move || {
            loop {
                match db.get().map_err(crate::ledger::RecordError::from).and_then(|mut c| {
                    crate::ledger::apply_retention(&mut c, keep, chrono::Utc::now()).map_err(Into::into)
                }) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!("retention: erased the IP address and user agent of {n} events"),
                    Err(e) => tracing::error!(error = %e, "retention could not run; it will try again"),
                }
                std::thread::sleep(crate::ledger::retention_interval(keep));
            }
        };
    if let Err(e) = std::thread::Builder::new().name("assent-retention".into()).spawn(run) {
        tracing::error!(error = %e, "no retention thread: old evidence is not erased");
    }
}
