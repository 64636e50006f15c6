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

use domain::record::{IDEMPOTENCY_RECORD_ID_CHARS, field};
use fred::prelude::{Client, ClientLike, LuaInterface};
use fred::types::scripts::Script;
use fred::types::{ClusterHash, CustomCommand};
use fred::types::{FromValue, Value};
use fred::util::redis_keyslot;

use crate::keys::ticket_field;

/// The code a script's reply starts with: `{code, ...}`. One table for every script that decides
/// something (`guard.lua` and `trim.lua` only report), so a code means one thing wherever it is
/// answered. The scripts name the codes (`RECOVERING`) through [`prelude`], made from this enum,
/// so each number is written here alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Done as asked: reserved, joined, admitted, drawn, applied.
    Done,
    /// Done before: the key's booking or ticket, a booking already final, a draw already made.
    Known,
    /// The idempotency key is known with a different request.
    KeyReused,
    OutOfStock,
    CustomerLimit,
    /// The tier's stock is not in Redis.
    StockMissing,
    /// The shard's data is being rebuilt; nothing was written.
    Recovering,
    /// The waiting-room admission was spent on another booking.
    AdmissionSpent,
    /// Another gateway holds the waiting room's lease.
    NotHolder,
    /// The early joiners are not drawn yet.
    NotDrawn,
    /// Sales are not open yet by Redis' clock.
    TooEarly,
    /// The early list changed since it was read.
    Changed,
    /// Redis holds no record of the booking.
    Unknown,
}

impl Reply {
    pub const ALL: [Reply; 13] = [
        Reply::Done,
        Reply::Known,
        Reply::KeyReused,
        Reply::OutOfStock,
        Reply::CustomerLimit,
        Reply::StockMissing,
        Reply::Recovering,
        Reply::AdmissionSpent,
        Reply::NotHolder,
        Reply::NotDrawn,
        Reply::TooEarly,
        Reply::Changed,
        Reply::Unknown,
    ];

    /// The number on the wire: its place in [`Reply::ALL`].
    pub fn code(self) -> i64 {
        Self::ALL
            .iter()
            .position(|reply| *reply == self)
            .and_then(|index| i64::try_from(index).ok())
            .unwrap_or(-1)
    }

    /// The name the scripts use.
    pub fn lua_name(self) -> &'static str {
        match self {
            Reply::Done => "DONE",
            Reply::Known => "KNOWN",
            Reply::KeyReused => "KEY_REUSED",
            Reply::OutOfStock => "OUT_OF_STOCK",
            Reply::CustomerLimit => "CUSTOMER_LIMIT",
            Reply::StockMissing => "STOCK_MISSING",
            Reply::Recovering => "RECOVERING",
            Reply::AdmissionSpent => "ADMISSION_SPENT",
            Reply::NotHolder => "NOT_HOLDER",
            Reply::NotDrawn => "NOT_DRAWN",
            Reply::TooEarly => "TOO_EARLY",
            Reply::Changed => "CHANGED",
            Reply::Unknown => "UNKNOWN",
        }
    }

    fn from_code(code: i64) -> Option<Self> {
        usize::try_from(code)
            .ok()
            .and_then(|index| Self::ALL.get(index).copied())
    }
}

/// What every deciding script starts with, as Lua locals (a few instructions per run): its reply
/// codes, the width of the booking id at the head of an idempotency record, and the hash and
/// stream fields it writes (`F_*` a booking's, `T_*` a queue ticket's).
pub fn prelude() -> String {
    let names: Vec<&str> = Reply::ALL.iter().map(|reply| reply.lua_name()).collect();
    let codes: Vec<String> = Reply::ALL
        .iter()
        .map(|reply| reply.code().to_string())
        .collect();
    let (packed, status, reason, epoch) =
        (field::PACKED, field::STATUS, field::REASON, field::EPOCH);
    let (concert, arrival, early, email) = (
        ticket_field::CONCERT,
        ticket_field::ARRIVAL,
        ticket_field::EARLY,
        ticket_field::EMAIL,
    );
    format!(
        "local {} = {}\nlocal ID_CHARS = {IDEMPOTENCY_RECORD_ID_CHARS}\n\
         local F_PACKED, F_STATUS, F_REASON, F_EPOCH = \
         '{packed}', '{status}', '{reason}', '{epoch}'\n\
         local T_CONCERT, T_ARRIVAL, T_EARLY, T_EMAIL = '{concert}', '{arrival}', '{early}', \
         '{email}'\n",
        names.join(", "),
        codes.join(", ")
    )
}

/// A deciding script of `lua/`, with the prelude before it.
fn deciding(source: &str) -> Script {
    Script::from_lua(format!("{}{source}", prelude()))
}

fn text(script: &Script) -> String {
    script.lua().map(ToString::to_string).unwrap_or_default()
}

/// Every script as it is loaded into Redis: `(file, source)`.
pub fn sources() -> Vec<(&'static str, String)> {
    vec![
        ("reserve.lua", reserve::ReserveScript::default().source()),
        ("settle.lua", settle::SettleScript::default().source()),
        ("guard.lua", guard::GuardScript::default().source()),
        ("trim.lua", trim::TrimScript::default().source()),
    ]
    .into_iter()
    .chain(queue::QueueScripts::default().sources())
    .collect()
}

/// The code a reply starts with, and the rest of it.
fn decode(script: &'static str, reply: Value) -> Result<(Reply, Vec<Value>), ScriptError> {
    let Value::Array(parts) = reply else {
        return Err(ScriptError::reply(script, reply));
    };
    match integer(&parts, 0).and_then(Reply::from_code) {
        Some(code) => Ok((code, parts)),
        None => Err(ScriptError::reply(script, &parts)),
    }
}

/// A script that could not be run, or answered something it never answers.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error(transparent)]
    Redis(#[from] fred::error::Error),
    #[error("unexpected reply from {script}: {reply}")]
    Reply { script: &'static str, reply: String },
    #[error("checking the shards before loading a script failed: {0}")]
    Verify(String),
    /// The write is on the master but reached only `acked` of the replicas it must reach
    /// before anyone is told of it: its outcome is unknown to the client, who may ask again.
    #[error("the write reached {acked} of {wanted} replicas in time")]
    NotReplicated { acked: i64, wanted: u8 },
}

/// How many replicas a write must reach before a client is told of it, and how long that may
/// take (`REDIS_MIN_REPLICAS`, `REDIS_WAIT_MS`). Redis replicates asynchronously: without this,
/// an acknowledged write lives on one machine until the replicas catch up, and a failover
/// before then loses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Replication {
    pub replicas: u8,
    pub wait: std::time::Duration,
}

impl Replication {
    /// Acknowledged as soon as the master has it.
    pub const NONE: Self = Self {
        replicas: 0,
        wait: std::time::Duration::ZERO,
    };

    /// `WAIT`'s timeout, milliseconds; at least 1, since 0 would wait forever.
    fn wait_ms(self) -> i64 {
        i64::try_from(self.wait.as_millis())
            .unwrap_or(i64::MAX)
            .max(1)
    }

    /// The error for a `WAIT` that answered `acked`, if too few.
    fn check(self, acked: i64) -> Result<(), ScriptError> {
        if acked >= i64::from(self.replicas) {
            Ok(())
        } else {
            Err(ScriptError::NotReplicated {
                acked,
                wanted: self.replicas,
            })
        }
    }

    /// Waits until `client`'s writes so far reached the replicas. `fence` is written first (a
    /// key of the shard), so the wait covers every write the master made before this call, also
    /// those of other connections: `WAIT` counts only its own connection's writes.
    pub async fn fence(self, client: &Client, fence: String) -> Result<(), ScriptError> {
        if self.replicas == 0 {
            return Ok(());
        }
        let slot = redis_keyslot(fence.as_bytes());
        let pipeline = client.pipeline();
        let _: () = pipeline
            .custom(
                CustomCommand::new_static("INCR", ClusterHash::Custom(slot), false),
                vec![fence],
            )
            .await?;
        let _: () = pipeline
            .custom(self.wait_command(slot), self.wait_args())
            .await?;
        let (_, acked): (i64, i64) = pipeline.all().await?;
        self.check(acked)
    }

    /// `WAIT` on the node of hash `slot`: the same connection as the writes before it.
    fn wait_command(self, slot: u16) -> CustomCommand {
        CustomCommand::new_static("WAIT", ClusterHash::Custom(slot), false)
    }

    fn wait_args(self) -> Vec<Value> {
        vec![
            Value::from(i64::from(self.replicas)),
            Value::from(self.wait_ms()),
        ]
    }
}

/// What must happen before a script that changes stock is loaded into a server that lacks it:
/// the shard guard's look at every shard (`redis_store::recovery::ShardGuard`).
pub trait Verify: Sync {
    fn verify(&self) -> impl Future<Output = Result<(), ScriptError>> + Send;
}

/// [`evalsha`], followed on the same connection and in the same round trip by `WAIT` for
/// `replication`'s replicas: the script's reply, and how many replicas acknowledged its writes.
async fn evalsha_replicated(
    script: &Script,
    client: &Client,
    keys: Vec<String>,
    args: Vec<String>,
    replication: Replication,
    verify: &impl Verify,
) -> Result<(Value, i64), ScriptError> {
    // Both on the node of the script's keys (one hash tag), so on one connection, in order.
    let slot = redis_keyslot(keys.first().map(String::as_bytes).unwrap_or_default());
    let mut argv: Vec<Value> = Vec::with_capacity(keys.len() + args.len() + 2);
    argv.push(Value::from(script.sha1().to_string()));
    argv.push(Value::from(i64::try_from(keys.len()).unwrap_or(i64::MAX)));
    argv.extend(keys.into_iter().chain(args).map(Value::from));
    let run = || async {
        let pipeline = client.pipeline();
        let _: () = pipeline
            .custom(
                CustomCommand::new_static("EVALSHA", ClusterHash::Custom(slot), false),
                argv.clone(),
            )
            .await?;
        let _: () = pipeline
            .custom(replication.wait_command(slot), replication.wait_args())
            .await?;
        let mut replies = pipeline.try_all::<Value>().await.into_iter();
        let reply = replies.next().unwrap_or(Ok(Value::Null));
        let acked = replies
            .next()
            .unwrap_or(Ok(Value::Null))?
            .as_i64()
            .unwrap_or(0);
        Ok::<_, fred::error::Error>((reply, acked))
    };
    match run().await? {
        (Err(error), _) if error.details().starts_with("NOSCRIPT") => {
            verify.verify().await?;
            script.load(client).await?;
            let (reply, acked) = run().await?;
            Ok((reply?, acked))
        }
        (reply, acked) => Ok((reply?, acked)),
    }
}

/// Runs `script` by SHA and, with `replication`, hands its reply back only once the replicas hold
/// what the reply acknowledges: the script's own writes when it did something ([`Reply::Done`]),
/// everything the shard's master wrote so far when it found the thing done before
/// ([`Reply::Known`]: written perhaps on another connection, so `fence`, a key of the shard, is
/// written and waited for). Any other reply wrote nothing a client is told of.
async fn acknowledged(
    script: &Script,
    client: &Client,
    keys: Vec<String>,
    args: Vec<String>,
    replication: Replication,
    fence: String,
    verify: &impl Verify,
) -> Result<Value, ScriptError> {
    if replication.replicas == 0 {
        return evalsha(script, client, keys, args, verify).await;
    }
    let (reply, acked) =
        evalsha_replicated(script, client, keys, args, replication, verify).await?;
    let code = match &reply {
        Value::Array(parts) => integer(parts, 0).and_then(Reply::from_code),
        _ => None,
    };
    match code {
        Some(Reply::Done) => replication.check(acked)?,
        Some(Reply::Known) => replication.fence(client, fence).await?,
        _ => {}
    }
    Ok(reply)
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The scripts that answer a [`Reply`], as the wrappers load them.
    const DECIDING: [(&str, &str); 5] = [
        ("reserve.lua", include_str!("../../reserve.lua")),
        ("settle.lua", include_str!("../../settle.lua")),
        ("queue_join.lua", include_str!("../../queue_join.lua")),
        ("queue_draw.lua", include_str!("../../queue_draw.lua")),
        ("queue_admit.lua", include_str!("../../queue_admit.lua")),
    ];

    #[test]
    fn every_return_of_every_deciding_script_starts_with_a_named_code() {
        let names: BTreeSet<&str> = Reply::ALL.iter().map(|reply| reply.lua_name()).collect();
        let mut answered = BTreeSet::new();
        for (script, source) in DECIDING {
            let returns: Vec<&str> = source
                .lines()
                .map(str::trim)
                .filter(|line| line.starts_with("return"))
                .collect();
            assert!(!returns.is_empty(), "{script} returns nothing");
            for line in returns {
                let code = line
                    .strip_prefix("return {")
                    .and_then(|rest| rest.split([',', '}']).next())
                    .map(str::trim)
                    .unwrap_or_default();
                assert!(names.contains(code), "{script}: `{line}` names no code");
                answered.insert(code);
            }
        }
        assert_eq!(answered, names, "every code is answered by some script");
    }

    #[test]
    fn the_prelude_gives_each_code_its_own_number() {
        let prelude = prelude();
        let first = prelude.lines().next().unwrap_or_default();
        let (names, numbers) = first
            .strip_prefix("local ")
            .and_then(|rest| rest.split_once(" = "))
            .unwrap_or_default();
        let names: Vec<&str> = names.split(", ").collect();
        let numbers: Vec<i64> = numbers
            .split(", ")
            .map(|n| n.parse().unwrap_or(-1))
            .collect();
        assert_eq!(names.len(), Reply::ALL.len());
        for (reply, (name, number)) in Reply::ALL.iter().zip(names.iter().zip(&numbers)) {
            assert_eq!((reply.lua_name(), reply.code()), (*name, *number));
            assert_eq!(Reply::from_code(*number), Some(*reply));
        }
        assert_eq!(
            numbers.iter().collect::<BTreeSet<_>>().len(),
            numbers.len(),
            "distinct"
        );
        assert_eq!(Reply::from_code(-1), None);
    }

    #[test]
    fn an_idempotency_record_starts_with_an_id_of_the_width_the_scripts_read() {
        let id = domain::ids::BookingId::from(uuid::Uuid::now_v7());
        let record = domain::record::idempotency_record(id, "print");
        assert_eq!(
            record.get(..IDEMPOTENCY_RECORD_ID_CHARS),
            Some(id.to_string().as_str())
        );
        assert_eq!(record.get(IDEMPOTENCY_RECORD_ID_CHARS + 1..), Some("print"));
    }
}
