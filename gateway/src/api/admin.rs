//! `POST /api/admin/concerts`: creating a concert (its stock is live in Redis before the answer),
//! and `PATCH /api/admin/concerts/{id}`: changing when its sales open and its waiting room.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use fred::prelude::{KeysInterface, PubsubInterface};
use fred::types::SetOptions;
use futures::future::try_join_all;
use http::header::LOCATION;
use http::{HeaderValue, Response, StatusCode};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use api_types::{ConcertUpdateBody, NewConcertBody};
use domain::ids::{ConcertId, TierId};
use domain::money::Money;
use pg_store::audit::Actor;
use redis_store::stock;

use crate::api::concerts::ConcertView;
use crate::api::problems::{AdminWriteProblems, NotFound};
use crate::catalog::store;
use crate::catalog::{Concert, Tier};
use crate::http::body::{Body, json};
use crate::http::error::{ApiError, FieldError};
use crate::http::validate::{Checker, parse_form, path, path_id};
use crate::operators::Operator;
use crate::state::Admin;

const MAX_TIERS: usize = 20;
const MAX_TIER_QUANTITY: i64 = 1_000_000;
const MAX_ADMIT_PER_SECOND: i64 = 100_000;
/// Ten tickets at the highest price still fit a booking total.
const MAX_TIER_PRICE: &str = "1000000";

/// A new concert that passed validation, before it has ids.
#[derive(Debug)]
pub struct NewConcert {
    pub name: String,
    pub description: String,
    pub location: String,
    pub date: DateTime<Utc>,
    /// When bookings open; `None` opens them at once.
    pub sales_open_at: Option<DateTime<Utc>>,
    /// When they close; `None` closes them at the concert's date.
    pub sales_close_at: Option<DateTime<Utc>>,
    /// Admissions per second of its waiting room; `None` for no waiting room.
    pub admit_per_second: Option<u32>,
    pub tiers: Vec<NewTier>,
}

#[derive(Debug)]
pub struct NewTier {
    pub name: String,
    pub price: Money,
    pub total_quantity: u32,
}

/// A new concert's body as sent, each field any JSON value, so every bad one is reported at once.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConcertForm {
    name: Option<Value>,
    description: Option<Value>,
    location: Option<Value>,
    date: Option<Value>,
    sales_open_at: Option<Value>,
    sales_close_at: Option<Value>,
    ticket_tiers: Option<Value>,
    waiting_room: Option<Value>,
}

impl NewConcert {
    pub fn parse(body: &[u8], now: DateTime<Utc>) -> Result<Self, ApiError> {
        let form: ConcertForm = parse_form(body)?;
        let mut check = Checker::default();
        let name = check
            .required(&form.name, "name")
            .and_then(|v| check.text(v, "name", 1, 200))
            .map(str::to_owned);
        let description = match &form.description {
            None | Some(Value::Null) => Some(String::new()),
            Some(v) => check.text(v, "description", 0, 2000).map(str::to_owned),
        };
        let location = check
            .required(&form.location, "location")
            .and_then(|v| check.text(v, "location", 1, 200))
            .map(str::to_owned);
        let date = check
            .required(&form.date, "date")
            .and_then(|v| check.timestamp(v, "date"))
            .and_then(|date| match date > now {
                true => Some(date),
                false => {
                    check.error("date", "range", "must be in the future");
                    None
                }
            });
        let optional_time = |check: &mut Checker, value: &Option<Value>, field: &str| match value {
            None | Some(Value::Null) => Some(None),
            Some(v) => check.timestamp(v, field).map(Some),
        };
        let sales_open_at = optional_time(&mut check, &form.sales_open_at, "salesOpenAt");
        let sales_close_at = optional_time(&mut check, &form.sales_close_at, "salesCloseAt");
        if let (Some(date), Some(open), Some(close)) = (date, sales_open_at, sales_close_at) {
            let (opens, closes) = (open.unwrap_or(now), close.unwrap_or(date));
            if closes > date {
                check.error(
                    "salesCloseAt",
                    "range",
                    "must not be after the concert's date",
                );
            } else if opens >= closes {
                check.error("salesCloseAt", "range", "must be after salesOpenAt");
            }
        }
        let admit_per_second = match &form.waiting_room {
            None | Some(Value::Null) => Some(None),
            Some(room) => admit_rate(&mut check, room).map(Some),
        };
        let max_price: Money = MAX_TIER_PRICE
            .parse()
            .map_err(|_| ApiError::Internal("MAX_TIER_PRICE is not money".to_owned()))?;
        let mut names = HashSet::new();
        let tiers = check
            .required(&form.ticket_tiers, "ticketTiers")
            .and_then(|v| check.array(v, "ticketTiers", 1, MAX_TIERS))
            .and_then(|items| {
                items
                    .iter()
                    .enumerate()
                    .map(|(index, item)| {
                        let field = format!("ticketTiers[{index}]");
                        let tier = check.object(item, &field)?;
                        let name = check
                            .member(tier, &field, "name")
                            .and_then(|v| check.text(v, &path(&field, "name"), 1, 100))
                            .and_then(|name| match names.insert(name.to_lowercase()) {
                                true => Some(name.to_owned()),
                                false => {
                                    check.error(
                                        path(&field, "name"),
                                        "conflict",
                                        "is used by another tier",
                                    );
                                    None
                                }
                            });
                        let price = check
                            .member(tier, &field, "price")
                            .and_then(|v| check.money(v, &path(&field, "price")))
                            .and_then(|price| match price <= max_price {
                                true => Some(price),
                                false => {
                                    check.error(
                                        path(&field, "price"),
                                        "range",
                                        format!("must be at most {MAX_TIER_PRICE}"),
                                    );
                                    None
                                }
                            });
                        let total_quantity = check
                            .member(tier, &field, "totalQuantity")
                            .and_then(|v| {
                                check.integer(
                                    v,
                                    &path(&field, "totalQuantity"),
                                    1,
                                    MAX_TIER_QUANTITY,
                                )
                            })
                            .and_then(|n| u32::try_from(n).ok());
                        Some(NewTier {
                            name: name?,
                            price: price?,
                            total_quantity: total_quantity?,
                        })
                    })
                    // Every tier is checked before any missing one fails the list.
                    .collect::<Vec<Option<NewTier>>>()
                    .into_iter()
                    .collect::<Option<Vec<_>>>()
            });
        let concert = (|| {
            Some(NewConcert {
                name: name?,
                description: description?,
                location: location?,
                date: date?,
                sales_open_at: sales_open_at?,
                sales_close_at: sales_close_at?,
                admit_per_second: admit_per_second?,
                tiers: tiers?,
            })
        })();
        check.finish(concert)
    }
}

/// Stores `new` in Postgres and its stock in Redis, then adds it to this gateway's catalog.
pub async fn create_concert(
    admin: &Admin,
    by: &Actor,
    new: NewConcert,
) -> Result<Concert, ApiError> {
    let id = ConcertId::from(Uuid::now_v7());
    let concert = Concert {
        id,
        shard: admin.keys.shard_for_new_concert(id),
        tiers: new
            .tiers
            .into_iter()
            .map(|tier| Tier {
                id: TierId::from(Uuid::now_v7()),
                concert_id: id,
                name: tier.name,
                price: tier.price,
                total_quantity: tier.total_quantity,
            })
            .collect(),
        name: new.name,
        description: new.description,
        location: new.location,
        date: new.date,
        sales_open_at: new.sales_open_at.unwrap_or_else(Utc::now),
        sales_close_at: new.sales_close_at.unwrap_or(new.date),
        admit_per_second: new.admit_per_second,
    };
    let mut tx = admin.db.begin().await?;
    store::insert_concert(&mut tx, &concert, by).await?;
    tx.commit().await?;
    // Stock goes live only once the rows exist, so no booking can name a tier Postgres lacks.
    let stock_writes = concert.tiers.iter().map(|tier| {
        let key = admin.keys.stock(concert.shard, tier.id);
        admin
            .redis
            .set::<(), _, _>(key, tier.total_quantity, None, Some(SetOptions::NX), false)
    });
    try_join_all(stock_writes).await?;
    admin.catalog.add(concert.clone());
    for tier in &concert.tiers {
        stock::publish(
            &admin.redis,
            &admin.keys,
            concert.id,
            tier.id,
            i64::from(tier.total_quantity),
        )
        .await?;
    }
    // Every other gateway reloads its catalog now rather than at its next periodic refresh, so
    // the new tiers are bookable through all of them within milliseconds.
    admin
        .redis
        .next()
        .publish::<(), _, _>(admin.keys.catalog_channel(), concert.id.to_string())
        .await?;
    tracing::info!(concert_id = %concert.id, tiers = concert.tiers.len(), "concert created");
    Ok(concert)
}

/// Creates a concert; its stock is live in Redis before the answer.
#[utoipa::path(post, path = "/api/admin/concerts", operation_id = "createConcert", tag = "admin",
    security(("operator" = [])),
    request_body = NewConcertBody,
    responses(
        (status = 201, description = "Created", body = ConcertView,
            headers(("Location" = String, description = "The concert: `/api/concerts/{id}`")),
            links(
                ("GetConcert" = (operation_id = "getConcert", parameters(("id" = "$response.body#/id")))),
                ("BookItsFirstTier" = (operation_id = "createBooking", request_body = json!({
                    "ticketTierId": "$response.body#/ticketTiers/0/id",
                    "userEmail": "fan@example.com",
                    "quantity": 1,
                    "totalPrice": "$response.body#/ticketTiers/0/price",
                    "idempotencyKey": "$response.body#/id"
                }))),
            )
        ),
        AdminWriteProblems,
    )
)]
pub async fn create(admin: &Admin, by: &Operator, body: &[u8]) -> Result<Response<Body>, ApiError> {
    let new = NewConcert::parse(body, Utc::now())?;
    let concert = create_concert(admin, &by.actor, new).await?;
    let available: HashMap<TierId, Option<i64>> = concert
        .tiers
        .iter()
        .map(|tier| (tier.id, Some(i64::from(tier.total_quantity))))
        .collect();
    let mut response = json(StatusCode::CREATED, &ConcertView::new(&concert, &available))?;
    if let Ok(location) = HeaderValue::from_str(&format!("/api/concerts/{}", concert.id)) {
        response.headers_mut().insert(LOCATION, location);
    }
    Ok(response)
}

/// A validated update: `None` leaves a field as it is.
#[derive(Debug, PartialEq)]
pub struct ConcertUpdate {
    pub sales_open_at: Option<DateTime<Utc>>,
    /// `Some(None)` removes the waiting room.
    pub admit_per_second: Option<Option<u32>>,
}

impl ConcertUpdate {
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let form: UpdateForm = parse_form(body)?;
        let mut check = Checker::default();
        let sales_open_at = match &form.sales_open_at {
            None => Some(None),
            Some(v) => check.timestamp(v, "salesOpenAt").map(Some),
        };
        let admit_per_second = match &form.waiting_room {
            None => Some(None),
            Some(Value::Null) => Some(Some(None)),
            Some(room) => admit_rate(&mut check, room).map(|rate| Some(Some(rate))),
        };
        let update = (|| {
            Some(ConcertUpdate {
                sales_open_at: sales_open_at?,
                admit_per_second: admit_per_second?,
            })
        })();
        check.finish(update)
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateForm {
    sales_open_at: Option<Value>,
    /// `Some(Value::Null)` when sent as `null` (remove the room), `None` when not sent.
    #[serde(default, deserialize_with = "sent")]
    waiting_room: Option<Value>,
}

/// A field as sent, `null` included (serde reads a `null` option as absent).
fn sent<'de, D: serde::Deserializer<'de>>(field: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(field).map(Some)
}

/// `waitingRoom: {admitPerSecond}` of a request, checked.
fn admit_rate(check: &mut Checker, room: &Value) -> Option<u32> {
    check
        .object(room, "waitingRoom")
        .and_then(|room| check.member(room, "waitingRoom", "admitPerSecond"))
        .and_then(|v| check.integer(v, "waitingRoom.admitPerSecond", 1, MAX_ADMIT_PER_SECOND))
        .and_then(|rate| u32::try_from(rate).ok())
}

/// Changes a concert's sales opening or its waiting room; every gateway's catalog follows within
/// milliseconds.
#[utoipa::path(patch, path = "/api/admin/concerts/{id}", operation_id = "updateConcert", tag = "admin",
    security(("operator" = [])),
    params(("id" = Uuid, Path, description = "The concert")),
    request_body = ConcertUpdateBody,
    responses(
        (status = 200, description = "The concert as it is now", body = ConcertView),
        AdminWriteProblems,
        (status = 404, response = NotFound),
    )
)]
pub async fn update(
    admin: &Admin,
    by: &Operator,
    id: &str,
    body: Vec<u8>,
) -> Result<Response<Body>, ApiError> {
    let id = path_id(id)?;
    let update = ConcertUpdate::parse(&body)?;
    let found = store::change_sales(
        &admin.db,
        &by.actor,
        id,
        update.sales_open_at,
        update.admit_per_second,
    )
    .await
    .map_err(|error| match &error {
        sqlx::Error::Database(db) if db.constraint() == Some("concerts_sales_window_check") => {
            ApiError::Validation(vec![FieldError::new(
                "salesOpenAt",
                "range",
                "must be before salesCloseAt",
            )])
        }
        _ => ApiError::Postgres(error),
    })?;
    if !found {
        return Err(ApiError::ConcertNotFound(id));
    }
    admin.catalog.reload(&admin.db).await?;
    admin
        .redis
        .next()
        .publish::<(), _, _>(admin.keys.catalog_channel(), id.to_string())
        .await?;
    tracing::info!(concert_id = %id, ?update, "concert updated");
    let catalog = admin.catalog.current();
    let concert = catalog.concert(id).ok_or(ApiError::ConcertNotFound(id))?;
    let stock = admin.stock.available(concert.tier_keys()).await?;
    json(StatusCode::OK, &ConcertView::new(concert, &stock))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_clients_send_is_the_one_the_gateway_reads() {
        let date: DateTime<Utc> = "2099-01-01T20:00:00Z".parse().expect("date");
        let body = NewConcertBody::new(
            "Night",
            "Hall",
            date,
            &[("VIP", "100".parse().expect("money"), 10)],
        );
        let sent = serde_json::to_vec(&body).expect("json");
        let read = NewConcert::parse(&sent, Utc::now()).expect("read back");
        assert_eq!(
            (read.name.as_str(), read.location.as_str()),
            ("Night", "Hall")
        );
        assert_eq!(read.date, date);
        assert_eq!(read.tiers.len(), 1);
        assert_eq!(read.tiers[0].total_quantity, 10);
        assert_eq!(read.tiers[0].price.to_string(), "100.00");
    }
}
