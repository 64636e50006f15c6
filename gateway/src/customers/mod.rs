//! Customers who sign in: a link asked for by email and mailed through the outbox.

use std::net::IpAddr;
use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use domain::values::Email;
use pg_store::accounts::{self, LinkRequest, Requested};
use pg_store::outbox::Mail;

use crate::config::PublicUrl;
use crate::http::error::{ApiError, Limit};

/// How long a sign-in link works.
pub const LINK_TTL: Duration = Duration::from_secs(15 * 60);

/// What signing in needs.
#[derive(Debug)]
pub struct Customers {
    pub db: PgPool,
    pub public_url: PublicUrl,
}

impl Customers {
    /// Mails `email` a sign-in link, whether or not it ever booked (the answer never says which
    /// emails are known), unless it or `client` asked for too many in the last minute.
    pub async fn send_link(&self, email: &Email, client: IpAddr) -> Result<(), ApiError> {
        let token = hex::encode(rand::random::<[u8; 32]>());
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
}

/// What Postgres keeps of a token: its SHA-256, never the token.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}
