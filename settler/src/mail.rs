//! The mail sender: delivers what the outbox holds over SMTP, one mail per transaction, retrying
//! with backoff. A mail is marked sent in the transaction that locked it, right after the server
//! took it; a sender killed between the two leaves it unsent, and the resend carries the same
//! `Message-ID`, so a receiver sees one mail.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::{AsyncTransport, Tokio1Executor};
use rand::Rng;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use pg_store::outbox::{self, Queued};

use crate::metrics::MailOutcome;

/// Senders at once: each holds one mail's row (and a Postgres connection) while it delivers.
pub const SENDERS: usize = 4;
/// A sender that found nothing due looks again after this long.
const IDLE_POLL: Duration = Duration::from_millis(200);
/// After a failed delivery: 1 s, doubling per attempt, at most this, with a fifth of jitter.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);
/// Attempts a mail the server refuses for good (a 5xx) gets before it is given up: a refusal
/// can be a passing misconfiguration, so not the first.
const MAX_REFUSALS: i32 = 8;
/// One delivery's bound, connection and every SMTP reply included. The mail's row stays locked in
/// its transaction meanwhile, so Postgres must not end that transaction as idle first.
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);
const _: () = assert!(SMTP_TIMEOUT.as_secs() < pg_store::IDLE_IN_TRANSACTION.as_secs());

/// Where mails go: an SMTP server, or the log when none is configured.
#[derive(Clone)]
pub enum Delivery {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Log,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Smtp(_) => "Smtp",
            Self::Log => "Log",
        })
    }
}

impl Delivery {
    /// Over SMTP to `url` (`smtp://host:port`, `smtps://...`, `?tls=required` for STARTTLS).
    pub fn smtp(url: &str) -> Result<Self, lettre::transport::smtp::Error> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)?
            .timeout(Some(SMTP_TIMEOUT))
            .build();
        Ok(Self::Smtp(transport))
    }
}

#[derive(Debug)]
pub struct Mailer {
    pub db: PgPool,
    pub delivery: Delivery,
    pub from: Mailbox,
}

impl Mailer {
    /// Delivers due mails until `shutdown`; the mail in hand is finished first.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            let idle = match self.send_next().await {
                Ok(true) => continue,
                Ok(false) => IDLE_POLL,
                Err(error) => {
                    tracing::warn!(%error, "reading the mail outbox failed");
                    IDLE_POLL * 5
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(idle) => {}
            }
        }
    }

    /// Delivers the mail due soonest; false when none is due.
    pub async fn send_next(&self) -> Result<bool, sqlx::Error> {
        let Some(taken) = outbox::take_due(&self.db).await? else {
            return Ok(false);
        };
        match self.deliver(&taken.mail).await {
            Ok(()) => {
                crate::metrics::mail(MailOutcome::Sent);
                taken.sent().await?;
            }
            Err(Failure { error, permanent })
                if permanent && taken.mail.attempts + 1 >= MAX_REFUSALS =>
            {
                crate::metrics::mail(MailOutcome::GivenUp);
                tracing::error!(message_id = %taken.mail.message_id, attempts = taken.mail.attempts + 1,
                    %error, "mail refused for good; given up");
                taken.give_up(&error).await?;
            }
            Err(Failure { error, .. }) => {
                crate::metrics::mail(MailOutcome::Failed);
                let wait = retry_after(taken.mail.attempts);
                tracing::warn!(message_id = %taken.mail.message_id, attempts = taken.mail.attempts + 1,
                    retry_in = ?wait, %error, "mail not delivered");
                let at = chrono::Utc::now() + wait;
                taken.retry_at(at, &error).await?;
            }
        }
        Ok(true)
    }

    async fn deliver(&self, mail: &Queued) -> Result<(), Failure> {
        let to: Mailbox = mail
            .recipient
            .parse()
            .map_err(|error| Failure::permanent(format!("recipient: {error}")))?;
        let message = Message::builder()
            .message_id(Some(mail.message_id.clone()))
            .from(self.from.clone())
            .to(to)
            .subject(&mail.subject)
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body.clone())
            .map_err(|error| Failure::permanent(format!("message: {error}")))?;
        match &self.delivery {
            // lettre's timeout bounds each socket operation; this bounds the whole delivery.
            Delivery::Smtp(transport) => {
                match tokio::time::timeout(SMTP_TIMEOUT, transport.send(message)).await {
                    Ok(sent) => sent.map(drop).map_err(|error| Failure {
                        permanent: error.is_permanent(),
                        error: error.to_string(),
                    }),
                    Err(_) => Err(Failure {
                        permanent: false,
                        error: format!("no delivery within {SMTP_TIMEOUT:?}"),
                    }),
                }
            }
            Delivery::Log => {
                tracing::info!(message_id = %mail.message_id, to = %mail.recipient,
                    subject = %mail.subject, body = %mail.body, "mail (no SMTP_URL: logged, not sent)");
                Ok(())
            }
        }
    }
}

/// Why a delivery failed, and whether the server refused it for good.
#[derive(Debug)]
struct Failure {
    error: String,
    permanent: bool,
}

impl Failure {
    fn permanent(error: String) -> Self {
        Self {
            error,
            permanent: true,
        }
    }
}

/// How long after its `attempts`-th failure a mail is tried again.
fn retry_after(attempts: i32) -> Duration {
    let doublings = u32::try_from(attempts).unwrap_or(0).min(16);
    let base = RETRY_FIRST.saturating_mul(1 << doublings).min(RETRY_MAX);
    base.mul_f64(rand::rng().random_range(0.8..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_a_minute() {
        assert!(retry_after(0) <= RETRY_FIRST);
        assert!(retry_after(0) >= RETRY_FIRST.mul_f64(0.8));
        assert!(retry_after(3) >= Duration::from_millis(6_400));
        assert!(retry_after(3) <= Duration::from_secs(8));
        assert!(retry_after(30) <= RETRY_MAX);
        assert!(retry_after(30) >= RETRY_MAX.mul_f64(0.8));
    }
}
