//! The catalog in memory: concerts and their tiers, loaded from Postgres at start and refreshed in
//! the background, so browsing and booking never wait on Postgres. Stock is not here: it lives in
//! Redis (`redis_store::stock`). `model` is the snapshot, `store` its Postgres statements, `seed` the
//! demo catalog.

mod model;
pub mod seed;
pub mod store;

use std::sync::{Arc, RwLock};

use sqlx::PgPool;

pub use model::{Catalog, Concert, Tier, TierEntry};

/// The current catalog, shared by every request; readers clone an `Arc` and never block writers
/// for longer than that.
#[derive(Debug, Default)]
pub struct CatalogHandle {
    current: RwLock<Arc<Catalog>>,
    /// One reload at a time: a read from Postgres that began before a change was committed
    /// must not be taken in after a read that began after it.
    reloading: tokio::sync::Mutex<()>,
}

impl CatalogHandle {
    pub fn current(&self) -> Arc<Catalog> {
        match self.current.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Takes in a catalog read from Postgres. Concerts are never deleted, so one this gateway
    /// added while the read was under way is kept.
    pub fn merge(&self, fresh: Catalog) {
        let mut guard = self.write();
        let kept: Vec<Concert> = guard
            .concerts
            .iter()
            .filter(|known| fresh.concert(known.id).is_none())
            .map(|known| known.as_ref().clone())
            .collect();
        let mut concerts: Vec<Concert> = fresh
            .concerts
            .into_iter()
            .map(Arc::unwrap_or_clone)
            .collect();
        concerts.extend(kept);
        *guard = Arc::new(Catalog::new(concerts));
    }

    pub fn add(&self, concert: Concert) {
        let mut guard = self.write();
        *guard = Arc::new(guard.with(concert));
    }

    /// Reads the catalog from Postgres and takes it in.
    pub async fn reload(&self, db: &PgPool) -> Result<(), sqlx::Error> {
        let _one_at_a_time = self.reloading.lock().await;
        self.merge(store::catalog(db).await?);
        Ok(())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Arc<Catalog>> {
        match self.current.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}
