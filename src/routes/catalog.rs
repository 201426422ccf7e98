//! The published catalog, kept in memory for as long as nothing was published, and read again
//! once when something was (by this server, another one or `assent sync`: see
//! [`crate::freshness`]).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::db::versions::load_catalog;
use crate::db::{Db, DbError};
use crate::domain::Catalog;
use crate::freshness::{Freshness, Reload};

/// How long after a failed read the next waiting request fails at once instead of reading.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

pub struct CatalogCache {
    /// The catalog, and the generation it was read at.
    current: RwLock<Option<(u64, Arc<Catalog>)>>,
    reading: Reload,
    freshness: Arc<Freshness>,
}

impl CatalogCache {
    /// A cache whose catalog holds while `freshness` does not move.
    pub fn new(freshness: Arc<Freshness>) -> Self {
        Self { current: RwLock::new(None), reading: Reload::default(), freshness }
    }

    fn fresh(&self, generation: u64) -> Option<Arc<Catalog>> {
        let guard = self.current.read().ok()?;
        guard.as_ref().filter(|(at, _)| *at == generation).map(|(_, c)| c.clone())
    }

    pub async fn get(&self, db: &Db) -> Result<Arc<Catalog>, DbError> {
        if let Some(catalog) = self.fresh(self.freshness.current()) {
            return Ok(catalog);
        }
        let read = |generation| async move {
            let catalog = Arc::new(db.run(load_catalog).await?);
            if let Ok(mut guard) = self.current.write() {
                *guard = Some((generation, catalog.clone()));
            }
            Ok(catalog)
        };
        self.reading.run(&self.freshness, |g| self.fresh(g), RETRY_AFTER_FAILURE, read).await
    }
}
