//! Customers who sign in: a link asked for by email and mailed through the outbox, spent for a
//! session of short access tokens and rotating refresh tokens; their bookings, a page at a time.

pub mod tokens;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use domain::record::BookingRecord;
use domain::values::Email;
use pg_store::BookingCursor;
use pg_store::accounts::{self, LinkRequest, NewRefresh, Refreshed, Requested, Session};
use pg_store::outbox::Mail;

use crate::config::PublicUrl;
use crate::http::error::{ApiError, Limit};
use crate::http::validate::PageQuery;
use crate::secrets::{new_token, token_hash};
use tokens::{ACCESS_TTL, AccessTokens, SignedIn};

/// How long a sign-in link works.
pub const LINK_TTL: Duration = Duration::from_secs(15 * 60);
/// How long a refresh token works (each use gives a new one of the same life).
pub const REFRESH_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// What signing in needs.
#[derive(Debug)]
pub struct Customers {
    pub db: PgPool,
    pub public_url: PublicUrl,
    pub tokens: Arc<AccessTokens>,
}

/// A customer as they see themselves.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CustomerView {
    pub id: Uuid,
    pub email: String,
}

/// What signing in or refreshing gives: a new pair of tokens.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Grant {
    /// A JWT to send as `Authorization: Bearer <accessToken>`.
    pub access_token: String,
    /// Spent by `POST /api/auth/refresh` for the next pair; presented twice, it ends the session.
    pub refresh_token: String,
    /// Seconds the access token works.
    pub expires_in: u64,
    pub customer: CustomerView,
}

impl Customers {
    /// Mails `email` a sign-in link, whether or not it ever booked (the answer never says which
    /// emails are known), unless it or `client` asked for too many in the last minute.
    pub async fn send_link(&self, email: &Email, client: IpAddr) -> Result<(), ApiError> {
        let token = new_token();
        let requested_by = client.to_string();
        let link = LinkRequest {
            token_hash: token_hash(&token),
            email: email.as_str(),
            requested_by: &requested_by,
            expires_at: chrono::Utc::now() + LINK_TTL,
            mail: self.link_mail(email, &token),
            host: &self.public_url.host,
        };
        match accounts::request_link(&self.db, link).await? {
            Requested::Queued => Ok(()),
            Requested::Limited { retry_after } => {
                crate::metrics::rate_limited(Limit::SignInLinks.name());
                Err(ApiError::RateLimited {
                    limit: Limit::SignInLinks,
                    retry_after,
                })
            }
        }
    }

    fn link_mail(&self, email: &Email, token: &str) -> Mail {
        let minutes = LINK_TTL.as_secs() / 60;
        Mail {
            cause: Uuid::now_v7(),
            kind: "signin",
            recipient: email.as_str().to_owned(),
            subject: "Your sign-in link".to_owned(),
            body: format!(
                "Sign in to see your bookings:\n\n{}/signin?token={token}\n\n\
                 The link works once, within {minutes} minutes. If you did not ask for it, \
                 ignore this mail: nobody can sign in without it.\n",
                self.public_url.base
            ),
        }
    }

    /// Spends a sign-in link's token for a new session.
    pub async fn sign_in(&self, link_token: &str) -> Result<Grant, ApiError> {
        let (refresh_token, refresh) = new_refresh();
        let session = accounts::start_session(&self.db, &token_hash(link_token), refresh)
            .await?
            .ok_or(ApiError::TokenRefused)?;
        self.grant(session, refresh_token)
    }

    /// Spends a refresh token for the next pair. A spent one presented again ends its session.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Grant, ApiError> {
        let (next_token, next) = new_refresh();
        match accounts::refresh(&self.db, &token_hash(refresh_token), next).await? {
            Refreshed::Rotated(session) => self.grant(session, next_token),
            Refreshed::Reused => {
                tracing::warn!("a spent refresh token was presented again; its session is revoked");
                Err(ApiError::TokenRefused)
            }
            Refreshed::Refused => Err(ApiError::TokenRefused),
        }
    }

    /// Ends the session of `signed_in`: its refresh tokens stop working (its access tokens
    /// expire within [`ACCESS_TTL`]).
    pub async fn sign_out(&self, signed_in: &SignedIn) -> Result<(), ApiError> {
        accounts::end_session(&self.db, signed_in.session_id).await?;
        Ok(())
    }

    fn grant(&self, session: Session, refresh_token: String) -> Result<Grant, ApiError> {
        let email = Email::parse(&session.email)
            .map_err(|error| ApiError::Internal(format!("a customer's email: {error}")))?;
        let signed_in = SignedIn {
            customer_id: session.customer_id,
            email,
            session_id: session.id,
        };
        let access_token = self
            .tokens
            .issue(&signed_in)
            .map_err(|error| ApiError::Internal(format!("signing an access token: {error}")))?;
        Ok(Grant {
            access_token,
            refresh_token,
            expires_in: ACCESS_TTL.as_secs(),
            customer: CustomerView {
                id: session.customer_id,
                email: session.email,
            },
        })
    }

    /// The signed-in customer, who must be.
    pub fn require(&self, headers: &HeaderMap) -> Result<SignedIn, ApiError> {
        self.tokens
            .from_headers(headers)?
            .ok_or(ApiError::Unauthorized)
    }

    /// A page of the customer's settled bookings (guest ones of their email included), newest
    /// first; and whether more follow.
    pub async fn bookings(
        &self,
        signed_in: &SignedIn,
        page: &PageQuery<BookingCursor>,
    ) -> Result<(Vec<BookingRecord>, bool), ApiError> {
        let email = signed_in.email.as_str();
        let rows = pg_store::bookings_of(&self.db, email, page.after, page.fetch()).await?;
        Ok(page.cut(rows))
    }
}

fn new_refresh() -> (String, NewRefresh) {
    let token = new_token();
    let refresh = NewRefresh {
        token_hash: token_hash(&token),
        expires_at: chrono::Utc::now() + REFRESH_TTL,
    };
    (token, refresh)
}
