//! `/api/auth/*`: signing in by a mailed link, refreshing the session, signing out.

use std::net::IpAddr;

use api_types::{RefreshBody, SessionBody, SignInLinkBody};
use http::{HeaderMap, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::api::problems::{RateLimited, Unauthorized, Unavailable, WriteProblems};
use crate::customers::{Customers, Grant};
use crate::http::body::{Body, json, no_content};
use crate::http::error::{ApiError, Problem};
use crate::http::validate::{Checker, parse_form};

/// The answer to a request for a link: the same whether or not the email is known.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkSent {
    /// Always `If this address can sign in, a link is on its way.`
    message: &'static str,
}

/// Mails a single-use sign-in link (valid 15 minutes) to `email`. The answer is the same for
/// every email, known or not; more than 5 requests a minute for one email, or from one client
/// address, are refused.
#[utoipa::path(post, path = "/api/auth/links", operation_id = "requestSignInLink", tag = "customers",
    request_body = SignInLinkBody,
    responses(
        (status = 202, description = "The link is mailed", body = LinkSent),
        WriteProblems,
    )
)]
pub async fn request_link(
    customers: &Customers,
    client: IpAddr,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let form: LinkForm = parse_form(body)?;
    let mut check = Checker::default();
    let email = check.email(&form.email, "email");
    let email = check.finish(email)?;
    customers.send_link(&email, client).await?;
    json(
        StatusCode::ACCEPTED,
        &LinkSent {
            message: "If this address can sign in, a link is on its way.",
        },
    )
}

/// A request for a link as sent, read field by field.
#[derive(Debug, Deserialize)]
struct LinkForm {
    email: Option<Value>,
}

/// Spends a sign-in link's token (single-use, 15 minutes) for a session: an access token (15
/// minutes) and a refresh token (30 days).
#[utoipa::path(post, path = "/api/auth/sessions", operation_id = "signIn", tag = "customers",
    request_body = SessionBody,
    responses(
        (status = 201, description = "Signed in", body = Grant),
        (status = 401, description = "`TokenRefused`: the link's token is unknown, used or expired", body = Problem, content_type = "application/problem+json"),
        WriteProblems,
    )
)]
pub async fn sign_in(customers: &Customers, body: &[u8]) -> Result<Response<Body>, ApiError> {
    let token = token_field(body, "token")?;
    json(StatusCode::CREATED, &customers.sign_in(&token).await?)
}

/// Spends a refresh token for the next pair. A refresh token works once: presented again, it
/// ends its session, and every token of that session stops working.
#[utoipa::path(post, path = "/api/auth/refresh", operation_id = "refreshSession", tag = "customers",
    request_body = RefreshBody,
    responses(
        (status = 200, description = "The next pair", body = Grant),
        (status = 401, description = "`TokenRefused`: unknown, spent, expired, or of an ended session", body = Problem, content_type = "application/problem+json"),
        WriteProblems,
    )
)]
pub async fn refresh(customers: &Customers, body: &[u8]) -> Result<Response<Body>, ApiError> {
    let token = token_field(body, "refreshToken")?;
    json(StatusCode::OK, &customers.refresh(&token).await?)
}

/// Signs out: the session's refresh token stops working.
#[utoipa::path(delete, path = "/api/auth/sessions/current", operation_id = "signOut", tag = "customers",
    security(("customer" = [])),
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, response = Unauthorized),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    )
)]
pub async fn sign_out(
    customers: &Customers,
    headers: &HeaderMap,
) -> Result<Response<Body>, ApiError> {
    let signed_in = customers.require(headers)?;
    customers.sign_out(&signed_in).await?;
    Ok(no_content())
}

/// The one string field `name` of a token request: 64 hexadecimal digits, as every token is.
fn token_field(body: &[u8], name: &str) -> Result<String, ApiError> {
    let form: serde_json::Map<String, Value> = parse_form(body)?;
    let value = form.get(name).cloned();
    let mut check = Checker::default();
    let token = check
        .required(&value, name)
        .and_then(|value| check.string(value, name))
        .and_then(|text| {
            let token =
                text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
            let token = token
                .then(|| text.to_owned())
                .ok_or("must be 64 hexadecimal digits (a token as issued)");
            check.parsed(name, "format", token)
        });
    check.finish(token)
}
