//! `lua/guard.lua`: is a shard's data whole?

use domain::ids::Shard;
use fred::prelude::Client;
use fred::types::scripts::Script;

use super::ScriptError;
use crate::keys::Keyspace;

/// What the guard found on one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardState {
    /// Initialised in `epoch` on the server that answers now.
    Whole { epoch: u64 },
    /// Nothing of the shard: never initialised, or Redis lost everything.
    Lost,
    /// Closed: initialised on another server than the one answering now (Redis restarted or
    /// failed over, and writes acknowledged just before may be gone; the check closed it), or a
    /// recovery is under way or was cut off.
    Closed,
}

/// The state, and the run id of the server that answered (what recovery records).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub state: ShardState,
    pub run_id: String,
}

#[derive(Debug, Clone)]
pub struct GuardScript(Script);

impl Default for GuardScript {
    fn default() -> Self {
        Self(Script::from_lua(include_str!("../../guard.lua")))
    }
}

impl GuardScript {
    /// The script's text as Redis runs it.
    pub fn source(&self) -> String {
        super::text(&self.0)
    }

    /// Run first on a server that lacks the other scripts (see [`super::Verify`]), so it is the
    /// one script loaded without a check.
    ///
    /// KEYS: 1. `epoch`, 2. `run-id`, both of the shard. No ARGV.
    pub async fn check(
        &self,
        client: &Client,
        keys: &Keyspace,
        shard: Shard,
    ) -> Result<Report, ScriptError> {
        let reply: Vec<String> = self
            .0
            .evalsha_with_reload(client, vec![keys.epoch(shard), keys.run_id(shard)], ())
            .await?;
        let [epoch, recorded, run_id] = reply.as_slice() else {
            return Err(ScriptError::reply("guard.lua", reply));
        };
        let state = match (epoch.parse::<u64>(), recorded.is_empty()) {
            (Ok(epoch), _) => ShardState::Whole { epoch },
            (Err(_), true) => ShardState::Lost,
            (Err(_), false) => ShardState::Closed,
        };
        Ok(Report {
            state,
            run_id: run_id.clone(),
        })
    }
}
