//! The Redis scripts of `lua/`, one typed wrapper each, named after its script. Each wrapper
//! builds its script's KEYS and ARGV in one place and documents them; every caller (gateway,
//! settler, benchmarks) goes through it.
//!
//! Scripts run by SHA. Redis answers NOSCRIPT when its script cache is empty, which it is after
//! every restart or failover, and only then: the first sign, on the booking path, that writes
//! acknowledged just before may be gone. So a script that changes stock is loaded again only after
//! the shard guard has looked at every shard on the server (and closed those restarted, see
//! `guard.lua`): no booking or settlement runs against a server nobody checked.

pub mod guard;
pub mod queue;
pub mod reserve;
pub mod settle;
pub mod trim;

use fred::prelude::{Client, LuaInterface};
use fred::types::scripts::Script;
use fred::types::{FromValue, Value};

/// A script that could not be run, or answered something it never answers.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error(transparent)]
    Redis(#[from] fred::error::Error),
    #[error("unexpected reply from {script}: {reply}")]
    Reply { script: &'static str, reply: String },
    #[error("checking the shards before loading a script failed: {0}")]
    Verify(String),
}

/// What must happen before a script that changes stock is loaded into a server that lacks it:
/// the shard guard's look at every shard (`booking::recovery::ShardGuard`).
pub trait Verify: Sync {
    fn verify(&self) -> impl Future<Output = Result<(), ScriptError>> + Send;
}

/// Runs `script` by SHA; on NOSCRIPT, verifies the server, loads the script and runs it again.
async fn evalsha<R: FromValue>(
    script: &Script,
    client: &Client,
    keys: Vec<String>,
    args: Vec<String>,
    verify: &impl Verify,
) -> Result<R, ScriptError> {
    let sha1: &str = script.sha1();
    match client.evalsha(sha1, keys.clone(), args.clone()).await {
        Err(error) if error.details().starts_with("NOSCRIPT") => {
            verify.verify().await?;
            script.load(client).await?;
            Ok(client.evalsha(sha1, keys, args).await?)
        }
        reply => Ok(reply?),
    }
}

impl ScriptError {
    fn reply(script: &'static str, reply: impl std::fmt::Debug) -> Self {
        ScriptError::Reply {
            script,
            reply: format!("{reply:?}"),
        }
    }
}

/// A reply's integer at `index`.
fn integer(parts: &[Value], index: usize) -> Option<i64> {
    parts.get(index).and_then(Value::as_i64)
}
