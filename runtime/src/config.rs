//! Typed environment variables. Every binary reads its whole configuration before binding a port;
//! a bad value is reported with the variable's name and the process exits with status 2.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;

use redis_store::keys::Keyspace;

/// A configuration variable that is present but unusable.
#[derive(Debug, thiserror::Error)]
#[error("{name}={value:?} is invalid: {reason}")]
pub struct ConfigError {
    pub name: &'static str,
    pub value: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(name: &'static str, value: impl Into<String>, reason: impl fmt::Display) -> Self {
        Self {
            name,
            value: value.into(),
            reason: reason.to_string(),
        }
    }
}

/// Exit status for a configuration error, distinct from a crash (1) so supervisors can tell them apart.
pub const CONFIG_EXIT_CODE: u8 = 2;

/// A service's command line: its settings (flags, or the variables of the same names) and at
/// most one subcommand, run instead of the service.
#[derive(Debug, clap::Parser)]
pub struct Cli<Settings: clap::Args, Command: clap::Subcommand> {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Settings,
}

/// What a binary says of itself in `--help` and `--version`.
#[derive(Debug, Clone, Copy)]
pub struct About {
    pub name: &'static str,
    pub version: &'static str,
    /// The first line of `--help`.
    pub summary: &'static str,
}

impl<Settings: clap::Args, Command: clap::Subcommand> Cli<Settings, Command> {
    /// Parses the command line and the environment, exiting 2 on a bad value. Every setting's
    /// value is named for its variable (`--redis-url <REDIS_URL>`), so an attribute writes the
    /// name once, in `env`.
    pub fn parse(about: About) -> Self {
        use clap::{CommandFactory, FromArgMatches};
        let mut command = Self::command()
            .name(about.name)
            .version(about.version)
            .about(about.summary)
            .mut_args(|arg| {
                let Some(variable) = arg
                    .get_env()
                    .map(|name| name.to_string_lossy().into_owned())
                else {
                    return arg;
                };
                arg.value_name(variable)
            });
        let mut matches = command
            .try_get_matches_from_mut(std::env::args_os())
            .unwrap_or_else(|error| without_secrets(error, &command).exit());
        Self::from_arg_matches_mut(&mut matches)
            .unwrap_or_else(|error| error.format(&mut command).exit())
    }
}

/// clap quotes a refused value in its error. For a setting whose values are hidden (a secret),
/// the error names the variable and the rule, not the value.
fn without_secrets(error: clap::Error, command: &clap::Command) -> clap::Error {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if error.kind() != ErrorKind::ValueValidation {
        return error;
    }
    let Some(ContextValue::String(refused)) = error.get(ContextKind::InvalidArg) else {
        return error;
    };
    let secret = command.get_arguments().find_map(|arg| {
        let variable = arg.get_env()?.to_str()?;
        (arg.is_hide_env_values_set() && refused.contains(variable)).then_some(variable)
    });
    let Some(variable) = secret else {
        return error;
    };
    let rule = std::error::Error::source(&error)
        .map(ToString::to_string)
        .unwrap_or_default();
    clap::Error::raw(
        ErrorKind::ValueValidation,
        format!("{variable} is invalid (its value is not shown): {rule}\n"),
    )
}

/// The variable's value, or `None` when it is unset or empty.
pub fn raw(name: &'static str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

/// Parses `name` with its `FromStr`, or returns `default` when it is unset.
pub fn from_str_or<T>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    match raw(name) {
        None => Ok(default),
        Some(value) => value
            .trim()
            .parse()
            .map_err(|reason| ConfigError::new(name, value, reason)),
    }
}

/// Reads `T`'s variables from the environment alone, with no command line: for processes that
/// run a component without its binary (benchmarks). A bad value names its variable.
pub fn from_env<T: clap::Args + clap::FromArgMatches>() -> Result<T, clap::Error> {
    let mut command = T::augment_args(clap::Command::new("env").no_binary_name(true));
    let matches = command
        .try_get_matches_from_mut(std::iter::empty::<String>())
        .map_err(|error| without_secrets(error, &command))?;
    T::from_arg_matches(&matches)
}

/// A whole number from `min` to `max` of `unit`, for a value parser.
pub fn within(
    min: u64,
    max: u64,
    unit: &'static str,
) -> impl Fn(&str) -> Result<u64, String> + Clone {
    move |value| match value.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("expected {unit} from {min} to {max}")),
    }
}

/// Milliseconds from `min` to `max`, for a value parser.
pub fn millis(min: u64, max: u64) -> impl Fn(&str) -> Result<Duration, String> + Clone {
    let parse = within(min, max, "milliseconds");
    move |value| parse(value).map(Duration::from_millis)
}

/// Seconds from `min` to `max`, for a value parser.
pub fn seconds(min: u64, max: u64) -> impl Fn(&str) -> Result<Duration, String> + Clone {
    let parse = within(min, max, "seconds");
    move |value| parse(value).map(Duration::from_secs)
}

/// A boolean written as `true`/`false`, `1`/`0`, `yes`/`no` or `on`/`off`.
pub fn boolean(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("expected true or false".to_owned()),
    }
}

/// A Redis key prefix: letters, digits, `_`, `-` and `.`, so it can never open a hash tag.
pub fn key_prefix(value: &str) -> Result<String, String> {
    let valid = !value.is_empty()
        && value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if valid {
        Ok(value.to_owned())
    } else {
        Err("use 1-64 letters, digits, '_', '-' or '.'".to_owned())
    }
}

/// A Redis URL of a scheme fred understands.
fn redis_url(url: &str) -> Result<String, String> {
    let scheme = url.split("://").next().unwrap_or_default();
    if !REDIS_SCHEMES.contains(&scheme) {
        return Err(format!("the scheme must be one of {REDIS_SCHEMES:?}"));
    }
    fred::prelude::Config::from_url(url)
        .map(|_| url.to_owned())
        .map_err(|error| error.to_string())
}

/// A Postgres URL.
fn database_url(url: &str) -> Result<String, String> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err("the scheme must be postgres:// or postgresql://".to_owned());
    }
    PgConnectOptions::from_str(url)
        .map(|_| url.to_owned())
        .map_err(|error| error.to_string())
}

fn shards(value: &str) -> Result<u8, String> {
    match value.trim().parse::<u8>() {
        Ok(shards @ 1..=128) => Ok(shards),
        _ => Err("expected a whole number from 1 to 128".to_owned()),
    }
}

/// A value that must never reach a log: its `Debug` shows only that it is there.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

/// `url` with the password of its user info (`user:password@`) hidden, for logs.
fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((user_info, host)) if user_info.contains(':') => {
            let user = user_info.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:..@{host}{path}")
        }
        _ => url.to_owned(),
    }
}

/// URL schemes fred understands: plain, TLS, cluster and sentinel deployments.
const REDIS_SCHEMES: [&str; 5] = [
    "redis",
    "rediss",
    "redis-cluster",
    "rediss-cluster",
    "redis-sentinel",
];

/// Where Redis and Postgres are and how their data is named: the variables every binary reads.
/// Its `Debug` hides the URLs' passwords.
#[derive(Clone, clap::Args)]
pub struct Backends {
    /// Redis, or one node of a cluster.
    #[arg(long, env = "REDIS_URL", hide_env_values = true, default_value = "redis://127.0.0.1:6379",
        value_parser = redis_url)]
    pub redis_url: String,
    /// Postgres; the database is created if missing.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true,
        default_value = "postgres://postgres@127.0.0.1:5432/tickets", value_parser = database_url)]
    pub database_url: String,
    /// Prefix of every Redis key and channel.
    #[arg(long, env = "KEY_PREFIX", default_value = "tix", value_parser = key_prefix)]
    pub key_prefix: String,
    /// Logical shards new concerts are spread over (1-128); the settler reads every shard's
    /// stream, so both binaries must agree on it.
    #[arg(long, env = "REDIS_SHARDS", default_value = "16", value_parser = shards)]
    pub redis_shards: u8,
    /// How long a Redis command may take, in milliseconds, before it counts as failed.
    #[arg(long = "redis-timeout-ms", env = "REDIS_TIMEOUT_MS", default_value = "500",
        value_parser = millis(1, 60_000))]
    pub redis_timeout: Duration,
}

impl fmt::Debug for Backends {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backends")
            .field("redis_url", &redacted(&self.redis_url))
            .field("database_url", &redacted(&self.database_url))
            .field("key_prefix", &self.key_prefix)
            .field("redis_shards", &self.redis_shards)
            .field("redis_timeout", &self.redis_timeout)
            .finish()
    }
}

impl Backends {
    pub fn keyspace(&self) -> Keyspace {
        Keyspace::new(self.key_prefix.clone(), self.redis_shards)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_the_variable() {
        let error = ConfigError::new("GATEWAY_ADDR", "nope", "invalid socket address syntax");
        assert_eq!(
            error.to_string(),
            "GATEWAY_ADDR=\"nope\" is invalid: invalid socket address syntax"
        );
    }

    #[test]
    fn secrets_and_passwords_stay_out_of_debug_output() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(..)");
        let backends = Backends {
            redis_url: "redis://default:hunter2@cache:6379/0".to_owned(),
            database_url: "postgres://app:hunter2@db:5432/tickets".to_owned(),
            key_prefix: "tix".to_owned(),
            redis_shards: 1,
            redis_timeout: Duration::from_millis(500),
        };
        let printed = format!("{backends:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(
            printed.contains("postgres://app:..@db:5432/tickets"),
            "{printed}"
        );
        assert_eq!(redacted("redis://cache:6379"), "redis://cache:6379");
    }
}
