//! Turning a JSON body into typed values while collecting every problem, so one `400` lists all
//! bad fields at once instead of making the client fix them one round trip at a time.
//!
//! A body is first read into a loose form: a struct of the expected fields, each any JSON value,
//! so a field of the wrong type is still reported beside the others. The derived reader refuses a
//! field given twice (`{"quantity":2,"quantity":1}` would otherwise book one of the two
//! silently), and numbers keep the digits the client sent, so money is read exactly.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use uuid::Uuid;

use domain::money::Money;
use domain::values::Email;

use crate::http::error::{ApiError, FieldError};

/// Reads `body` into its loose form `T`: broken JSON is `400 MalformedJson`; a body of the wrong
/// shape (not an object, a field given twice) is `400 ValidationFailed` naming it.
pub fn parse_form<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    // A derived reader would also take an array, field by field in order: only objects count.
    let first = body.iter().find(|byte| !byte.is_ascii_whitespace());
    if first.is_some_and(|byte| *byte != b'{') {
        let kind = serde_json::from_slice::<Value>(body)
            .map(|value| type_name(&value))
            .map_err(|error| ApiError::MalformedJson(error.to_string()))?;
        return Err(ApiError::Validation(vec![FieldError::new(
            "body",
            "type",
            format!("must be an object, not {kind}"),
        )]));
    }
    serde_json::from_slice(body).map_err(|error| match error.classify() {
        serde_json::error::Category::Data => ApiError::Validation(vec![FieldError::new(
            "body",
            if error.to_string().starts_with("duplicate field") {
                "conflict"
            } else {
                "type"
            },
            error.to_string(),
        )]),
        _ => ApiError::MalformedJson(error.to_string()),
    })
}

/// Collects field errors; each accessor returns `None` after recording why.
#[derive(Debug, Default)]
pub struct Checker {
    errors: Vec<FieldError>,
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `parent.name`, or `name` at the top level.
/// The id in a path (`/api/bookings/{id}`), or the problem naming it.
pub fn path_id<Id: From<Uuid>>(id: &str) -> Result<Id, ApiError> {
    Uuid::parse_str(id)
        .map(Id::from)
        .map_err(|_| ApiError::Validation(vec![FieldError::new("id", "format", "must be a UUID")]))
}

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

    /// A field of a loose form that must be present and not null.
    pub fn required<'v>(&mut self, value: &'v Option<Value>, field: &str) -> Option<&'v Value> {
        match value {
            None | Some(Value::Null) => {
                self.error(field, "required", "is required");
                None
            }
            Some(value) => Some(value),
        }
    }

    pub fn object<'v>(&mut self, value: &'v Value, field: &str) -> Option<&'v Map<String, Value>> {
        match value {
            Value::Object(object) => Some(object),
            other => {
                self.error(
                    field,
                    "type",
                    format!("must be an object, not {}", type_name(other)),
                );
                None
            }
        }
    }

    /// A member of a nested object that must be present and not null.
    pub fn member<'v>(
        &mut self,
        object: &'v Map<String, Value>,
        parent: &str,
        name: &str,
    ) -> Option<&'v Value> {
        match object.get(name) {
            None | Some(Value::Null) => {
                self.error(path(parent, name), "required", "is required");
                None
            }
            Some(value) => Some(value),
        }
    }

    /// A string of `min..=max` characters, trimmed, without control characters.
    pub fn text<'v>(
        &mut self,
        value: &'v Value,
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

    /// A string as sent, for a domain type that checks its own bounds.
    pub fn string<'v>(&mut self, value: &'v Value, field: &str) -> Option<&'v str> {
        if let Value::String(text) = value {
            return Some(text);
        }
        self.error(
            field,
            "type",
            format!("must be a string, not {}", type_name(value)),
        );
        None
    }

    /// A required email address, normalised ([`Email::parse`]).
    pub fn email(&mut self, value: &Option<Value>, field: &str) -> Option<Email> {
        let text = self.required(value, field)?;
        let text = self.string(text, field)?;
        self.parsed(field, "format", Email::parse(text))
    }

    pub fn id<Id: From<Uuid>>(&mut self, value: &Value, field: &str) -> Option<Id> {
        let text = self.text(value, field, 1, 64)?;
        match Uuid::parse_str(text) {
            Ok(id) => Some(id.into()),
            Err(_) => {
                self.error(field, "format", "must be a UUID");
                None
            }
        }
    }

    /// A whole number within `range`; `2.0` is not a whole number here.
    pub fn integer(&mut self, value: &Value, field: &str, min: i64, max: i64) -> Option<i64> {
        let number = match value {
            Value::Number(number) if !number.to_string().contains(['.', 'e', 'E']) => {
                Some(number.as_i64().unwrap_or(i64::MAX))
            }
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

    /// An amount of money, as a JSON number or a decimal string, read from the digits the client
    /// sent: `9.999999999999999999` is too precise, not ten.
    pub fn money(&mut self, value: &Value, field: &str) -> Option<Money> {
        let parsed = match value {
            Value::Number(number) => Money::from_str(&number.to_string()),
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

    /// An RFC 3339 timestamp with a time zone, within the years RFC 3339 can write (to 9999).
    pub fn timestamp(&mut self, value: &Value, field: &str) -> Option<DateTime<Utc>> {
        let text = self.text(value, field, 1, 64)?;
        match DateTime::parse_from_rfc3339(text).map(|at| at.with_timezone(&Utc)) {
            Ok(at) if domain::record::is_writable(&at) => Some(at),
            Ok(_) => {
                self.error(field, "range", "must be before the year 10000");
                None
            }
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

    pub fn array<'v>(
        &mut self,
        value: &'v Value,
        field: &str,
        min: usize,
        max: usize,
    ) -> Option<&'v [Value]> {
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

    #[derive(Debug, serde::Deserialize)]
    struct Form {
        #[allow(dead_code)]
        a: Option<Value>,
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing() {
        let deep = [vec![b'['; 10_000], vec![b']'; 10_000]].concat();
        assert!(matches!(
            parse_form::<Value>(&deep),
            Err(ApiError::MalformedJson(_))
        ));
    }

    #[test]
    fn a_field_given_twice_is_refused() {
        match parse_form::<Form>(br#"{"a":1,"a":2}"#) {
            Err(ApiError::Validation(errors)) => assert_eq!(errors[0].code, "conflict"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_form::<Form>(b"[1]"),
            Err(ApiError::Validation(_))
        ));
        assert!(parse_form::<Form>(br#"{"a":1,"b":2}"#).is_ok());
    }

    #[test]
    fn money_keeps_the_digits_sent() {
        let mut check = Checker::default();
        let value = |text: &str| serde_json::from_str::<Value>(text).expect("json");
        assert_eq!(
            check
                .money(&value("10.10"), "p")
                .map(|money| money.to_string()),
            Some("10.10".to_owned())
        );
        assert_eq!(check.money(&value("9.999999999999999999"), "p"), None);
        assert_eq!(check.money(&value("10.000000000000000001"), "p"), None);
        assert_eq!(check.integer(&value("2.0"), "q", 1, 10), None);
        assert_eq!(check.integer(&value("2"), "q", 1, 10), Some(2));
        assert_eq!(check.errors.len(), 3);
    }
}

/// A page asked for by `cursor` (the `nextCursor` of the page before) and `limit`.
#[derive(Debug, PartialEq, Eq)]
pub struct PageQuery<C> {
    pub after: Option<C>,
    pub limit: i64,
}

impl<C> PageQuery<C> {
    /// Rows to ask for: one more than the page holds, which says whether another follows.
    pub fn fetch(&self) -> i64 {
        self.limit + 1
    }

    /// `rows` (at most [`PageQuery::fetch`]) cut to the page, and whether another follows.
    pub fn cut<T>(&self, mut rows: Vec<T>) -> (Vec<T>, bool) {
        let limit = usize::try_from(self.limit).unwrap_or(usize::MAX);
        let more = rows.len() > limit;
        rows.truncate(limit);
        (rows, more)
    }
}

/// `?cursor&limit` of a paged list: `cursor` read by `cursor`, `limit` 1 to `max` (`default`
/// when absent), nothing else; every problem listed at once.
pub fn page_query<C>(
    query: Option<&str>,
    cursor: impl Fn(&str) -> Option<C>,
    default: i64,
    max: i64,
) -> Result<PageQuery<C>, ApiError> {
    let mut errors = Vec::new();
    let mut page = PageQuery {
        after: None,
        limit: default,
    };
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match name.as_ref() {
            "cursor" => match cursor(&value) {
                Some(after) => page.after = Some(after),
                None => errors.push(FieldError::new(
                    "cursor",
                    "format",
                    "must be the nextCursor of a page",
                )),
            },
            "limit" => match value.parse::<i64>() {
                Ok(limit) if (1..=max).contains(&limit) => page.limit = limit,
                _ => errors.push(FieldError::new(
                    "limit",
                    "range",
                    format!("must be a whole number from 1 to {max}"),
                )),
            },
            // A misspelt `limit` would otherwise be a page of the default size, silently.
            other => errors.push(FieldError::new(
                other,
                "unknown",
                "is not a parameter of this list (cursor, limit)",
            )),
        }
    }
    match errors.is_empty() {
        true => Ok(page),
        false => Err(ApiError::Validation(errors)),
    }
}
