//! `lua/trim.lua`: trims a shard's stream behind its oldest unacknowledged entry.

use domain::ids::Shard;
use fred::prelude::Client;
use fred::types::scripts::Script;

use super::ScriptError;
use crate::keys::Keyspace;

/// Depth of one shard's stream after a trim.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Depth {
    pub trimmed: i64,
    pub length: i64,
    pub pending: i64,
    /// Entries not yet delivered to any consumer; `None` where Redis does not report it.
    pub lag: Option<i64>,
    /// When the oldest unacknowledged entry was accepted (unix milliseconds, from its id).
    pub oldest_unsettled_ms: Option<u64>,
}

/// Whether [`TrimScript::run`] trims or only reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Trim,
    Report,
}

#[derive(Debug, Clone)]
pub struct TrimScript(Script);

impl Default for TrimScript {
    fn default() -> Self {
        Self(Script::from_lua(include_str!("../../trim.lua")))
    }
}

impl TrimScript {
    /// The script's text as Redis runs it.
    pub fn source(&self) -> String {
        super::text(&self.0)
    }

    /// KEYS: 1. `bookings`, the shard's stream.
    /// ARGV: 1. the consumer group, 2. `1` to trim or `0` to only report.
    pub async fn run(
        &self,
        client: &Client,
        keys: &Keyspace,
        shard: Shard,
        group: &str,
        mode: Mode,
    ) -> Result<Depth, ScriptError> {
        let trim = if mode == Mode::Trim { "1" } else { "0" };
        let reply: Vec<fred::types::Value> = self
            .0
            .evalsha_with_reload(client, keys.stream(shard), vec![group, trim])
            .await?;
        let number = |index: usize| reply.get(index).and_then(fred::types::Value::as_i64);
        let oldest = reply
            .get(4)
            .and_then(fred::types::Value::as_str)
            .and_then(|id| id.split('-').next()?.parse().ok());
        match (number(0), number(1), number(2), number(3)) {
            (Some(trimmed), Some(length), Some(pending), Some(lag)) => Ok(Depth {
                trimmed,
                length,
                pending,
                lag: (lag >= 0).then_some(lag),
                oldest_unsettled_ms: oldest,
            }),
            _ => Err(ScriptError::reply("trim.lua", reply)),
        }
    }
}
