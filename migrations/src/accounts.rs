//! Customers' sign-in: links asked for by email (table `signin_links`), limited per email and
//! per client address over the last minute, each mailed through the outbox in the transaction
//! that records it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::outbox::{self, Mail};

/// Links one email, or one client address, may ask for in a minute.
pub const LINKS_PER_MINUTE: i32 = 5;
const WINDOW: Duration = Duration::from_secs(60);

/// A sign-in link to record and mail.
#[derive(Debug)]
pub struct LinkRequest<'a> {
    /// SHA-256 of the token the mail carries.
    pub token_hash: [u8; 32],
    pub email: &'a str,
    pub requested_by: &'a str,
    pub expires_at: DateTime<Utc>,
    /// The mail, made for the token.
    pub mail: Mail,
    /// The host of the mail's `Message-ID`.
    pub host: &'a str,
}

/// What became of a request for a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requested {
    /// Recorded, and its mail queued.
    Queued,
    /// Over the limit of the email or of the address: nothing recorded; asking again after this
    /// long is within it.
    Limited { retry_after: Duration },
}

/// Records `link` and queues its mail, unless the email or the address already asked for
/// [`LINKS_PER_MINUTE`] links in the last minute.
pub async fn request_link(db: &PgPool, link: LinkRequest<'_>) -> Result<Requested, sqlx::Error> {
    let mut tx = db.begin().await?;
    // One request per email and per address at a time, so concurrent ones count each other.
    // Every request takes the email's lock before the address's, so none holds an address's
    // while it waits for an email's, and no two wait on each other.
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 1))",
        link.email
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 2))",
        link.requested_by
    )
    .execute(&mut *tx)
    .await?;
    let window = WINDOW.as_secs_f64();
    let oldest_counted = sqlx::query_scalar!(
        r#"SELECT max(nth) AS "oldest_counted" FROM (
             (SELECT created_at AS nth FROM signin_links
              WHERE email = $1 AND created_at > now() - make_interval(secs => $3)
              ORDER BY created_at DESC OFFSET $4 - 1 LIMIT 1)
             UNION ALL
             (SELECT created_at FROM signin_links
              WHERE requested_by = $2 AND created_at > now() - make_interval(secs => $3)
              ORDER BY created_at DESC OFFSET $4 - 1 LIMIT 1)
           ) AS limits"#,
        link.email,
        link.requested_by,
        window,
        LINKS_PER_MINUTE
    )
    .fetch_one(&mut *tx)
    .await?;
    if let Some(at) = oldest_counted {
        let frees_at = at + WINDOW;
        let retry_after = (frees_at - Utc::now()).to_std().unwrap_or_default();
        return Ok(Requested::Limited { retry_after });
    }
    sqlx::query!(
        "INSERT INTO signin_links (token_hash, email, requested_by, expires_at)
         VALUES ($1, $2, $3, $4)",
        &link.token_hash[..],
        link.email,
        link.requested_by,
        link.expires_at
    )
    .execute(&mut *tx)
    .await?;
    outbox::enqueue(&mut tx, &link.mail, link.host).await?;
    tx.commit().await?;
    Ok(Requested::Queued)
}
