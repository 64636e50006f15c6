//! A concert's waiting room: `POST /api/concerts/{id}/queue` joins it, `GET /api/queue/{id}` tells
//! a ticket's position and, once admitted, its admission token (`/events` streams the same).

use http::header::LOCATION;
use http::{HeaderValue, Response, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use api_types::QueueJoinBody;

use crate::api::problems::{
    BodyLate, BodyTooLarge, Invalid, NotFound, NotJson, RateLimited, Recovering,
};
use crate::catalog::CatalogHandle;
use crate::http::body::{Body, json};
use crate::http::error::{ApiError, Problem};
use crate::http::validate::{Checker, parse_form, path_id};
use crate::waiting_room::WaitingRooms;
use crate::waiting_room::{QueueError, TicketEnvelope};

/// Joins the concert's waiting room for `userEmail`. Before sales open, everyone who joins is
/// drawn into a random order at opening; after, places go in order of arrival. One place per
/// email: a second join answers the first place, and its admission books for that email alone.
#[utoipa::path(post, path = "/api/concerts/{id}/queue", operation_id = "joinQueue", tag = "waiting room",
    params(("id" = Uuid, Path, description = "The concert")),
    request_body = QueueJoinBody,
    responses(
        (status = 201, description = "Joined", body = TicketEnvelope,
            headers(("Location" = String, description = "The ticket: `/api/queue/{id}`")),
            links(
                ("GetQueueTicket" = (operation_id = "getQueueTicket", parameters(("id" = "$response.body#/queueTicket/id"), ("token" = "$response.body#/queueTicket/ticketToken")))),
                ("QueueEvents" = (operation_id = "queueEvents", parameters(("id" = "$response.body#/queueTicket/id"), ("token" = "$response.body#/queueTicket/ticketToken")))),
            )),
        (status = 200, description = "The email joined before: its ticket", body = TicketEnvelope),
        (status = 400, response = Invalid),
        (status = 404, response = NotFound),
        (status = 408, response = BodyLate),
        (status = 409, description = "`NoWaitingRoom`: the concert sells without one; `SalesClosed`", body = Problem, content_type = "application/problem+json"),
        (status = 413, response = BodyTooLarge),
        (status = 415, response = NotJson),
        (status = 429, response = RateLimited),
        (status = 503, response = Recovering),
    )
)]
pub async fn join(
    catalog: &CatalogHandle,
    rooms: &WaitingRooms,
    concert_id: &str,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let concert_id = path_id(concert_id)?;
    let form: JoinForm = parse_form(body)?;
    let mut check = Checker::default();
    let email = check.email(&form.user_email, "userEmail");
    let email = check.finish(email)?;
    let catalog = catalog.current();
    let concert = catalog
        .concert(concert_id)
        .ok_or(ApiError::ConcertNotFound(concert_id))?;
    let (ticket, new) = rooms.join(concert, &email).await?;
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let location = HeaderValue::from_str(&format!("/api/queue/{}", ticket.id));
    let mut response = json(
        status,
        &TicketEnvelope {
            queue_ticket: ticket,
        },
    )?;
    if let Ok(location) = location {
        response.headers_mut().insert(LOCATION, location);
    }
    Ok(response)
}

/// A join as sent, read field by field like a booking.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JoinForm {
    user_email: Option<Value>,
}

/// A waiting-room ticket: its position (0 once admitted), and when admitted the token to book
/// with (`Admission-Token`) and when it expires. Read with the ticket's `ticketToken`: without
/// it, or with another, the ticket is not found.
#[utoipa::path(get, path = "/api/queue/{id}", operation_id = "getQueueTicket", tag = "waiting room",
    params(
        ("id" = Uuid, Path, description = "The queue ticket"),
        ("token" = String, Query, description = "The ticket's `ticketToken`, from joining"),
    ),
    responses(
        (status = 200, description = "The ticket", body = TicketEnvelope),
        (status = 400, response = Invalid),
        (status = 404, response = NotFound),
        (status = 429, response = RateLimited),
        (status = 503, description = "Redis is down or the gateway is at capacity", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait"))),
    )
)]
pub async fn get(
    rooms: &WaitingRooms,
    id: &str,
    query: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    let id = path_id(id)?;
    rooms.authorize(id, ticket_token(query).as_deref())?;
    let ticket = rooms.ticket_view(id).await?;
    json(
        StatusCode::OK,
        &TicketEnvelope {
            queue_ticket: ticket,
        },
    )
}

/// The `token` of a query string, if any.
pub fn ticket_token(query: Option<&str>) -> Option<String> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(name, _)| name == "token")
        .map(|(_, value)| value.into_owned())
}

impl From<QueueError> for ApiError {
    fn from(error: QueueError) -> Self {
        match error {
            QueueError::NoWaitingRoom(concert) => ApiError::NoWaitingRoom(concert),
            QueueError::SalesClosed { closed_at } => ApiError::SalesClosed { closed_at },
            QueueError::TicketNotFound(ticket) => ApiError::QueueTicketNotFound(ticket),
            QueueError::Recovering(shard) => ApiError::ShardRecovering(shard),
            QueueError::Redis(error) => ApiError::Redis(error),
            error @ QueueError::NotReplicated { .. } => {
                tracing::warn!(%error, "waiting room answer not replicated in time");
                ApiError::OutcomeUnknown
            }
            QueueError::Script(error) => ApiError::Internal(error.to_string()),
        }
    }
}
