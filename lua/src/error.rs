//! The failure of a store the services keep their state in, for the processes that read and
//! write both (recovery, the settler's audit and settlement).

use crate::scripts::ScriptError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis: {0}")]
    Redis(#[from] fred::error::Error),
    #[error(transparent)]
    Script(#[from] ScriptError),
    #[error("postgres: {0}")]
    Postgres(#[from] sqlx::Error),
}
