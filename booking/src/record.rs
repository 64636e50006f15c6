//! The booking record: written by the reservation script into the booking hash, the idempotency
//! hash and the shard's stream, all with the same field names, and read back from any of them.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};
use uuid::Uuid;

use crate::money::{Currency, Money};

/// Where a booking stands. Only `pending` may change, and only once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "booking_status", rename_all = "lowercase")]
pub enum BookingStatus {
    Pending,
    Confirmed,
    Failed,
}

impl BookingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BookingStatus::Pending => "pending",
            BookingStatus::Confirmed => "confirmed",
            BookingStatus::Failed => "failed",
        }
    }

    pub fn is_final(self) -> bool {
        self != BookingStatus::Pending
    }
}

impl FromStr for BookingStatus {
    type Err = RecordError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "pending" => Ok(BookingStatus::Pending),
            "confirmed" => Ok(BookingStatus::Confirmed),
            "failed" => Ok(BookingStatus::Failed),
            _ => Err(RecordError::Invalid("status")),
        }
    }
}

impl fmt::Display for BookingStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A record in Redis that does not read back as a booking: a bug or a foreign writer, never input.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("booking record has no field {0}")]
    Missing(&'static str),
    #[error("booking record has an invalid {0}")]
    Invalid(&'static str),
}

/// One booking as the API shows it and as Redis stores it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BookingRecord {
    pub id: Uuid,
    pub ticket_tier_id: Uuid,
    pub concert_id: Uuid,
    pub user_email: String,
    pub quantity: u8,
    pub total_price: Money,
    pub currency: Currency,
    pub status: BookingStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    #[serde(serialize_with = "rfc3339_millis")]
    pub created_at: DateTime<Utc>,
    #[serde(skip)]
    pub idempotency_key: String,
}

/// Field names shared by the Lua scripts, the settler and the gateway.
pub mod field {
    pub const ID: &str = "id";
    pub const TICKET_TIER_ID: &str = "ticketTierId";
    pub const CONCERT_ID: &str = "concertId";
    pub const USER_EMAIL: &str = "userEmail";
    pub const QUANTITY: &str = "quantity";
    pub const TOTAL_PRICE: &str = "totalPrice";
    pub const CURRENCY: &str = "currency";
    pub const STATUS: &str = "status";
    pub const FAILURE_REASON: &str = "failureReason";
    pub const CREATED_AT: &str = "createdAt";
    pub const IDEMPOTENCY_KEY: &str = "idempotencyKey";
}

fn rfc3339_millis<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_timestamp(at))
}

/// Timestamps as the API and Redis write them: RFC 3339, UTC, milliseconds.
pub fn format_timestamp(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl BookingRecord {
    /// The record as field/value pairs, in the order the scripts receive them.
    pub fn to_fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = vec![
            (field::ID, self.id.to_string()),
            (field::TICKET_TIER_ID, self.ticket_tier_id.to_string()),
            (field::CONCERT_ID, self.concert_id.to_string()),
            (field::USER_EMAIL, self.user_email.clone()),
            (field::QUANTITY, self.quantity.to_string()),
            (field::TOTAL_PRICE, self.total_price.to_string()),
            (field::CURRENCY, self.currency.code().to_owned()),
            (field::STATUS, self.status.as_str().to_owned()),
            (field::CREATED_AT, format_timestamp(&self.created_at)),
            (field::IDEMPOTENCY_KEY, self.idempotency_key.clone()),
        ];
        if let Some(reason) = &self.failure_reason {
            fields.push((field::FAILURE_REASON, reason.clone()));
        }
        fields
    }

    /// Reads a record back from a hash or stream entry; unknown fields are ignored.
    pub fn from_fields(fields: &HashMap<String, String>) -> Result<Self, RecordError> {
        fn get<'a>(
            fields: &'a HashMap<String, String>,
            name: &'static str,
        ) -> Result<&'a str, RecordError> {
            fields
                .get(name)
                .map(String::as_str)
                .ok_or(RecordError::Missing(name))
        }
        fn parse<T: FromStr>(
            fields: &HashMap<String, String>,
            name: &'static str,
        ) -> Result<T, RecordError> {
            get(fields, name)?
                .parse()
                .map_err(|_| RecordError::Invalid(name))
        }
        let created_at = DateTime::parse_from_rfc3339(get(fields, field::CREATED_AT)?)
            .map_err(|_| RecordError::Invalid(field::CREATED_AT))?
            .with_timezone(&Utc);
        Ok(Self {
            id: parse(fields, field::ID)?,
            ticket_tier_id: parse(fields, field::TICKET_TIER_ID)?,
            concert_id: parse(fields, field::CONCERT_ID)?,
            user_email: get(fields, field::USER_EMAIL)?.to_owned(),
            quantity: parse(fields, field::QUANTITY)?,
            total_price: parse(fields, field::TOTAL_PRICE)?,
            currency: parse(fields, field::CURRENCY)?,
            status: get(fields, field::STATUS)?.parse()?,
            failure_reason: fields.get(field::FAILURE_REASON).cloned(),
            created_at,
            idempotency_key: get(fields, field::IDEMPOTENCY_KEY)?.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BookingRecord {
        BookingRecord {
            id: Uuid::now_v7(),
            ticket_tier_id: Uuid::new_v4(),
            concert_id: Uuid::new_v4(),
            user_email: "fan@example.com".into(),
            quantity: 2,
            total_price: "20".parse().expect("valid money"),
            currency: Currency::Usd,
            status: BookingStatus::Pending,
            failure_reason: None,
            created_at: DateTime::parse_from_rfc3339("2026-11-22T10:00:00.123Z")
                .expect("valid timestamp")
                .with_timezone(&Utc),
            idempotency_key: "attempt-1".into(),
        }
    }

    #[test]
    fn fields_read_back_to_the_same_record() {
        let record = sample();
        let fields = record
            .to_fields()
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect();
        assert_eq!(BookingRecord::from_fields(&fields), Ok(record));
    }

    #[test]
    fn a_missing_field_is_named() {
        let mut fields: HashMap<String, String> = sample()
            .to_fields()
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect();
        fields.remove(field::QUANTITY);
        assert_eq!(
            BookingRecord::from_fields(&fields),
            Err(RecordError::Missing("quantity"))
        );
    }
}
