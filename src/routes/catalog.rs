//! The published catalog, kept in memory for as long as nothing was published, and read again
//! once when something was (by this server, another one or `assent sync`: see
//! [`crate::freshness`]).

use std::sync::{Arc, RwLock};

use crate::db::versions::load_catalog;
use crate::db::{Db, DbError};
use crate::domain::Catalog;
use crate::freshness::Freshness;

#[derive(Default)]
pub struct CatalogCache {
    /// The catalog, and the generation it was read at.
    current: RwLock<Option<(u64, Arc<Catalog>)>>,
    /// Held while reading it again: requests that find it stale together wait for one read.
    reading: tokio::sync::Mutex<()>,
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
        let _reading = self.reading.lock().await;
        // The generation before the read: a change during it makes the next request read again.
        let generation = freshness.current();
        if let Some(catalog) = self.fresh(generation) {
            return Ok(catalog);
        }
        let catalog = Arc::new(db.run(load_catalog).await?);
        if let Ok(mut guard) = self.current.write() {
            *guard = Some((generation, catalog.clone()));
        }
        Ok(catalog)
    }
}
