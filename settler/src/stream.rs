//! The settlement streams.
//!
//! Every shard has one stream, `{<prefix>:<shard>}:bookings`, to which the reservation script
//! appends each accepted booking (`b`, the packed booking, and `e`, the shard epoch it was accepted
//! in). Settlers read all shards through one consumer group, `settlers` (created by shard
//! recovery, with the stream), each process under its own stable consumer name. An entry stays in
//! the group's pending list until the settler that holds it has committed its outcome to Postgres
//! and applied it in Redis; only then is it acknowledged. Entries a consumer has held longer than
//! the claim idle time (it died, or is stuck) are claimed by another; an entry delivered more than
//! the maximum number of times is resolved as failed and recorded in Postgres' `dead_letters`.
//! Acknowledged entries are trimmed behind the oldest unacknowledged one (`lua/trim.lua`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use fred::prelude::{Client, Pool, StreamsInterface};
use fred::types::Value;
use fred::types::streams::XReadResponse;

use domain::ids::Shard;
use redis_store::keys::{Keyspace, SETTLER_GROUP as GROUP};
use redis_store::scripts::ScriptError;
use redis_store::scripts::trim::{Depth, Mode, TrimScript};

/// Held entries are renewed at most this often.
const MIN_RENEWAL: Duration = Duration::from_millis(100);

/// One stream entry: its id and the booking's fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub id: String,
    pub fields: HashMap<String, String>,
}

/// Stream operations of one consumer.
#[derive(Debug, Clone)]
pub struct Consumer {
    redis: Pool,
    keys: Keyspace,
    name: String,
    trim: TrimScript,
}

impl Consumer {
    pub fn new(redis: Pool, keys: Keyspace, name: impl Into<String>) -> Self {
        Self {
            redis,
            keys,
            name: name.into(),
            trim: TrimScript::default(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn client(&self) -> &Client {
        self.redis.next()
    }

    /// Up to `count` entries: with `own_pending`, those already delivered to this consumer and not
    /// acknowledged (what it held when it last stopped); otherwise new ones.
    pub async fn read(
        &self,
        shard: Shard,
        count: usize,
        own_pending: bool,
    ) -> Result<Vec<Entry>, fred::error::Error> {
        let stream = self.keys.stream(shard);
        let start = if own_pending { "0" } else { ">" };
        let reply: Value = self
            .client()
            .xreadgroup(
                GROUP,
                self.name.as_str(),
                Some(count as u64),
                None,
                false,
                stream,
                start,
            )
            .await?;
        // Nothing to read is a nil reply, which does not convert to a map.
        if reply.is_null() {
            return Ok(Vec::new());
        }
        let response: XReadResponse<String, String, String, String> =
            reply.into_xread_response()?;
        Ok(response
            .into_values()
            .flatten()
            .map(|(id, fields)| Entry { id, fields })
            .collect())
    }

    /// Entries other consumers have held for longer than `min_idle`: `(claimed, exhausted)`,
    /// where `exhausted` are those already delivered more than `max_deliveries` times. Both are now
    /// held by this consumer.
    pub async fn claim_stale(
        &self,
        shard: Shard,
        min_idle: Duration,
        count: usize,
        max_deliveries: u64,
    ) -> Result<(Vec<Entry>, Vec<Entry>), fred::error::Error> {
        let stream = self.keys.stream(shard);
        let idle_ms = u64::try_from(min_idle.as_millis()).unwrap_or(u64::MAX);
        let stale: Vec<(String, String, u64, u64)> = self
            .client()
            .xpending(stream.as_str(), GROUP, (idle_ms, "-", "+", count as u64))
            .await?;
        if stale.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let deliveries: HashMap<String, u64> = stale
            .iter()
            .map(|(id, _, _, delivered)| (id.clone(), *delivered))
            .collect();
        let ids: Vec<String> = stale.into_iter().map(|(id, ..)| id).collect();
        let claimed: Vec<(String, HashMap<String, String>)> = self
            .client()
            .xclaim_values(
                stream.as_str(),
                GROUP,
                self.name.as_str(),
                idle_ms,
                ids,
                None,
                None,
                None,
                false,
                false,
            )
            .await?;
        Ok(claimed
            .into_iter()
            .map(|(id, fields)| Entry { id, fields })
            .partition(|entry| deliveries.get(&entry.id).copied().unwrap_or(0) < max_deliveries))
    }

    /// Renews this consumer's hold on `ids` for as long as the returned future runs: their idle
    /// time is reset (without counting a delivery) every third of `claim_idle`, so a batch that
    /// is slow but alive (waiting out a Postgres outage) is not claimed by another settler.
    pub async fn keep_held(
        &self,
        shard: Shard,
        ids: &[String],
        claim_idle: Duration,
    ) -> Infallible {
        let every = (claim_idle / 3).max(MIN_RENEWAL);
        let stream = self.keys.stream(shard);
        loop {
            tokio::time::sleep(every).await;
            let renewed: Result<Vec<String>, _> = self
                .client()
                .xclaim(
                    stream.as_str(),
                    GROUP,
                    self.name.as_str(),
                    0,
                    ids.to_vec(),
                    None,
                    None,
                    None,
                    false,
                    true,
                )
                .await;
            if let Err(error) = renewed {
                tracing::warn!(%shard, %error, "renewing held entries failed");
            }
        }
    }

    /// Acknowledges settled entries.
    pub async fn ack(&self, shard: Shard, ids: &[String]) -> Result<(), fred::error::Error> {
        if ids.is_empty() {
            return Ok(());
        }
        self.client()
            .xack::<i64, _, _, _>(self.keys.stream(shard), GROUP, ids.to_vec())
            .await
            .map(drop)
    }

    /// Trims the shard's stream behind its oldest unacknowledged entry (or, with
    /// [`Mode::Report`], only reports its depth).
    pub async fn trim(&self, shard: Shard, mode: Mode) -> Result<Depth, ScriptError> {
        self.trim
            .run(self.client(), &self.keys, shard, GROUP, mode)
            .await
    }
}
