//! What every request shares.

use fred::prelude::Pool;
use sqlx::PgPool;
use tokio::sync::Notify;

use booking::keys::Keyspace;

use crate::catalog::CatalogHandle;
use crate::reserve::ReserveScript;

#[derive(Debug)]
pub struct AppState {
    pub redis: Pool,
    pub db: PgPool,
    pub keys: Keyspace,
    pub catalog: CatalogHandle,
    pub reserve: ReserveScript,
    /// Woken when a request finds a tier without stock in Redis, so it is loaded at once.
    pub stock_missing: Notify,
    pub admin_token: Option<String>,
    pub max_tickets_per_customer: u32,
}
