//! `GET /api/admin/audit-log`: the audit log, newest first, a page at a time.

use chrono::{DateTime, Utc};
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Response};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use pg_store::audit::{self, Entry};

use crate::api::problems::{AdminOff, Invalid, RateLimited, Unauthorized, Unavailable};
use crate::http::body::{Body, full};
use crate::http::error::{ApiError, FieldError};

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 200;

/// Which page: after `cursor` (the `nextCursor` of the page before), `limit` entries.
#[derive(Debug, PartialEq, Eq)]
struct PageQuery {
    before: Option<i64>,
    limit: i64,
}

fn parse_query(query: Option<&str>) -> Result<PageQuery, ApiError> {
    let mut errors = Vec::new();
    let mut parsed = PageQuery {
        before: None,
        limit: DEFAULT_LIMIT,
    };
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match name.as_ref() {
            "cursor" => match value.parse::<i64>() {
                Ok(seq) if seq > 0 => parsed.before = Some(seq),
                _ => errors.push(FieldError::new(
                    "cursor",
                    "format",
                    "must be the nextCursor of a page",
                )),
            },
            "limit" => match value.parse::<i64>() {
                Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => parsed.limit = limit,
                _ => errors.push(FieldError::new(
                    "limit",
                    "range",
                    format!("must be a whole number from 1 to {MAX_LIMIT}"),
                )),
            },
            _ => {}
        }
    }
    match errors.is_empty() {
        true => Ok(parsed),
        false => Err(ApiError::Validation(errors)),
    }
}

/// Who made a change: `admin_token` (the bootstrap credential), `api_key`, `customer` or
/// `system`, and which one.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditActor {
    kind: String,
    id: String,
}

/// One change to money, stock or access.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    id: Uuid,
    at: DateTime<Utc>,
    actor: AuditActor,
    /// `concert.created`, `concert.changed`, ...
    action: String,
    /// What it was done to: `concert:<id>`, ...
    target: String,
    /// What changed, as recorded.
    #[schema(value_type = Object)]
    details: Value,
    /// SHA-256 (hex) of the previous entry's hash and this entry's content.
    hash: String,
}

impl From<Entry> for AuditEntry {
    fn from(entry: Entry) -> Self {
        Self {
            id: entry.id,
            at: entry.at,
            actor: AuditActor {
                kind: entry.actor_kind,
                id: entry.actor_id,
            },
            action: entry.action,
            target: entry.target,
            details: serde_json::from_str(&entry.details).unwrap_or(Value::Null),
            hash: hex::encode(entry.hash),
        }
    }
}

/// A page of the audit log.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditLogPage {
    /// Newest first.
    entries: Vec<AuditEntry>,
    /// The `cursor` of the next (older) page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// Every change operators and the system made to money, stock or access, newest first.
#[utoipa::path(get, path = "/api/admin/audit-log", operation_id = "auditLog", tag = "admin",
    security(("admin" = [])),
    params(
        ("cursor" = Option<String>, Query, pattern = "^[1-9][0-9]{0,17}$", description = "The `nextCursor` of the page before"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Entries per page (default 50)"),
    ),
    responses(
        (status = 200, description = "A page of the audit log", body = AuditLogPage),
        (status = 400, response = Invalid),
        (status = 401, response = Unauthorized),
        (status = 403, response = AdminOff),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    )
)]
pub async fn list(db: &PgPool, query: Option<&str>) -> Result<Response<Body>, ApiError> {
    let query = parse_query(query)?;
    // One more than asked says whether a next page exists.
    let mut entries = audit::page(db, query.before, query.limit + 1).await?;
    let next_cursor = match entries.len() > usize::try_from(query.limit).unwrap_or(usize::MAX) {
        true => {
            entries.pop();
            entries.last().map(|last| last.seq.to_string())
        }
        false => None,
    };
    let page = AuditLogPage {
        entries: entries.into_iter().map(AuditEntry::from).collect(),
        next_cursor,
    };
    // serde_json, not simd-json: the details are arbitrary-precision JSON values.
    let body = serde_json::to_vec(&page).map_err(|error| ApiError::Internal(error.to_string()))?;
    let mut response = Response::new(full(body));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_asked_for_by_cursor_and_limit() {
        assert_eq!(
            parse_query(Some("cursor=42&limit=10")).ok(),
            Some(PageQuery {
                before: Some(42),
                limit: 10
            })
        );
        assert_eq!(
            parse_query(None).ok(),
            Some(PageQuery {
                before: None,
                limit: DEFAULT_LIMIT
            })
        );
        match parse_query(Some("cursor=x&limit=0")) {
            Err(ApiError::Validation(errors)) => assert_eq!(
                errors.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(),
                ["cursor", "limit"]
            ),
            other => panic!("{other:?}"),
        }
    }
}
