//! Typed environment variables. Every binary reads its whole configuration before binding a port;
//! a bad value is reported with the variable's name and the process exits with status 2.

use std::fmt;
use std::str::FromStr;

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

/// The variable's value, or `None` when it is unset or empty.
pub fn raw(name: &'static str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

/// Parses `name` with `parse`, or returns `default` when it is unset.
pub fn parse_or<T, E: fmt::Display>(
    name: &'static str,
    default: T,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, ConfigError> {
    match raw(name) {
        None => Ok(default),
        Some(value) => parse(value.trim()).map_err(|reason| ConfigError::new(name, value, reason)),
    }
}

/// Parses `name` with its `FromStr`, or returns `default` when it is unset.
pub fn from_str_or<T>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    parse_or(name, default, str::parse)
}

/// A boolean written as `true`/`false`, `1`/`0`, `yes`/`no` or `on`/`off`.
pub fn bool_or(name: &'static str, default: bool) -> Result<bool, ConfigError> {
    parse_or(name, default, |value| {
        match value.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err("expected true or false"),
        }
    })
}

/// A Redis key prefix: letters, digits, `_`, `-` and `.`, so it can never open a hash tag.
pub fn key_prefix(name: &'static str, default: &str) -> Result<String, ConfigError> {
    parse_or(name, default.to_owned(), |value| {
        let valid = !value.is_empty()
            && value.len() <= 64
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if valid {
            Ok(value.to_owned())
        } else {
            Err("use 1-64 letters, digits, '_', '-' or '.'")
        }
    })
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
}
