//! Operators' API keys (table `api_keys`): made and revoked each in one transaction with its
//! audit entry; the gateways read the live ones into the cache they authorize from.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::audit::{self, Actor, Change};

/// A key as operators see it: never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: Uuid,
    pub name: String,
    /// `admin`, `box_office`, `scanner` or `analyst`.
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A key to record.
#[derive(Debug)]
pub struct NewKey<'a> {
    pub name: &'a str,
    pub role: &'a str,
    /// SHA-256 of the secret, which is shown once and never kept.
    pub secret_hash: [u8; 32],
}

/// A key that authorizes requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveKey {
    pub id: Uuid,
    pub role: String,
    pub secret_hash: Vec<u8>,
}

/// What revoking a key did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    /// Revoked now, and recorded.
    Now(ApiKey),
    /// It was already: nothing changed, nothing recorded.
    Already(ApiKey),
    Unknown,
}

/// Records `key`, made by `actor`, with its audit entry.
pub async fn create(db: &PgPool, key: NewKey<'_>, actor: &Actor) -> Result<ApiKey, sqlx::Error> {
    let mut tx = db.begin().await?;
    let created = sqlx::query_as!(
        ApiKey,
        "INSERT INTO api_keys (id, name, role, secret_hash) VALUES ($1, $2, $3, $4)
         RETURNING id, name, role, created_at, revoked_at",
        Uuid::now_v7(),
        key.name,
        key.role,
        &key.secret_hash[..],
    )
    .fetch_one(&mut *tx)
    .await?;
    let change = Change {
        actor,
        action: "api_key.created",
        target: format!("api_key:{}", created.id),
        details: json!({ "name": created.name, "role": created.role }),
    };
    audit::append(&mut tx, change).await?;
    tx.commit().await?;
    Ok(created)
}

/// Revokes key `id` for `actor`, recording it once however often it is asked.
pub async fn revoke(db: &PgPool, id: Uuid, actor: &Actor) -> Result<Revoked, sqlx::Error> {
    let mut tx = db.begin().await?;
    let revoked = sqlx::query_as!(
        ApiKey,
        "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL
         RETURNING id, name, role, created_at, revoked_at",
        id,
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(revoked) = revoked else {
        let known = sqlx::query_as!(
            ApiKey,
            "SELECT id, name, role, created_at, revoked_at FROM api_keys WHERE id = $1",
            id,
        )
        .fetch_optional(&mut *tx)
        .await?;
        return Ok(known.map_or(Revoked::Unknown, Revoked::Already));
    };
    let change = Change {
        actor,
        action: "api_key.revoked",
        target: format!("api_key:{id}"),
        details: json!({ "name": revoked.name, "role": revoked.role }),
    };
    audit::append(&mut tx, change).await?;
    tx.commit().await?;
    Ok(Revoked::Now(revoked))
}

/// Every key, revoked ones included, newest first.
pub async fn list(db: &PgPool) -> Result<Vec<ApiKey>, sqlx::Error> {
    sqlx::query_as!(
        ApiKey,
        "SELECT id, name, role, created_at, revoked_at FROM api_keys
         ORDER BY created_at DESC, id DESC",
    )
    .fetch_all(db)
    .await
}

/// The keys not revoked.
pub async fn live(db: &PgPool) -> Result<Vec<LiveKey>, sqlx::Error> {
    sqlx::query_as!(
        LiveKey,
        "SELECT id, role, secret_hash FROM api_keys WHERE revoked_at IS NULL"
    )
    .fetch_all(db)
    .await
}
