//! Turning a JSON body into typed values while collecting every problem, so one `400` lists all
//! bad fields at once instead of making the client fix them one round trip at a time.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use simd_json::StaticNode;
use simd_json::borrowed::{Object, Value};
use uuid::Uuid;

use booking::money::Money;

use crate::error::{ApiError, FieldError};

/// Deepest nesting of arrays and objects accepted. simd-json builds and drops values
/// recursively, so a body of a few KiB of `[` would otherwise overflow the stack.
const MAX_DEPTH: usize = 32;

/// Parses `body` as JSON; broken or too deeply nested JSON is a `400 MalformedJson`.
pub fn parse_json(body: &mut [u8]) -> Result<Value<'_>, ApiError> {
    if nesting_depth(body) > MAX_DEPTH {
        return Err(ApiError::MalformedJson(format!(
            "arrays and objects nest deeper than {MAX_DEPTH} levels"
        )));
    }
    simd_json::to_borrowed_value(body).map_err(|error| ApiError::MalformedJson(error.to_string()))
}

/// The deepest nesting of `[` and `{` outside strings; malformed input is left to the parser.
fn nesting_depth(json: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &byte in json {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Collects field errors; each accessor returns `None` after recording why.
#[derive(Debug, Default)]
pub struct Checker {
    errors: Vec<FieldError>,
}

fn type_name(value: &Value<'_>) -> &'static str {
    match value {
        Value::Static(StaticNode::Null) => "null",
        Value::Static(StaticNode::Bool(_)) => "a boolean",
        Value::Static(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `parent.name`, or `name` at the top level.
pub fn path(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}.{name}")
    }
}

impl Checker {
    pub fn error(
        &mut self,
        field: impl Into<String>,
        code: &'static str,
        message: impl Into<String>,
    ) {
        self.errors.push(FieldError::new(field, code, message));
    }

    /// The value a domain parser made of a field, or its reason recorded under `code`.
    pub fn parsed<T>(
        &mut self,
        field: &str,
        code: &'static str,
        parsed: Result<T, &'static str>,
    ) -> Option<T> {
        parsed
            .map_err(|reason| self.error(field, code, reason))
            .ok()
    }

    /// `Ok(value)` when nothing was recorded; the value is then always present.
    pub fn finish<T>(self, value: Option<T>) -> Result<T, ApiError> {
        match value {
            Some(value) if self.errors.is_empty() => Ok(value),
            _ if self.errors.is_empty() => Err(ApiError::Internal(
                "validation produced neither a value nor an error".to_owned(),
            )),
            _ => Err(ApiError::Validation(self.errors)),
        }
    }

    pub fn object<'v, 'a>(&mut self, value: &'v Value<'a>, field: &str) -> Option<&'v Object<'a>> {
        match value {
            Value::Object(object) => Some(object),
            other => {
                let name = if field.is_empty() { "body" } else { field };
                self.error(
                    name,
                    "type",
                    format!("must be an object, not {}", type_name(other)),
                );
                None
            }
        }
    }

    /// A field that must be present and not null.
    pub fn required<'v, 'a>(
        &mut self,
        object: &'v Object<'a>,
        field: &str,
        name: &str,
    ) -> Option<&'v Value<'a>> {
        match object.get(name) {
            None | Some(Value::Static(StaticNode::Null)) => {
                self.error(path(field, name), "required", "is required");
                None
            }
            Some(value) => Some(value),
        }
    }

    /// A string of `min..=max` characters, trimmed, without control characters.
    pub fn text<'v>(
        &mut self,
        value: &'v Value<'_>,
        field: &str,
        min: usize,
        max: usize,
    ) -> Option<&'v str> {
        let Value::String(text) = value else {
            self.error(
                field,
                "type",
                format!("must be a string, not {}", type_name(value)),
            );
            return None;
        };
        let text = text.trim();
        let length = text.chars().count();
        if length < min || length > max {
            self.error(
                field,
                "range",
                format!("must be {min} to {max} characters long"),
            );
            return None;
        }
        if text.chars().any(char::is_control) {
            self.error(field, "format", "must not contain control characters");
            return None;
        }
        Some(text)
    }

    pub fn uuid(&mut self, value: &Value<'_>, field: &str) -> Option<Uuid> {
        let text = self.text(value, field, 1, 64)?;
        match Uuid::parse_str(text) {
            Ok(id) => Some(id),
            Err(_) => {
                self.error(field, "format", "must be a UUID");
                None
            }
        }
    }

    /// A whole number within `range`; `2.0` is not a whole number here.
    pub fn integer(&mut self, value: &Value<'_>, field: &str, min: i64, max: i64) -> Option<i64> {
        let number = match value {
            Value::Static(StaticNode::I64(n)) => Some(*n),
            Value::Static(StaticNode::U64(n)) => Some(i64::try_from(*n).unwrap_or(i64::MAX)),
            _ => None,
        };
        let Some(number) = number else {
            self.error(
                field,
                "type",
                format!("must be a whole number, not {}", type_name(value)),
            );
            return None;
        };
        if !(min..=max).contains(&number) {
            self.error(field, "range", format!("must be from {min} to {max}"));
            return None;
        }
        Some(number)
    }

    /// An amount of money, as a JSON number or a decimal string.
    pub fn money(&mut self, value: &Value<'_>, field: &str) -> Option<Money> {
        let parsed = match value {
            Value::Static(StaticNode::I64(n)) => Money::from_str(&n.to_string()),
            Value::Static(StaticNode::U64(n)) => Money::from_str(&n.to_string()),
            Value::Static(StaticNode::F64(n)) => Money::from_json_number(*n),
            Value::String(text) => Money::from_str(text.trim()),
            other => {
                self.error(
                    field,
                    "type",
                    format!("must be a number, not {}", type_name(other)),
                );
                return None;
            }
        };
        match parsed {
            Ok(money) => Some(money),
            Err(reason) => {
                self.error(field, "range", reason.to_string());
                None
            }
        }
    }

    /// An RFC 3339 timestamp with a time zone.
    pub fn timestamp(&mut self, value: &Value<'_>, field: &str) -> Option<DateTime<Utc>> {
        let text = self.text(value, field, 1, 64)?;
        match DateTime::parse_from_rfc3339(text) {
            Ok(at) => Some(at.with_timezone(&Utc)),
            Err(_) => {
                self.error(
                    field,
                    "format",
                    "must be an RFC 3339 timestamp, e.g. 2027-06-01T19:30:00Z",
                );
                None
            }
        }
    }

    pub fn array<'v, 'a>(
        &mut self,
        value: &'v Value<'a>,
        field: &str,
        min: usize,
        max: usize,
    ) -> Option<&'v [Value<'a>]> {
        let Value::Array(items) = value else {
            self.error(
                field,
                "type",
                format!("must be an array, not {}", type_name(value)),
            );
            return None;
        };
        if items.len() < min || items.len() > max {
            self.error(field, "range", format!("must have {min} to {max} items"));
            return None;
        }
        Some(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_measured_outside_strings() {
        assert_eq!(nesting_depth(br#"{"a":[1,{"b":2}]}"#), 3);
        assert_eq!(nesting_depth(br#"{"a":"[[[[\"[["}"#), 1);
        assert_eq!(nesting_depth(b"[[[[]]]]"), 4);
    }

    #[test]
    fn deep_nesting_is_refused_before_parsing() {
        let mut deep = [vec![b'['; 10_000], vec![b']'; 10_000]].concat();
        assert!(matches!(
            parse_json(&mut deep),
            Err(ApiError::MalformedJson(_))
        ));
        let mut shallow = [vec![b'['; MAX_DEPTH], vec![b']'; MAX_DEPTH]].concat();
        assert!(parse_json(&mut shallow).is_ok());
    }
}
