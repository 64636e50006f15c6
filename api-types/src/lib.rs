#![doc = include_str!("../README.md")]

pub mod headers;

use chrono::{DateTime, Utc};
use domain::ids::TierId;
use domain::money::{Currency, Money};
use domain::roles::Role;
use domain::values::{Email, IdempotencyKey, Quantity};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A booking request as clients send it (the gateway reads it field by field, so that every bad
/// field is reported at once).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BookingBody {
    pub ticket_tier_id: TierId,
    pub user_email: Email,
    pub quantity: Quantity,
    /// Price x quantity, exactly; as a number or a decimal string.
    pub total_price: Money,
    /// `USD`, the default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<Currency>,
    /// Here or in the `Idempotency-Key` header; if both, they must be equal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<IdempotencyKey>,
}

impl BookingBody {
    /// A booking of `quantity` tickets of `tier` at `price` each, for `email` under `key`.
    pub fn new(
        tier: TierId,
        email: &str,
        quantity: u8,
        price: Money,
        key: &str,
    ) -> Result<Self, &'static str> {
        let quantity = Quantity::new(i64::from(quantity))?;
        Ok(Self {
            ticket_tier_id: tier,
            user_email: Email::parse(email)?,
            total_price: price
                .times(u32::from(quantity.get()))
                .ok_or("the total is too large")?,
            quantity,
            currency: Some(Currency::Usd),
            idempotency_key: Some(IdempotencyKey::parse(key)?),
        })
    }
}

/// A new concert as clients send it (the gateway reads it field by field).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewConcertBody {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 2000)]
    pub description: Option<String>,
    #[schema(min_length = 1, max_length = 200)]
    pub location: String,
    /// In the future.
    #[schema(value_type = String, format = DateTime, min_length = 1, max_length = 64)]
    pub date: DateTime<Utc>,
    /// When bookings open (default: now).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime, min_length = 1, max_length = 64)]
    pub sales_open_at: Option<DateTime<Utc>>,
    /// When they close (default: `date`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime, min_length = 1, max_length = 64)]
    pub sales_close_at: Option<DateTime<Utc>>,
    #[schema(min_items = 1, max_items = 20)]
    pub ticket_tiers: Vec<NewTierBody>,
    /// A waiting room: a booking then needs an admission from it (default: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_room: Option<WaitingRoomBody>,
}

impl NewConcertBody {
    /// A concert at `location` on `date` with tiers of `(name, price, total)`, on sale from now.
    pub fn new(
        name: &str,
        location: &str,
        date: DateTime<Utc>,
        tiers: &[(&str, Money, u32)],
    ) -> Self {
        Self {
            name: name.to_owned(),
            description: None,
            location: location.to_owned(),
            date,
            sales_open_at: None,
            sales_close_at: None,
            waiting_room: None,
            ticket_tiers: tiers
                .iter()
                .map(|(name, price, total_quantity)| NewTierBody {
                    name: (*name).to_owned(),
                    price: *price,
                    total_quantity: *total_quantity,
                })
                .collect(),
        }
    }
}

/// Joining a waiting room, as clients send it: one place per email.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueJoinBody {
    /// Who joins: the admission books for this email alone.
    pub user_email: Email,
}

/// A new API key, as an admin asks for it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyBody {
    /// What it is for: `gate 3`, `box office`, ...
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    pub role: Role,
}

/// Asking for a sign-in link.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignInLinkBody {
    /// Where the link is mailed.
    pub email: Email,
}

/// Spending a sign-in link's token for a session.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionBody {
    /// The `token` of the link's address.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub token: String,
}

/// Spending a refresh token for the next pair.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefreshBody {
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub refresh_token: String,
}

/// A tier of a new concert.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewTierBody {
    /// Unique within the concert.
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// At most 1,000,000.
    pub price: Money,
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub total_quantity: u32,
}

/// A concert's waiting room: people are let in at this rate, in a fair order.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WaitingRoomBody {
    #[schema(minimum = 1, maximum = 100_000)]
    pub admit_per_second: u32,
}

/// Changes to a concert's sales, as clients send them: each field present is set.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConcertUpdateBody {
    /// When bookings (and the waiting room's admissions) open.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime, min_length = 1, max_length = 64)]
    pub sales_open_at: Option<DateTime<Utc>>,
    /// A waiting room, or `null` to sell without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_room: Option<Option<WaitingRoomBody>>,
}
