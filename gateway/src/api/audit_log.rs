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

use crate::api::problems::{Invalid, OperatorReadProblems};
use crate::http::body::{Body, full};
use crate::http::error::ApiError;
use crate::http::validate::{PageQuery, page_query};

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 200;

fn parse_query(query: Option<&str>) -> Result<PageQuery<i64>, ApiError> {
    let seq = |text: &str| text.parse::<i64>().ok().filter(|seq| *seq > 0);
    page_query(query, seq, DEFAULT_LIMIT, MAX_LIMIT)
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
    security(("operator" = [])),
    params(
        ("cursor" = Option<String>, Query, pattern = "^[1-9][0-9]{0,17}$", description = "The `nextCursor` of the page before"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Entries per page (default 50)"),
    ),
    responses(
        (status = 200, description = "A page of the audit log", body = AuditLogPage),
        (status = 400, response = Invalid),
        OperatorReadProblems,
    )
)]
pub async fn list(db: &PgPool, query: Option<&str>) -> Result<Response<Body>, ApiError> {
    let query = parse_query(query)?;
    let (entries, more) = query.cut(audit::page(db, query.after, query.fetch()).await?);
    let next_cursor = match more {
        true => entries.last().map(|last| last.seq.to_string()),
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
                after: Some(42),
                limit: 10
            })
        );
        assert_eq!(
            parse_query(None).ok(),
            Some(PageQuery {
                after: None,
                limit: DEFAULT_LIMIT
            })
        );
        match parse_query(Some("cursor=x&limit=0&limt=5")) {
            Err(ApiError::Validation(errors)) => assert_eq!(
                errors.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(),
                ["cursor", "limit", "limt"]
            ),
            other => panic!("{other:?}"),
        }
    }
}
