//! The audit log (table `audit_log`): appended in the transaction of the change it records,
//! hash-chained, read newest first, and verified whole by `settler audit`.
//!
//! An entry's hash is SHA-256 over the previous entry's hash (32 zero bytes for the first), its
//! id, its time in microseconds, and each text field prefixed by its length, so no two different
//! entries hash alike by moving bytes between fields.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// Serializes appends, so each reads the hash the last committed one wrote (a constant unique to
/// this use).
const APPEND_LOCK: i64 = 0x7469_785f_6175_6474;

/// The previous hash of the chain's first entry.
const GENESIS: [u8; 32] = [0; 32];

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// `admin_token` (the bootstrap credential), `api_key`, `customer` or `system`.
    pub kind: &'static str,
    pub id: String,
}

impl Actor {
    /// The holder of `ADMIN_TOKEN`.
    pub fn admin_token() -> Self {
        Self {
            kind: "admin_token",
            id: "bootstrap".to_owned(),
        }
    }

    /// An operator's API key.
    pub fn api_key(id: Uuid) -> Self {
        Self {
            kind: "api_key",
            id: id.to_string(),
        }
    }

    /// The system itself, doing `what` (`seed`, ...).
    pub fn system(what: &str) -> Self {
        Self {
            kind: "system",
            id: what.to_owned(),
        }
    }
}

/// One change to record.
#[derive(Debug)]
pub struct Change<'a> {
    pub actor: &'a Actor,
    /// `concert.created`, `concert.changed`, ...
    pub action: &'static str,
    /// `concert:<id>`, ...
    pub target: String,
    pub details: Value,
}

/// An entry as the log holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its place in the chain, and the cursor of the page after it.
    pub seq: i64,
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub actor_kind: String,
    pub actor_id: String,
    pub action: String,
    pub target: String,
    /// The details' JSON text, exactly as hashed.
    pub details: String,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

impl Entry {
    /// The hash this entry's content and `prev_hash` make.
    fn expected_hash(&self) -> [u8; 32] {
        chain_hash(
            &self.prev_hash,
            self.id,
            self.at,
            [
                &self.actor_kind,
                &self.actor_id,
                &self.action,
                &self.target,
                &self.details,
            ],
        )
    }
}

fn chain_hash(prev: &[u8], id: Uuid, at: DateTime<Utc>, fields: [&str; 5]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(prev);
    hasher.update(id.as_bytes());
    hasher.update(at.timestamp_micros().to_be_bytes());
    for field in fields {
        hasher.update((field.len() as u64).to_be_bytes());
        hasher.update(field.as_bytes());
    }
    hasher.finalize().into()
}

/// Appends `change` in the transaction `tx` (which must record the change itself): the entry
/// commits or vanishes with it. Holds the append lock until `tx` ends.
pub async fn append(tx: &mut PgConnection, change: Change<'_>) -> Result<(), sqlx::Error> {
    sqlx::query!("SELECT pg_advisory_xact_lock($1) AS locked", APPEND_LOCK)
        .fetch_one(&mut *tx)
        .await?;
    let prev = sqlx::query_scalar!("SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut *tx)
        .await?
        .unwrap_or_else(|| GENESIS.to_vec());
    let id = Uuid::now_v7();
    // Postgres keeps microseconds: the hash is made of what will be read back.
    let now = Utc::now();
    let at = DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now);
    let details = change.details.to_string();
    let hash = chain_hash(
        &prev,
        id,
        at,
        [
            change.actor.kind,
            &change.actor.id,
            change.action,
            &change.target,
            &details,
        ],
    );
    sqlx::query!(
        "INSERT INTO audit_log
             (id, at, actor_kind, actor_id, action, target, details, prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7::text::json, $8, $9)",
        id,
        at,
        change.actor.kind,
        change.actor.id,
        change.action,
        change.target,
        details,
        prev,
        &hash[..],
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Up to `limit` entries older than `before` (the seq of the last entry of the page before;
/// `None` for the newest), newest first.
pub async fn page(db: &PgPool, before: Option<i64>, limit: i64) -> Result<Vec<Entry>, sqlx::Error> {
    sqlx::query_as!(
        Entry,
        r#"SELECT seq, id, at, actor_kind, actor_id, action, target,
               details::text AS "details!", prev_hash, hash
           FROM audit_log WHERE seq < $1 ORDER BY seq DESC LIMIT $2"#,
        before.unwrap_or(i64::MAX),
        limit,
    )
    .fetch_all(db)
    .await
}

/// What a walk along the whole chain found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chain {
    Intact {
        entries: u64,
    },
    /// The first entry whose hash or link is wrong: it, or the one before it, was changed or
    /// removed.
    Broken {
        seq: i64,
        reason: &'static str,
    },
}

/// Walks the chain from its first entry, a page at a time.
pub async fn verify(db: &PgPool) -> Result<Chain, sqlx::Error> {
    const PAGE: i64 = 1_000;
    let (mut after, mut prev, mut entries) = (0, GENESIS.to_vec(), 0);
    loop {
        let rows = sqlx::query_as!(
            Entry,
            r#"SELECT seq, id, at, actor_kind, actor_id, action, target,
                   details::text AS "details!", prev_hash, hash
               FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"#,
            after,
            PAGE,
        )
        .fetch_all(db)
        .await?;
        let Some(last) = rows.last() else {
            return Ok(Chain::Intact { entries });
        };
        after = last.seq;
        for entry in rows {
            if entry.prev_hash != prev {
                return Ok(Chain::Broken {
                    seq: entry.seq,
                    reason: "its previous hash is not the hash of the entry before it",
                });
            }
            if entry.hash != entry.expected_hash() {
                return Ok(Chain::Broken {
                    seq: entry.seq,
                    reason: "its hash does not match its content",
                });
            }
            prev = entry.hash;
            entries += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moving_bytes_between_fields_changes_the_hash() {
        let (id, at) = (Uuid::nil(), DateTime::UNIX_EPOCH);
        let one = chain_hash(&GENESIS, id, at, ["ab", "c", "d", "e", "{}"]);
        let other = chain_hash(&GENESIS, id, at, ["a", "bc", "d", "e", "{}"]);
        assert_ne!(one, other);
        assert_eq!(
            one,
            chain_hash(&GENESIS, id, at, ["ab", "c", "d", "e", "{}"])
        );
    }
}
