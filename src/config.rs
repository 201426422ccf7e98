//! Settings: built once from the command line and environment, then passed in. Never global,
//! so tests can run many isolated apps in one process.

use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct Settings {
    /// `sqlite://FILE` or `postgres://…` (`ASSENT_DATABASE_URL`).
    pub database_url: String,
    /// The policy folder (`ASSENT_POLICIES`).
    pub policies_dir: PathBuf,
    /// Address to listen on; port 0 picks a free port (`ASSENT_BIND`).
    pub bind: String,
    /// The language of the untranslated policy files (`ASSENT_LOCALE`).
    pub original_locale: String,
    /// HTTP worker threads (`ASSENT_WORKERS`); 0 means one per core.
    pub workers: usize,
    /// Memory for computed diffs, in bytes (`ASSENT_DIFF_CACHE_MB`).
    pub diff_cache_bytes: u64,
    /// Database connections in the pool (`ASSENT_DB_POOL`).
    pub pool_size: u32,
    /// How much of a client IP the ledger keeps (`ASSENT_IP_MODE`).
    pub ip_mode: crate::ledger::IpMode,
    /// The server secret (`ASSENT_SECRET`); generated and stored in the database when unset.
    pub secret: Option<String>,
    /// The log's signing key (`ASSENT_LOG_KEY`); generated and stored in the database when unset.
    pub log_key: Option<String>,
    /// How long the IP address and user agent of an event are kept (`ASSENT_EVIDENCE_RETENTION`);
    /// forever when unset.
    pub evidence_retention: Option<std::time::Duration>,
    /// Origins a consent link may return to (`ASSENT_ALLOWED_RETURN_ORIGINS`).
    pub return_origins: crate::consent::ReturnOrigins,
    /// Proxies whose forwarded headers are believed (`ASSENT_TRUSTED_PROXIES`).
    pub trusted_proxies: crate::consent::TrustedProxies,
    /// The address people reach this server at, for links (`ASSENT_PUBLIC_URL`).
    pub public_url: Option<String>,
    /// Webhook delivery (`ASSENT_WEBHOOK_*`).
    pub webhooks: crate::webhooks::WebhookSettings,
    /// How long a request waits for a pooled connection (`ASSENT_DB_POOL_WAIT`).
    pub pool_wait: std::time::Duration,
    /// An admin session unused for this long ends (`ASSENT_ADMIN_IDLE_TIMEOUT`).
    pub admin_idle_timeout: std::time::Duration,
}

/// Connections in the pool unless `ASSENT_DB_POOL` says otherwise: on SQLite 4 (one writer
/// and readers; each connection keeps a page cache of its own, so more cost memory and gain
/// nothing on a few cores), on PostgreSQL 16 (each waits on the network).
pub fn default_pool_size(database_url: &str) -> u32 {
    if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") { 16 } else { 4 }
}

impl Settings {
    /// Settings for a given database and policy folder, with every other value at its default.
    pub fn new(database_url: impl Into<String>, policies_dir: impl Into<PathBuf>) -> Self {
        let database_url = database_url.into();
        let pool_size = default_pool_size(&database_url);
        Self {
            database_url,
            policies_dir: policies_dir.into(),
            bind: "127.0.0.1:8080".into(),
            original_locale: "en".into(),
            workers: 0,
            pool_size,
            diff_cache_bytes: 64 * 1024 * 1024,
            ip_mode: crate::ledger::IpMode::Truncated,
            secret: None,
            log_key: None,
            evidence_retention: None,
            return_origins: Default::default(),
            trusted_proxies: Default::default(),
            public_url: None,
            webhooks: Default::default(),
            admin_idle_timeout: crate::sessions::DEFAULT_IDLE,
            pool_wait: crate::db::DEFAULT_POOL_WAIT,
        }
    }
}
