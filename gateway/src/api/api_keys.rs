//! `/api/admin/api-keys`: operators' API keys, each with one role; made (the secret shown in
//! that answer only), listed and revoked by an admin.

use chrono::{DateTime, Utc};
use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use api_types::ApiKeyBody;
use domain::roles::Role;
use pg_store::api_keys::ApiKey;

use crate::api::problems::{AdminWriteProblems, Invalid, NotFound, OperatorReadProblems};
use crate::http::body::{Body, json, no_content};
use crate::http::error::ApiError;
use crate::http::validate::{Checker, parse_form, path_id};
use crate::operators::{Operator, Operators};

/// An API key as operators see it: never its secret.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyView {
    id: Uuid,
    name: String,
    role: Role,
    created_at: DateTime<Utc>,
    /// When it stopped working; absent while it works.
    #[serde(skip_serializing_if = "Option::is_none")]
    revoked_at: Option<DateTime<Utc>>,
}

impl TryFrom<ApiKey> for ApiKeyView {
    type Error = ApiError;

    fn try_from(key: ApiKey) -> Result<Self, ApiError> {
        let role = key
            .role
            .parse()
            .map_err(|_| ApiError::Internal(format!("API key {} has role {}", key.id, key.role)))?;
        Ok(Self {
            id: key.id,
            name: key.name,
            role,
            created_at: key.created_at,
            revoked_at: key.revoked_at,
        })
    }
}

/// A new key, with the one copy of its secret there will ever be.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedApiKey {
    api_key: ApiKeyView,
    /// Sent as `Authorization: Bearer <secret>`; shown here once, and kept by nobody else.
    #[schema(pattern = "^tk_[0-9a-f]{64}$")]
    secret: String,
}

/// Every API key, revoked ones included.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyList {
    /// Newest first.
    api_keys: Vec<ApiKeyView>,
}

/// A new key's body as sent, read field by field.
#[derive(Debug, Deserialize)]
struct KeyForm {
    name: Option<Value>,
    role: Option<Value>,
}

fn parse_key(body: &[u8]) -> Result<(String, Role), ApiError> {
    let form: KeyForm = parse_form(body)?;
    let mut check = Checker::default();
    let name = check
        .required(&form.name, "name")
        .and_then(|value| check.text(value, "name", 1, 100))
        .map(str::to_owned);
    let role = check
        .required(&form.role, "role")
        .and_then(|value| check.string(value, "role"))
        .and_then(|text| check.parsed("role", "format", text.parse()));
    let key = name.zip(role);
    check.finish(key)
}

/// Makes an API key with a role. Its secret is in this answer and nowhere else: only its hash is
/// kept. Recorded in the audit log.
#[utoipa::path(post, path = "/api/admin/api-keys", operation_id = "createApiKey", tag = "admin",
    security(("operator" = [])),
    request_body = ApiKeyBody,
    responses(
        (status = 201, description = "Made; the secret is shown once", body = CreatedApiKey),
        AdminWriteProblems,
    )
)]
pub async fn create(
    operators: &Operators,
    by: &Operator,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let (name, role) = parse_key(body)?;
    let (key, secret) = operators.create(by, &name, role).await?;
    let created = CreatedApiKey {
        api_key: key.try_into()?,
        secret,
    };
    json(StatusCode::CREATED, &created)
}

/// Every API key, newest first, revoked ones included; never a secret.
#[utoipa::path(get, path = "/api/admin/api-keys", operation_id = "listApiKeys", tag = "admin",
    security(("operator" = [])),
    responses(
        (status = 200, description = "The keys", body = ApiKeyList),
        OperatorReadProblems,
    )
)]
pub async fn list(operators: &Operators) -> Result<Response<Body>, ApiError> {
    let keys = pg_store::api_keys::list(&operators.db).await?;
    let api_keys = keys
        .into_iter()
        .map(ApiKeyView::try_from)
        .collect::<Result<_, _>>()?;
    json(StatusCode::OK, &ApiKeyList { api_keys })
}

/// Revokes an API key: every gateway refuses it within 2 seconds. Revoking a revoked key changes
/// nothing. Recorded in the audit log.
#[utoipa::path(delete, path = "/api/admin/api-keys/{id}", operation_id = "revokeApiKey", tag = "admin",
    security(("operator" = [])),
    params(("id" = Uuid, Path, description = "The key")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 400, response = Invalid),
        (status = 404, response = NotFound),
        OperatorReadProblems,
    )
)]
pub async fn revoke(
    operators: &Operators,
    by: &Operator,
    id: &str,
) -> Result<Response<Body>, ApiError> {
    operators.revoke(by, path_id(id)?).await?;
    Ok(no_content())
}
