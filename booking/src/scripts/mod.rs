//! The Redis scripts of `lua/`, one typed wrapper each, named after its script. Each wrapper
//! builds its script's KEYS and ARGV in one place and documents them; every caller (gateway,
//! settler, benchmarks) goes through it. Scripts run by SHA and are loaded again when Redis
//! answers NOSCRIPT (its script cache is empty after a restart or a failover).

pub mod guard;
pub mod reserve;
pub mod settle;
pub mod trim;

use fred::types::Value;

/// A script that could not be run, or answered something it never answers.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error(transparent)]
    Redis(#[from] fred::error::Error),
    #[error("unexpected reply from {script}: {reply}")]
    Reply { script: &'static str, reply: String },
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
