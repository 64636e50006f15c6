//! `/api/auth/*`: signing in by a mailed link.

use std::net::IpAddr;

use api_types::SignInLinkBody;
use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::api::problems::WriteProblems;
use crate::customers::Customers;
use crate::http::body::{Body, json};
use crate::http::error::ApiError;
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
