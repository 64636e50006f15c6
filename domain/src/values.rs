//! Validated values of a booking, each checked in the form it is stored in, so whatever the
//! gateway accepts Postgres accepts too (`migrations/` holds the same bounds as constraints).

use std::fmt;

use email_address::EmailAddress;
use serde::{Deserialize, Serialize};

/// Longest email Postgres stores (`bookings.user_email`, counted in characters).
pub const MAX_EMAIL_CHARS: usize = 254;
/// Shortest plausible email (`a@b`).
pub const MIN_EMAIL_CHARS: usize = 3;
/// Longest idempotency key (`bookings.idempotency_key`).
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;
/// Tickets one booking may hold (`bookings.quantity`).
pub const MAX_QUANTITY: u8 = 10;

/// A customer's email: trimmed and its ASCII letters lower-cased, so one customer is one email
/// however it is typed, then checked in that form. Other letters are kept as typed: lower-casing
/// them can change an address's length (`İ` becomes two characters) and validity.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let email = raw.trim().to_ascii_lowercase();
        let length = email.chars().count();
        if !(MIN_EMAIL_CHARS..=MAX_EMAIL_CHARS).contains(&length) {
            return Err("must be 3 to 254 characters long");
        }
        if email.chars().any(char::is_control) || !EmailAddress::is_valid(&email) {
            return Err("must be an email address");
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A client's key for one purchase attempt: visible ASCII, as it becomes part of a Redis key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Why a key is refused (its bounds are [`MAX_IDEMPOTENCY_KEY_CHARS`]'s).
    pub const REFUSED: &'static str = "must be 1 to 255 visible ASCII characters";

    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let valid = (1..=MAX_IDEMPOTENCY_KEY_CHARS).contains(&raw.len())
            && raw.bytes().all(|b| b.is_ascii_graphic());
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(Self::REFUSED)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Tickets in one booking, 1 to [`MAX_QUANTITY`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Quantity(u8);

impl Quantity {
    pub fn new(count: i64) -> Result<Self, &'static str> {
        match u8::try_from(count) {
            Ok(count @ 1..=MAX_QUANTITY) => Ok(Self(count)),
            _ => Err("must be from 1 to 10"),
        }
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

macro_rules! string_conversions {
    ($type:ty) => {
        impl TryFrom<String> for $type {
            type Error = &'static str;
            fn try_from(raw: String) -> Result<Self, Self::Error> {
                Self::parse(&raw)
            }
        }

        impl From<$type> for String {
            fn from(value: $type) -> String {
                value.0
            }
        }

        impl fmt::Display for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_conversions!(Email);
string_conversions!(IdempotencyKey);

impl TryFrom<u8> for Quantity {
    type Error = &'static str;
    fn try_from(count: u8) -> Result<Self, Self::Error> {
        Self::new(i64::from(count))
    }
}

impl From<Quantity> for u8 {
    fn from(quantity: Quantity) -> u8 {
        quantity.0
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Schemas of the newtypes: the form the API takes them in.
mod schemas {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaFormat, SchemaType, Type};
    use utoipa::openapi::{KnownFormat, RefOr, Schema};
    use utoipa::{PartialSchema, ToSchema};

    use super::{Email, IdempotencyKey, MAX_EMAIL_CHARS, MAX_IDEMPOTENCY_KEY_CHARS, Quantity};

    impl PartialSchema for Email {
        fn schema() -> RefOr<Schema> {
            ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::String))
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
                .min_length(Some(3))
                .max_length(Some(MAX_EMAIL_CHARS))
                .description(Some(
                    "Stored trimmed with its ASCII letters lower-cased; one customer per address.",
                ))
                .into()
        }
    }
    impl ToSchema for Email {}

    impl PartialSchema for IdempotencyKey {
        fn schema() -> RefOr<Schema> {
            ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::String))
                .min_length(Some(1))
                .max_length(Some(MAX_IDEMPOTENCY_KEY_CHARS))
                .pattern(Some("^[!-~]+$"))
                .description(Some("One purchase attempt for one concert: visible ASCII."))
                .into()
        }
    }
    impl ToSchema for IdempotencyKey {}

    impl PartialSchema for Quantity {
        fn schema() -> RefOr<Schema> {
            ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::Integer))
                .minimum(Some(1))
                .maximum(Some(super::MAX_QUANTITY))
                .into()
        }
    }
    impl ToSchema for Quantity {}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `a@` and a domain of labels of at most 63 characters, 254 characters in all.
    fn longest_email() -> String {
        let labels = [
            "b".repeat(63),
            "b".repeat(62),
            "b".repeat(62),
            "b".repeat(62),
        ];
        format!("a@{}", labels.join("."))
    }

    #[test]
    fn an_email_is_normalised_then_measured() {
        assert_eq!(
            Email::parse("  Fan@Example.COM ").map(|e| e.to_string()),
            Ok("fan@example.com".to_owned())
        );
        let longest = longest_email();
        assert_eq!(longest.chars().count(), MAX_EMAIL_CHARS);
        assert!(Email::parse(&longest).is_ok(), "254 characters fit");
        let too_long = format!("a{longest}");
        assert_eq!(too_long.chars().count(), 255);
        assert!(Email::parse(&too_long).is_err(), "255 do not");
        // Letters beyond ASCII keep their case, so the stored form is as long as the typed one.
        let dotted = format!("{}@example.com", "İ".repeat(30));
        let stored = Email::parse(&dotted).expect("valid as typed");
        assert_eq!(stored.as_str(), dotted);
        assert!(Email::parse("a\u{7}@b.co").is_err());
        assert!(Email::parse("no-at-sign").is_err());
    }

    #[test]
    fn messages_name_the_bounds_they_enforce() {
        let key = format!("1 to {MAX_IDEMPOTENCY_KEY_CHARS} ");
        assert!(
            IdempotencyKey::REFUSED.contains(&key),
            "{}",
            IdempotencyKey::REFUSED
        );
        let quantity = format!("from 1 to {MAX_QUANTITY}");
        assert_eq!(
            Quantity::new(0).err(),
            Some(format!("must be {quantity}").as_str())
        );
        let email = format!("{MIN_EMAIL_CHARS} to {MAX_EMAIL_CHARS} characters");
        assert!(Email::parse("a").is_err_and(|reason| reason.contains(&email)));
    }

    #[test]
    fn keys_and_quantities_keep_to_their_bounds() {
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
        assert!(IdempotencyKey::parse("has space").is_err());
        assert!(IdempotencyKey::parse("").is_err());
        assert_eq!(Quantity::new(10).map(Quantity::get), Ok(10));
        assert!(Quantity::new(0).is_err());
        assert!(Quantity::new(11).is_err());
        assert!(Quantity::new(-1).is_err());
    }
}
