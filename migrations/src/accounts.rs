//! Customers' sign-in: links asked for by email (table `signin_links`), limited per email and
//! per client address over the last minute, each mailed through the outbox in the transaction
//! that records it; a link spent for a session (tables `customers`, `sessions`), whose refresh
//! tokens (`refresh_tokens`) rotate at each use, a spent one presented again revoking it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

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

/// A customer signed in, and the session they are signed in with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub email: String,
}

/// A refresh token to issue: its hash and when it stops working.
#[derive(Debug, Clone, Copy)]
pub struct NewRefresh {
    pub token_hash: [u8; 32],
    pub expires_at: DateTime<Utc>,
}

/// Spends the sign-in link of `link_hash` (unused, unexpired) for a new session of its email's
/// customer (made at its first sign-in), whose first refresh token is `refresh`. `None` when no
/// such link exists: unknown, used or expired alike.
pub async fn start_session(
    db: &PgPool,
    link_hash: &[u8; 32],
    refresh: NewRefresh,
) -> Result<Option<Session>, sqlx::Error> {
    let mut tx = db.begin().await?;
    let email = sqlx::query_scalar!(
        "UPDATE signin_links SET used_at = now()
         WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()
         RETURNING email",
        &link_hash[..]
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(email) = email else {
        return Ok(None);
    };
    let customer_id = sqlx::query_scalar!(
        "INSERT INTO customers (id, email) VALUES ($1, $2)
         ON CONFLICT (email) DO UPDATE SET email = EXCLUDED.email
         RETURNING id",
        Uuid::now_v7(),
        email
    )
    .fetch_one(&mut *tx)
    .await?;
    let session = Session {
        id: Uuid::now_v7(),
        customer_id,
        email,
    };
    sqlx::query!(
        "INSERT INTO sessions (id, customer_id) VALUES ($1, $2)",
        session.id,
        session.customer_id
    )
    .execute(&mut *tx)
    .await?;
    issue_refresh(&mut tx, session.id, refresh).await?;
    tx.commit().await?;
    Ok(Some(session))
}

async fn issue_refresh(
    db: &mut PgConnection,
    session: Uuid,
    refresh: NewRefresh,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO refresh_tokens (token_hash, session_id, expires_at) VALUES ($1, $2, $3)",
        &refresh.token_hash[..],
        session,
        refresh.expires_at
    )
    .execute(db)
    .await?;
    Ok(())
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refreshed {
    /// Spent for `next`, in the same session.
    Rotated(Session),
    /// Spent before: the session is revoked, so whoever holds any of its tokens is signed out.
    Reused,
    /// Unknown, expired, or of a session that ended.
    Refused,
}

/// Spends the refresh token of `token_hash` for `next`. Concurrent presentations of one token
/// are taken one at a time: the first rotates it, any other finds it spent.
pub async fn refresh(
    db: &PgPool,
    token_hash: &[u8; 32],
    next: NewRefresh,
) -> Result<Refreshed, sqlx::Error> {
    let mut tx = db.begin().await?;
    let found = sqlx::query!(
        r#"SELECT r.spent_at IS NOT NULL AS "spent!", r.expires_at > now() AS "live!",
                  s.revoked_at IS NULL AS "open!", s.id, s.customer_id, c.email
           FROM refresh_tokens r
           JOIN sessions s ON s.id = r.session_id
           JOIN customers c ON c.id = s.customer_id
           WHERE r.token_hash = $1
           FOR UPDATE OF r, s"#,
        &token_hash[..]
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(found) = found else {
        return Ok(Refreshed::Refused);
    };
    if !found.open {
        return Ok(Refreshed::Refused);
    }
    if found.spent {
        revoke(&mut tx, found.id, "refresh token reused").await?;
        tx.commit().await?;
        return Ok(Refreshed::Reused);
    }
    if !found.live {
        return Ok(Refreshed::Refused);
    }
    sqlx::query!(
        "UPDATE refresh_tokens SET spent_at = now() WHERE token_hash = $1",
        &token_hash[..]
    )
    .execute(&mut *tx)
    .await?;
    issue_refresh(&mut tx, found.id, next).await?;
    tx.commit().await?;
    Ok(Refreshed::Rotated(Session {
        id: found.id,
        customer_id: found.customer_id,
        email: found.email,
    }))
}

async fn revoke(db: &mut PgConnection, session: Uuid, because: &str) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE sessions SET revoked_at = now(), revoked_because = $2
         WHERE id = $1 AND revoked_at IS NULL",
        session,
        because
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Signs `session` out: none of its refresh tokens works again.
pub async fn end_session(db: &PgPool, session: Uuid) -> Result<(), sqlx::Error> {
    let mut conn = db.acquire().await?;
    revoke(&mut conn, session, "signed out").await
}

/// Rows [`prune`] deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub links: u64,
    pub refresh_tokens: u64,
}

/// Deletes sign-in links and refresh tokens that expired more than `kept_for` ago: neither works
/// again, and neither counts for a limit (those look back a minute), so keeping them only grows
/// the tables; `kept_for` leaves them a while to whoever investigates abuse.
pub async fn prune(db: &PgPool, kept_for: Duration) -> Result<Pruned, sqlx::Error> {
    let kept_for = kept_for.as_secs_f64();
    let links = sqlx::query!(
        "DELETE FROM signin_links WHERE expires_at < now() - make_interval(secs => $1)",
        kept_for
    )
    .execute(db)
    .await?
    .rows_affected();
    let refresh_tokens = sqlx::query!(
        "DELETE FROM refresh_tokens WHERE expires_at < now() - make_interval(secs => $1)",
        kept_for
    )
    .execute(db)
    .await?
    .rows_affected();
    Ok(Pruned {
        links,
        refresh_tokens,
    })
}
