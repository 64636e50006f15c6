//! Admission tokens: `<ticketId>.<expiresAtMs>.<hmac>`, the HMAC-SHA256 under `ADMISSION_SECRET`
//! of the concert, the ticket, the expiry and the email that joined, so a token books for that
//! email alone. Any gateway with the secret checks one without asking Redis; Redis' reservation
//! script spends it (once) with the booking.

use chrono::{DateTime, Utc};
use domain::ids::{ConcertId, QueueTicketId};
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use sha2::Sha256;

use crate::config::SECRET_MIN_BYTES;

type HmacSha256 = Hmac<Sha256>;

/// The key admission tokens and draws are made with, ready to sign; never printed.
#[derive(Clone)]
pub struct AdmissionSecret(HmacSha256);

impl std::fmt::Debug for AdmissionSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdmissionSecret(..)")
    }
}

/// Why a token admits no one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Missing,
    Malformed,
    /// Signed for another concert or another email, or not by this deployment's secret.
    Forged,
    Expired,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Missing => {
                "this concert's tickets are sold through its waiting room: join it first"
            }
            Refusal::Malformed | Refusal::Forged => {
                "the admission token is not valid for this concert and email: book with the email \
                 that joined the waiting room"
            }
            Refusal::Expired => "the admission token has expired: join the waiting room again",
        }
    }
}

impl AdmissionSecret {
    /// `None` when shorter than [`SECRET_MIN_BYTES`].
    pub fn new(key: &[u8]) -> Option<Self> {
        if key.len() < SECRET_MIN_BYTES {
            return None;
        }
        <HmacSha256 as KeyInit>::new_from_slice(key).ok().map(Self)
    }

    /// A key of this process alone: enough for one gateway.
    pub fn random() -> Self {
        // A key of SHA-256's block size: HMAC's own key length.
        let mut key = [0u8; 64];
        rand::fill(&mut key);
        Self(<HmacSha256 as KeyInit>::new(&key.into()))
    }

    fn mac(&self, parts: &[&[u8]]) -> HmacSha256 {
        let mut mac = self.0.clone();
        for part in parts {
            mac.update(part);
            mac.update(b"\x1f");
        }
        mac
    }

    /// The token admitting `ticket`, joined by `email`, to book for `concert` until
    /// `expires_at_ms`.
    pub fn issue(
        &self,
        concert: ConcertId,
        ticket: QueueTicketId,
        email: &str,
        expires_at_ms: i64,
    ) -> String {
        let expires = expires_at_ms.to_string();
        let mac = self.admission_mac(concert, ticket, &expires, email);
        format!(
            "{ticket}.{expires}.{}",
            hex::encode(mac.finalize().into_bytes())
        )
    }

    /// The ticket `token` admits `email` with for `concert` at `now`.
    pub fn verify(
        &self,
        concert: ConcertId,
        token: Option<&str>,
        email: &str,
        now: DateTime<Utc>,
    ) -> Result<QueueTicketId, Refusal> {
        let token = token.ok_or(Refusal::Missing)?;
        let mut parts = token.split('.');
        let (Some(ticket), Some(expires), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Refusal::Malformed);
        };
        let ticket: QueueTicketId = ticket.parse().map_err(|_| Refusal::Malformed)?;
        let expires_at_ms: i64 = expires.parse().map_err(|_| Refusal::Malformed)?;
        let signature = hex::decode(signature).map_err(|_| Refusal::Malformed)?;
        self.admission_mac(concert, ticket, expires, email)
            .verify_slice(&signature)
            .map_err(|_| Refusal::Forged)?;
        if now.timestamp_millis() >= expires_at_ms {
            return Err(Refusal::Expired);
        }
        Ok(ticket)
    }

    /// The credential that reads `ticket` (and its stream): an HMAC of its id, so the id alone,
    /// which carries few unpredictable bits, fetches nothing, and no gateway has to store it.
    pub fn ticket_token(&self, ticket: QueueTicketId) -> String {
        hex::encode(self.ticket_mac(ticket).finalize().into_bytes())
    }

    /// Whether `token` is `ticket`'s credential, compared in constant time.
    pub fn holds(&self, ticket: QueueTicketId, token: Option<&str>) -> bool {
        token
            .and_then(|token| hex::decode(token).ok())
            .is_some_and(|token| self.ticket_mac(ticket).verify_slice(&token).is_ok())
    }

    /// What an admission token signs: the concert, the ticket, the expiry and the email.
    fn admission_mac(
        &self,
        concert: ConcertId,
        ticket: QueueTicketId,
        expires: &str,
        email: &str,
    ) -> HmacSha256 {
        self.mac(&[
            concert.uuid().as_bytes(),
            ticket.uuid().as_bytes(),
            expires.as_bytes(),
            email.as_bytes(),
        ])
    }

    fn ticket_mac(&self, ticket: QueueTicketId) -> HmacSha256 {
        self.mac(&[b"ticket", ticket.uuid().as_bytes()])
    }

    /// Puts `tickets` (the early joiners, in arrival order) in the drawn order: a shuffle in
    /// which every order is equally likely, from a generator seeded by the secret and the
    /// concert, so every gateway draws the same order and nobody outside can predict it.
    pub fn draw<T>(&self, concert: ConcertId, tickets: &mut [T]) {
        let seed: [u8; 32] = self
            .mac(&[b"draw", concert.uuid().as_bytes()])
            .finalize()
            .into_bytes()
            .into();
        tickets.shuffle(&mut rand::rngs::StdRng::from_seed(seed));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use uuid::Uuid;

    const FAN: &str = "fan@example.com";

    fn secret() -> AdmissionSecret {
        AdmissionSecret::new(&[7u8; 32]).expect("long enough")
    }

    #[test]
    fn a_token_admits_its_ticket_to_its_concert_until_it_expires() {
        let (concert, ticket) = (
            ConcertId::from(Uuid::now_v7()),
            QueueTicketId::from(Uuid::now_v7()),
        );
        let now = Utc::now();
        let token = secret().issue(concert, ticket, FAN, now.timestamp_millis() + 1_000);
        assert_eq!(secret().verify(concert, Some(&token), FAN, now), Ok(ticket));
        assert_eq!(
            secret().verify(concert, Some(&token), "other@example.com", now),
            Err(Refusal::Forged),
            "another email"
        );
        assert_eq!(
            secret().verify(Uuid::now_v7().into(), Some(&token), FAN, now),
            Err(Refusal::Forged)
        );
        let later = now + chrono::Duration::seconds(2);
        assert_eq!(
            secret().verify(concert, Some(&token), FAN, later),
            Err(Refusal::Expired)
        );
        let other = AdmissionSecret::new(&[8u8; 32]).expect("long enough");
        assert_eq!(
            other.verify(concert, Some(&token), FAN, now),
            Err(Refusal::Forged)
        );
        assert_eq!(
            secret().verify(concert, None, FAN, now),
            Err(Refusal::Missing)
        );
        assert_eq!(
            secret().verify(concert, Some("x.y.z"), FAN, now),
            Err(Refusal::Malformed)
        );
        // Moving the expiry breaks the signature.
        let (head, signature) = token.rsplit_once('.').expect("three parts");
        let (ticket_part, _) = head.split_once('.').expect("three parts");
        let stretched = format!(
            "{ticket_part}.{}.{signature}",
            now.timestamp_millis() + 60_000
        );
        assert_eq!(
            secret().verify(concert, Some(&stretched), FAN, now),
            Err(Refusal::Forged)
        );
    }

    /// Pearson's chi-square of how often each order of three came out of `draw` over 6,000
    /// concerts, against every order equally likely.
    fn chi_square(draw: impl Fn(Uuid, &mut [u8])) -> f64 {
        let mut counts: HashMap<[u8; 3], u32> = HashMap::new();
        let runs = 6_000u32;
        for n in 0..runs {
            let mut order = [0u8, 1, 2];
            draw(Uuid::from_u128(u128::from(n)), &mut order);
            *counts.entry(order).or_default() += 1;
        }
        let expected = f64::from(runs) / 6.0;
        let seen: f64 = counts
            .values()
            .map(|&count| (f64::from(count) - expected).powi(2) / expected)
            .sum();
        // Orders never drawn count too.
        seen + (6 - counts.len()) as f64 * expected
    }

    #[test]
    fn every_order_of_the_early_joiners_is_equally_likely() {
        // Five degrees of freedom: above 20.5 happens once in a thousand for a fair draw.
        let fair = chi_square(|concert, order| secret().draw(concert.into(), order));
        assert!(fair < 20.5, "chi-square {fair:.1}");
        // The same measure refuses arrival order and its reverse.
        assert!(chi_square(|_, _| {}) > 20.5);
        assert!(chi_square(|_, order| order.reverse()) > 20.5);
        // Every gateway with the secret draws the same order for a concert.
        let concert = Uuid::now_v7();
        let (mut a, mut b) = ([1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4, 5, 6, 7, 8]);
        secret().draw(concert.into(), &mut a);
        secret().draw(concert.into(), &mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn a_ticket_is_read_with_its_own_token_alone() {
        let (ticket, other) = (
            QueueTicketId::from(Uuid::now_v7()),
            QueueTicketId::from(Uuid::now_v7()),
        );
        let token = secret().ticket_token(ticket);
        assert_eq!(token.len(), 64, "256 bits");
        assert!(secret().holds(ticket, Some(&token)));
        assert!(!secret().holds(other, Some(&token)));
        assert!(!secret().holds(ticket, None));
        assert!(!secret().holds(ticket, Some(&ticket.to_string())));
        let other_secret = AdmissionSecret::new(&[8u8; 32]).expect("long enough");
        assert!(!other_secret.holds(ticket, Some(&token)));
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(AdmissionSecret::new(&[1u8; 31]).is_none());
    }
}
