//! The published catalog, kept in memory for as long as nothing was published, and read again
//! once when something was (by this server, another one or `assent sync`: see
//! [`crate::freshness`]).

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::db::versions::load_catalog;
use crate::db::{Db, DbError};
use crate::domain::Catalog;
use crate::freshness::Freshness;

/// How long after a failed read the next waiting request fails at once instead of reading.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct CatalogCache {
    /// The catalog, and the generation it was read at.
    current: RwLock<Option<(u64, Arc<Catalog>)>>,
    /// Held while reading it again: requests that find it stale together wait for one read.
    /// It holds when the last read failed, if it did.
    reading: tokio::sync::Mutex<Option<Instant>>,
}

impl CatalogCache {
    fn fresh(&self, generation: u64) -> Option<Arc<Catalog>> {
        let guard = self.current.read().ok()?;
        guard.as_ref().filter(|(at, _)| *at == generation).map(|(_, c)| c.clone())
    }

    pub async fn get(&self, db: &Db, freshness: &Freshness) -> Result<Arc<Catalog>, DbError> {
        if let Some(catalog) = self.fresh(freshness.current()) {
            return Ok(catalog);
        }
        let mut failed = self.reading.lock().await;
        // The generation before the read: a change during it makes the next request read again.
        let generation = freshness.current();
        if let Some(catalog) = self.fresh(generation) {
            return Ok(catalog);
        }
        // The read before this one failed a moment ago: answer at once rather than queue for
        // the pool's wait one request after another.
        if failed.is_some_and(|at| at.elapsed() < RETRY_AFTER_FAILURE) {
            return Err(DbError::Task("reading the catalog just failed".into()));
        }
        let catalog = match db.run(load_catalog).await {
            Ok(c) => Arc::new(c),
            Err(e) => {
                *failed = Some(Instant::now());
                return Err(e);
            }
        };
        *failed = None;
        if let Ok(mut guard) = self.current.write() {
            *guard = Some((generation, catalog.clone()));
        }
        Ok(catalog)
    }
}
