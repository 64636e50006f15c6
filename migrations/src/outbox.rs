//! The mail outbox (table `mail_outbox`): mails written in the transaction of their cause, and
//! taken one at a time by a sender that holds the row locked while it delivers, so two senders
//! never deliver one mail at once and a sender killed mid-delivery releases it at once.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

/// A mail to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// What caused it (a sign-in link, a booking): with `kind`, it names the mail for good.
    pub cause: Uuid,
    /// `signin`, ...
    pub kind: &'static str,
    pub recipient: String,
    pub subject: String,
    pub body: String,
}

impl Mail {
    /// The mail's `Message-ID`, the same at every attempt: `<cause.kind@host>`.
    pub fn message_id(&self, host: &str) -> String {
        format!("<{}.{}@{host}>", self.cause, self.kind)
    }
}

/// Queues `mail` in the caller's transaction: it is sent once that commits, never otherwise.
/// Queued twice (the same cause and kind), it is one mail.
pub async fn enqueue(db: &mut PgConnection, mail: &Mail, host: &str) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO mail_outbox (id, message_id, kind, recipient, subject, body)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (message_id) DO NOTHING",
        Uuid::now_v7(),
        mail.message_id(host),
        mail.kind,
        mail.recipient,
        mail.subject,
        mail.body
    )
    .execute(db)
    .await?;
    Ok(())
}

/// A queued mail, as the sender delivers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub id: Uuid,
    pub message_id: String,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    /// Attempts before this one.
    pub attempts: i32,
}

/// A mail taken for delivery: its row stays locked until [`Taken::sent`] or [`Taken::retry_at`]
/// commits, or the sender's connection ends.
#[derive(Debug)]
pub struct Taken {
    pub mail: Queued,
    tx: Transaction<'static, Postgres>,
}

/// The mail due soonest that no other sender holds, if any is due.
pub async fn take_due(db: &PgPool) -> Result<Option<Taken>, sqlx::Error> {
    let mut tx = db.begin().await?;
    let mail = sqlx::query_as!(
        Queued,
        "SELECT id, message_id, recipient, subject, body, attempts FROM mail_outbox
         WHERE sent_at IS NULL AND given_up_at IS NULL AND next_attempt_at <= now()
         ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED"
    )
    .fetch_optional(&mut *tx)
    .await?;
    Ok(mail.map(|mail| Taken { mail, tx }))
}

impl Taken {
    /// Delivered: never sent again.
    pub async fn sent(mut self) -> Result<(), sqlx::Error> {
        sqlx::query!(
            "UPDATE mail_outbox SET sent_at = now(), attempts = attempts + 1, last_error = NULL
             WHERE id = $1",
            self.mail.id
        )
        .execute(&mut *self.tx)
        .await?;
        self.tx.commit().await
    }

    /// Refused for good: never tried again.
    pub async fn give_up(mut self, error: &str) -> Result<(), sqlx::Error> {
        sqlx::query!(
            "UPDATE mail_outbox SET attempts = attempts + 1, given_up_at = now(), last_error = $2
             WHERE id = $1",
            self.mail.id,
            error
        )
        .execute(&mut *self.tx)
        .await?;
        self.tx.commit().await
    }

    /// Not delivered: tried again at `at`, with why it failed.
    pub async fn retry_at(mut self, at: DateTime<Utc>, error: &str) -> Result<(), sqlx::Error> {
        sqlx::query!(
            "UPDATE mail_outbox SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3
             WHERE id = $1",
            self.mail.id,
            at,
            error
        )
        .execute(&mut *self.tx)
        .await?;
        self.tx.commit().await
    }
}

/// Mails queued and neither sent nor given up.
pub async fn unsent(db: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM mail_outbox
           WHERE sent_at IS NULL AND given_up_at IS NULL"#
    )
    .fetch_one(db)
    .await
}
