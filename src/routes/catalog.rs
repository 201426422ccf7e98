//! The published catalog, kept in memory and re-read every few seconds, so that a request does
//! not query it and a `sync` run by another process still shows up promptly.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::db::versions::load_catalog;
use crate::db::{Db, DbError};
use crate::domain::Catalog;

const FRESH_FOR: Duration = Duration::from_secs(2);

#[derive(Default)]
pub struct CatalogCache {
    current: RwLock<Option<(Instant, Arc<Catalog>)>>,
}

impl CatalogCache {
    pub async fn get(&self, db: &Db) -> Result<Arc<Catalog>, DbError> {
        if let Ok(guard) = self.current.read()
            && let Some((loaded, catalog)) = guard.as_ref()
            && loaded.elapsed() < FRESH_FOR
        {
            return Ok(catalog.clone());
        }
        let catalog = Arc::new(db.run(load_catalog).await?);
        if let Ok(mut guard) = self.current.write() {
            *guard = Some((Instant::now(), catalog.clone()));
        }
        Ok(catalog)
    }
}
