//! The booking as it travels: packed once by the gateway into the JSON that the booking hash
//! and the shard's stream both carry, read back by the settler and the gateway, and shown by the
//! API with its status.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::ids::{BookingId, ConcertId, QueueTicketId, TierId};
use crate::money::{Currency, Money};
use crate::values::{Email, IdempotencyKey, Quantity};

/// Where a booking stands. Only `pending` may change, and only once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[cfg_attr(feature = "postgres", derive(sqlx::Type))]
#[cfg_attr(
    feature = "postgres",
    sqlx(type_name = "booking_status", rename_all = "lowercase")
)]
#[serde(rename_all = "lowercase")]
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

/// Data in Redis that does not read back as a booking: a bug, a foreign writer or an entry of an
/// older layout, never client input (the gateway validated that before packing it).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("booking record has no field {0}")]
    Missing(&'static str),
    #[error("booking record has an invalid {0}")]
    Invalid(&'static str),
    #[error("packed booking is unreadable: {0}")]
    Unreadable(String),
}

/// What a booking is, fixed when the gateway accepts it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Booking {
    pub id: BookingId,
    pub ticket_tier_id: TierId,
    pub concert_id: ConcertId,
    pub user_email: Email,
    pub quantity: Quantity,
    pub total_price: Money,
    pub currency: Currency,
    #[serde(serialize_with = "rfc3339_millis", deserialize_with = "from_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    pub idempotency_key: IdempotencyKey,
}

impl Booking {
    /// What the booking's idempotency key holds in Redis: `<bookingId> <fingerprint>`, the id
    /// first at a fixed width so that a replay reads it without parsing.
    pub fn idempotency_record(&self) -> String {
        idempotency_record(self.id, &self.fingerprint())
    }

    /// What makes two requests under one idempotency key "the same request". Recovery rebuilds
    /// it from a booking's row, so it is made of columns Postgres keeps.
    pub fn fingerprint(&self) -> String {
        fingerprint(
            self.ticket_tier_id,
            &self.user_email,
            self.quantity,
            self.total_price,
            self.currency,
        )
    }
}

/// Characters of the booking id at the head of an idempotency record (a hyphenated UUID); the
/// scripts read the id and the fingerprint by it.
pub const IDEMPOTENCY_RECORD_ID_CHARS: usize = 36;

/// See [`Booking::idempotency_record`].
pub fn idempotency_record(id: BookingId, fingerprint: &str) -> String {
    format!("{id} {fingerprint}")
}

/// See [`Booking::fingerprint`].
pub fn fingerprint(
    tier_id: TierId,
    email: &Email,
    quantity: Quantity,
    total: Money,
    currency: Currency,
) -> String {
    format!("{tier_id}|{email}|{quantity}|{total}|{currency}")
}

/// A booking as the gateway packs it into Redis: with the rules it was accepted under, so
/// whoever has to accept it again (the settler, after Redis lost it) applies the same ones.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Packed {
    pub booking: Booking,
    /// Unix seconds until which the customer's held count for the concert is kept.
    pub held_until: i64,
    /// Tickets one customer may hold per concert (0: no limit).
    pub customer_limit: u32,
    /// The waiting-room admission the booking spent, kept with it (and in Postgres) so that a
    /// shard rebuilt after Redis lost its data still knows it spent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admission: Option<QueueTicketId>,
}

impl Packed {
    /// The JSON both Redis copies hold.
    pub fn to_json(&self) -> String {
        // Strings, numbers and ids only: serializing cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_json(text: &str) -> Result<Self, RecordError> {
        serde_json::from_str(text).map_err(|error| RecordError::Unreadable(error.to_string()))
    }
}

/// The fields that name a booking's keys and counts, read loosely from a packed booking that does
/// not read back whole (one that breaks a rule Postgres enforces): enough to resolve it as
/// failed and give its tickets back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stub {
    pub id: BookingId,
    pub ticket_tier_id: TierId,
    pub concert_id: ConcertId,
    pub user_email: String,
    pub quantity: u8,
}

impl Stub {
    pub fn from_json(text: &str) -> Option<Self> {
        let packed: serde_json::Value = serde_json::from_str(text).ok()?;
        let value = packed.get("booking")?;
        let uuid = |name: &str| value.get(name)?.as_str()?.parse::<Uuid>().ok();
        Some(Self {
            id: uuid("id")?.into(),
            ticket_tier_id: uuid("ticketTierId")?.into(),
            concert_id: uuid("concertId")?.into(),
            user_email: value.get("userEmail")?.as_str()?.to_owned(),
            quantity: u8::try_from(value.get("quantity")?.as_u64()?).ok()?,
        })
    }
}

impl From<&Booking> for Stub {
    fn from(booking: &Booking) -> Self {
        Self {
            id: booking.id,
            ticket_tier_id: booking.ticket_tier_id,
            concert_id: booking.concert_id,
            user_email: booking.user_email.to_string(),
            quantity: booking.quantity.get(),
        }
    }
}

/// One booking as the API shows it: what it is, and where it stands.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BookingRecord {
    #[serde(flatten)]
    pub booking: Booking,
    pub status: BookingStatus,
    /// Why it failed; present exactly when `status` is `failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
}

impl BookingRecord {
    pub fn pending(booking: Booking) -> Self {
        Self {
            booking,
            status: BookingStatus::Pending,
            failure_reason: None,
        }
    }

    /// From the booking hash's fields `b` (packed), `s` (status) and `r` (failure reason).
    pub fn from_hash(
        packed: Option<&str>,
        status: Option<&str>,
        reason: Option<String>,
    ) -> Result<Self, RecordError> {
        let packed = Packed::from_json(packed.ok_or(RecordError::Missing("b"))?)?;
        Ok(Self {
            booking: packed.booking,
            status: status.ok_or(RecordError::Missing("s"))?.parse()?,
            failure_reason: reason,
        })
    }
}

/// Field names of the booking hash and the stream entries.
pub mod field {
    /// The packed booking.
    pub const PACKED: &str = "b";
    /// The booking's status (hash only).
    pub const STATUS: &str = "s";
    /// Why it failed (hash only).
    pub const REASON: &str = "r";
    /// The shard epoch the booking was accepted in (stream only).
    pub const EPOCH: &str = "e";
}

fn rfc3339_millis<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_timestamp(at))
}

fn from_rfc3339<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    let text = String::deserialize(deserializer)?;
    DateTime::parse_from_rfc3339(&text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(serde::de::Error::custom)
}

/// Whether RFC 3339 can write `at` (a four-digit year, in UTC).
pub fn is_writable(at: &DateTime<Utc>) -> bool {
    use chrono::Datelike;
    (0..=9999).contains(&at.year())
}

/// Timestamps as the API and Redis write them: RFC 3339, UTC, milliseconds.
pub fn format_timestamp(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> Packed {
        Packed {
            booking: Booking {
                id: BookingId::new(crate::ids::Shard::new(0)),
                ticket_tier_id: Uuid::new_v4().into(),
                concert_id: Uuid::new_v4().into(),
                user_email: Email::parse("fan@example.com").expect("email"),
                quantity: Quantity::new(2).expect("quantity"),
                total_price: "20".parse().expect("valid money"),
                currency: Currency::Usd,
                created_at: DateTime::parse_from_rfc3339("2026-11-22T10:00:00.123Z")
                    .expect("valid timestamp")
                    .with_timezone(&Utc),
                idempotency_key: IdempotencyKey::parse("attempt-1").expect("key"),
            },
            held_until: 1_900_000_000,
            customer_limit: 10,
            admission: Some(Uuid::now_v7().into()),
        }
    }

    #[test]
    fn a_packed_booking_reads_back_the_same() {
        let packed = sample();
        assert_eq!(Packed::from_json(&packed.to_json()), Ok(packed));
    }

    #[test]
    fn a_packed_booking_written_before_admissions_were_kept_reads_back_without_one() {
        let mut json: serde_json::Value = serde_json::from_str(&sample().to_json()).expect("json");
        json.as_object_mut().expect("object").remove("admission");
        let packed = Packed::from_json(&json.to_string()).expect("reads back");
        assert_eq!(packed.admission, None);
        let without = Packed {
            admission: None,
            ..sample()
        };
        assert!(
            !without.to_json().contains("admission"),
            "nothing written for none"
        );
    }

    #[test]
    fn a_packed_booking_that_breaks_a_rule_does_not_read_back() {
        let mut json: serde_json::Value = serde_json::from_str(&sample().to_json()).expect("json");
        json["booking"]["userEmail"] = format!("{}@example.com", "a".repeat(250)).into();
        assert!(matches!(
            Packed::from_json(&json.to_string()),
            Err(RecordError::Unreadable(_))
        ));
        json["booking"]["userEmail"] = "fan@example.com".into();
        json["booking"]["quantity"] = 11.into();
        assert!(Packed::from_json(&json.to_string()).is_err());
    }

    #[test]
    fn a_booking_that_breaks_a_rule_still_names_its_keys() {
        let packed = sample();
        let mut json: serde_json::Value = serde_json::from_str(&packed.to_json()).expect("json");
        json["booking"]["userEmail"] = "İ".repeat(300).into();
        let stub = Stub::from_json(&json.to_string()).expect("loosely readable");
        assert_eq!(stub.id, packed.booking.id);
        assert_eq!(stub.quantity, 2);
        assert_eq!(stub.user_email, "İ".repeat(300));
        assert_eq!(Stub::from_json("{}"), None);
    }

    #[test]
    fn the_api_shows_the_booking_with_its_status() {
        let record = BookingRecord::pending(sample().booking);
        let shown = serde_json::to_value(&record).expect("json");
        assert_eq!(shown["status"], "pending");
        assert_eq!(shown["quantity"], 2);
        assert_eq!(shown["totalPrice"], 20.0);
        assert_eq!(shown["createdAt"], "2026-11-22T10:00:00.123Z");
        assert!(shown.get("heldUntil").is_none());
        assert!(shown.get("failureReason").is_none());
    }
}
