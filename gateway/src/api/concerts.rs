//! `GET /api/concerts` and `GET /api/concerts/{id}`: the in-memory catalog with live stock.

use std::collections::HashMap;

use http::{Response, StatusCode};
use serde::Serialize;
use utoipa::ToSchema;

use api_types::WaitingRoomBody;
use domain::ids::{ConcertId, TierId};
use domain::money::Money;
use domain::record::format_timestamp;

use crate::api::problems::{RateLimited, ReadProblems, Recovering};
use crate::catalog::{CatalogHandle, Concert};
use crate::http::body::{Body, json};
use crate::http::error::ApiError;
use crate::http::validate::path_id;
use crate::state::LiveStock;

/// A concert with its tiers and their live stock.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Concert)]
pub struct ConcertView<'a> {
    id: ConcertId,
    name: &'a str,
    description: &'a str,
    location: &'a str,
    #[schema(format = DateTime)]
    date: String,
    /// Bookings are taken from this moment...
    #[schema(format = DateTime)]
    sales_open_at: String,
    /// ...until this one.
    #[schema(format = DateTime)]
    sales_close_at: String,
    /// Present when a booking needs an admission from the concert's waiting room.
    #[serde(skip_serializing_if = "Option::is_none")]
    waiting_room: Option<WaitingRoomBody>,
    ticket_tiers: Vec<TierView<'a>>,
}

/// A ticket tier and its live stock.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = TicketTier)]
pub struct TierView<'a> {
    id: TierId,
    concert_id: ConcertId,
    name: &'a str,
    price: Money,
    total_quantity: u32,
    /// Tickets still for sale, as Redis holds them now.
    available_quantity: i64,
}

impl<'a> ConcertView<'a> {
    /// `available` maps tier ids to their stock; a tier it lacks shows 0.
    pub fn new(concert: &'a Concert, available: &HashMap<TierId, Option<i64>>) -> Self {
        Self {
            id: concert.id,
            name: &concert.name,
            description: &concert.description,
            location: &concert.location,
            date: format_timestamp(&concert.date),
            sales_open_at: format_timestamp(&concert.sales_open_at),
            sales_close_at: format_timestamp(&concert.sales_close_at),
            waiting_room: concert
                .admit_per_second
                .map(|admit_per_second| WaitingRoomBody { admit_per_second }),
            ticket_tiers: concert
                .tiers
                .iter()
                .map(|tier| TierView {
                    id: tier.id,
                    concert_id: tier.concert_id,
                    name: &tier.name,
                    price: tier.price,
                    total_quantity: tier.total_quantity,
                    available_quantity: available.get(&tier.id).copied().flatten().unwrap_or(0),
                })
                .collect(),
        }
    }
}

/// The catalog.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConcertList<'a> {
    concerts: Vec<ConcertView<'a>>,
}

/// Every concert with its tiers and their live stock.
#[utoipa::path(get, path = "/api/concerts", operation_id = "listConcerts", tag = "concerts",
    responses(
        (status = 200, description = "The catalog", body = ConcertList),
        (status = 429, response = RateLimited),
        (status = 503, response = Recovering),
    )
)]
pub async fn list(catalog: &CatalogHandle, stock: &LiveStock) -> Result<Response<Body>, ApiError> {
    let catalog = catalog.current();
    let stock = stock.available(catalog.tiers()).await?;
    let concerts = catalog
        .concerts()
        .iter()
        .map(|concert| ConcertView::new(concert, &stock))
        .collect();
    json(StatusCode::OK, &ConcertList { concerts })
}

/// One concert with its tiers and their live stock.
#[utoipa::path(get, path = "/api/concerts/{id}", operation_id = "getConcert", tag = "concerts",
    params(("id" = Uuid, Path, description = "The concert")),
    responses((status = 200, description = "The concert", body = ConcertView), ReadProblems))]
pub async fn get(
    catalog: &CatalogHandle,
    stock: &LiveStock,
    id: &str,
) -> Result<Response<Body>, ApiError> {
    let id = path_id(id)?;
    let catalog = catalog.current();
    let concert = catalog.concert(id).ok_or(ApiError::ConcertNotFound(id))?;
    let stock = stock.available(concert.tier_keys()).await?;
    json(StatusCode::OK, &ConcertView::new(concert, &stock))
}
