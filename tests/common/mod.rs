//! Test harness: every test gets its own database (a temp SQLite file, or a fresh PostgreSQL
//! database that is dropped afterwards) and its own real server on a random port.
#![allow(dead_code)]

pub mod receiver;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::thread::JoinHandle;

use actix_web::dev::ServerHandle;
use assent::config::Settings;
use assent::startup::Application;
use diesel::{Connection, PgConnection, RunQueryDsl};

pub const POSTGRES_ENV: &str = "ASSENT_TEST_POSTGRES_URL";

/// Which database a test runs on.
#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    Postgres(String),
}

impl Backend {
    /// PostgreSQL when `ASSENT_TEST_POSTGRES_URL` is set; otherwise says loudly, once per test
    /// binary, that the PostgreSQL half is skipped.
    pub fn postgres() -> Option<Self> {
        match std::env::var(POSTGRES_ENV) {
            Ok(url) if !url.is_empty() => Some(Self::Postgres(url)),
            _ => {
                static WARN: Once = Once::new();
                WARN.call_once(|| {
                    // Written past the test harness's capture on purpose: a skip must be seen.
                    let _ = writeln!(
                        std::io::stderr(),
                        "\n*** SKIPPED: the PostgreSQL half of these tests. Set {POSTGRES_ENV}=postgres://postgres@127.0.0.1:5432/test to run it (.ci/run does). ***\n"
                    );
                });
                None
            }
        }
    }
}

/// Runs a test body once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name(super::common::Backend::Sqlite) } )*
        }
        mod postgres {
            $( #[test] fn $name() {
                if let Some(backend) = super::common::Backend::postgres() { super::$name(backend) }
            } )*
        }
    };
}

/// A database of a test's own.
pub struct TestDatabase {
    pub url: String,
    admin_url: Option<String>,
    name: String,
    _dir: tempfile::TempDir,
}

impl TestDatabase {
    pub fn create(backend: &Backend) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        match backend {
            Backend::Sqlite => {
                let path = dir.path().join("assent.db");
                Self { url: format!("sqlite://{}", path.display()), admin_url: None, name: String::new(), _dir: dir }
            }
            Backend::Postgres(admin) => {
                let name = format!("assent_test_{}", uuid::Uuid::new_v4().simple());
                assent::db::prepare_tls();
                let mut conn = PgConnection::establish(admin).expect("connect to the test PostgreSQL");
                diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut conn).expect("create test database");
                let base = admin.split('?').next().unwrap_or(admin);
                let cut = base.rfind('/').filter(|i| *i > "postgres://".len()).unwrap_or(base.len());
                let url = format!("{}/{name}", &base[..cut]);
                Self { url, admin_url: Some(admin.clone()), name, _dir: dir }
            }
        }
    }
}

impl TestDatabase {
    /// Another handle on a database that a test already made (a second server on it); dropping
    /// it leaves the database alone.
    pub fn shared(url: &str) -> Self {
        Self { url: url.to_owned(), admin_url: None, name: String::new(), _dir: tempfile::tempdir().expect("temp dir") }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(admin) = &self.admin_url else { return };
        if let Ok(mut conn) = PgConnection::establish(admin) {
            let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
            let _ = diesel::sql_query(drop).execute(&mut conn);
        }
    }
}

/// Copies a folder (the shipped `policies/` or a test's own) so a test may change it.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

pub fn shipped_policies() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")
}

/// Writes `rel` (such as `terms/v1.md`) under `dir`.
pub fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

/// A running Assent over its own database and its own copy of a policy folder.
pub struct TestApp {
    pub address: String,
    pub policies: tempfile::TempDir,
    pub db: TestDatabase,
    handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
    agent: ureq::Agent,
}

pub struct Response {
    pub status: u16,
    pub content_type: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

impl TestApp {
    /// Serves the shipped sample policies.
    pub fn spawn(backend: &Backend) -> Self {
        Self::spawn_with(backend, |dir| copy_dir(&shipped_policies(), dir))
    }

    /// Serves a policy folder that `fill` writes.
    pub fn spawn_with(backend: &Backend, fill: impl FnOnce(&Path)) -> Self {
        Self::spawn_configured(backend, fill, |_| {})
    }

    /// Serves a policy folder that `fill` writes, with settings that `configure` adjusts.
    pub fn spawn_configured(
        backend: &Backend,
        fill: impl FnOnce(&Path),
        configure: impl FnOnce(&mut Settings),
    ) -> Self {
        let policies = tempfile::tempdir().expect("temp dir");
        fill(policies.path());
        let db = TestDatabase::create(backend);
        let mut settings = Settings::new(db.url.clone(), policies.path());
        configure(&mut settings);
        Self::start(policies, db, settings)
    }

    /// Serves a policy folder that `fill` writes on a database at `url` that the test owns
    /// (a SQLite file on a disk it mounted).
    pub fn spawn_at(url: &str, fill: impl FnOnce(&Path)) -> Self {
        let policies = tempfile::tempdir().expect("temp dir");
        fill(policies.path());
        let db = TestDatabase::shared(url);
        let settings = Settings::new(url.to_owned(), policies.path());
        Self::start(policies, db, settings)
    }

    /// A second server on this one's database, with a copy of its policy folder (several
    /// servers on one PostgreSQL).
    pub fn another_server(&self, configure: impl FnOnce(&mut Settings)) -> Self {
        let policies = tempfile::tempdir().expect("temp dir");
        copy_dir(self.policies.path(), policies.path());
        let db = TestDatabase::shared(&self.db.url);
        let mut settings = Settings::new(db.url.clone(), policies.path());
        configure(&mut settings);
        Self::start(policies, db, settings)
    }

    fn start(policies: tempfile::TempDir, db: TestDatabase, mut settings: Settings) -> Self {
        settings.bind = "127.0.0.1:0".into();
        settings.workers = 2;
        settings.pool_size = 4;
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                match Application::build(settings) {
                    Ok(app) => {
                        let _ = tx.send(Ok((app.address(), app.handle())));
                        let _ = app.run().await;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(format!("{e:#}")));
                    }
                }
            });
        });
        let (address, handle) = match rx.recv().expect("server thread answered") {
            Ok(started) => started,
            Err(e) => panic!("the app did not start: {e}"),
        };
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        Self { address: format!("http://{address}"), policies, db, handle, thread: Some(thread), agent }
    }

    pub fn get(&self, path: &str) -> Response {
        self.get_with(path, &[])
    }

    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut req = self.agent.get(format!("{}{path}", self.address));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.call().unwrap_or_else(|e| panic!("GET {path}: {e}"));
        into_response(path, resp)
    }
}

fn into_response(path: &str, mut resp: ureq::http::Response<ureq::Body>) -> Response {
    {
        let status = resp.status().as_u16();
        let headers: Vec<(String, String)> =
            resp.headers().iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned())).collect();
        let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let body = resp.body_mut().read_to_string().unwrap_or_else(|e| panic!("{path} body: {e}"));
        Response { status, content_type, headers, body }
    }
}

impl TestApp {
    /// Creates an API key of `scope` directly in the app's database.
    pub fn key(&self, name: &str, scope: &str) -> String {
        self.audience_key(name, scope, None)
    }

    /// A key bound to `audience` (when given).
    pub fn audience_key(&self, name: &str, scope: &str, audience: Option<&str>) -> String {
        let db = assent::db::Db::open(&self.db.url, 1).expect("open db");
        let mut conn = db.get().expect("conn");
        let audience = audience.map(|a| assent::domain::Audience::parse(a).expect("audience"));
        assent::ledger::keys::create(
            &mut conn,
            name,
            scope.parse().expect("scope"),
            audience.as_ref(),
            chrono::Utc::now(),
        )
        .expect("create key")
    }

    pub fn get_auth(&self, path: &str, key: &str) -> Response {
        self.get_with(path, &[("Authorization", &format!("Bearer {key}"))])
    }

    /// POSTs a form, with a `Cookie` header when given; redirects are not followed.
    pub fn post_form(&self, path: &str, fields: &[(&str, &str)], cookie: Option<&str>) -> Response {
        let agent: ureq::Agent =
            ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).build().into();
        let mut req = agent.post(format!("{}{path}", self.address));
        if let Some(c) = cookie {
            req = req.header("Cookie", c);
        }
        let resp = req.send_form(fields.iter().copied()).unwrap_or_else(|e| panic!("POST {path}: {e}"));
        into_response(path, resp)
    }

    /// POSTs a form with more headers.
    pub fn post_form_with(&self, path: &str, fields: &[(&str, &str)], headers: &[(&str, &str)]) -> Response {
        let mut req = self.agent.post(format!("{}{path}", self.address));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let resp = req.send_form(fields.iter().copied()).unwrap_or_else(|e| panic!("POST {path}: {e}"));
        into_response(path, resp)
    }

    /// POSTs a raw body (JSON unless it is not) with a key.
    pub fn post_raw(&self, path: &str, key: Option<&str>, body: &str) -> Response {
        let mut req = self.agent.post(format!("{}{path}", self.address)).header("Content-Type", "application/json");
        if let Some(key) = key {
            req = req.header("Authorization", &format!("Bearer {key}"));
        }
        let resp = req.send(body).unwrap_or_else(|e| panic!("POST {path}: {e}"));
        into_response(path, resp)
    }

    pub fn delete_auth(&self, path: &str, key: &str) -> Response {
        let resp = self
            .agent
            .delete(format!("{}{path}", self.address))
            .header("Authorization", &format!("Bearer {key}"))
            .call()
            .unwrap_or_else(|e| panic!("DELETE {path}: {e}"));
        into_response(path, resp)
    }

    /// `HEAD path`: the status, the headers and the body (which must be empty).
    pub fn head(&self, path: &str) -> Response {
        let resp =
            self.agent.head(format!("{}{path}", self.address)).call().unwrap_or_else(|e| panic!("HEAD {path}: {e}"));
        into_response(path, resp)
    }

    /// The server secret the app keeps in its database (to compute subject keys as it does).
    pub fn subject_keys(&self) -> assent::ledger::SubjectKeys {
        let db = assent::db::Db::open_existing(&self.db.url, 1).expect("open db");
        let mut conn = db.get().expect("conn");
        let secret =
            assent::startup::server_secret(&mut conn, None, assent::startup::IfMissing::Refuse).expect("secret");
        assent::ledger::SubjectKeys::new(&secret)
    }

    /// A hash (hex) as a literal of the app's database, which stores hashes as their bytes.
    pub fn bytes(&self, hex: &str) -> String {
        if self.db.url.starts_with("sqlite://") { format!("X'{hex}'") } else { format!("'\\x{hex}'::bytea") }
    }

    /// Runs SQL straight against the app's database, behind Assent's back (tampering tests).
    pub fn sql(&self, statements: &str) {
        use diesel::connection::SimpleConnection;
        if let Some(path) = self.db.url.strip_prefix("sqlite://") {
            let mut c = diesel::SqliteConnection::establish(path).expect("open sqlite");
            c.batch_execute("PRAGMA busy_timeout = 10000;").expect("busy timeout");
            c.batch_execute(statements).unwrap_or_else(|e| panic!("{statements}: {e}"));
        } else {
            let mut c = PgConnection::establish(&self.db.url).expect("open postgres");
            c.batch_execute(statements).unwrap_or_else(|e| panic!("{statements}: {e}"));
        }
    }

    pub fn post(&self, path: &str, key: &str, body: &serde_json::Value) -> Response {
        self.post_raw(path, Some(key), &body.to_string())
    }

    /// POSTs JSON with a key and more headers.
    pub fn post_with(&self, path: &str, key: &str, body: &serde_json::Value, headers: &[(&str, &str)]) -> Response {
        let mut req = self
            .agent
            .post(format!("{}{path}", self.address))
            .header("Content-Type", "application/json")
            .header("Authorization", &format!("Bearer {key}"));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let resp = req.send(body.to_string()).unwrap_or_else(|e| panic!("POST {path}: {e}"));
        into_response(path, resp)
    }

    fn stop(&mut self) {
        if let Some(thread) = self.thread.take() {
            actix_web::rt::System::new().block_on(self.handle.stop(false));
            let _ = thread.join();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs the real `assent` binary with a database and policy folder.
pub fn assent(args: &[&str], database_url: &str, policies: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_assent"))
        .args(args)
        .env("ASSENT_DATABASE_URL", database_url)
        .env("ASSENT_POLICIES", policies)
        .env("ASSENT_LOG", "warn")
        .output()
        .expect("run assent")
}
