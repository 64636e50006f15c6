//! Payment: the provider behind a trait, and the simulated one this system ships with.
//!
//! The booking id is the payment's idempotency key: charging the same booking again returns the
//! first result and never charges twice, so a booking redelivered after a crash is safe to charge.
//! A booking that cannot be kept after its charge (it can never be written, or Redis lost it and
//! its tickets are gone) is refunded, also by booking id; a refunded booking charged again answers
//! `Refunded`, never a second charge.

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::sync::Mutex;
use std::time::Duration;

use domain::ids::BookingId;
use domain::money::{Currency, Money};
use rand::Rng;

/// What the provider decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentOutcome {
    Approved {
        reference: String,
    },
    Declined {
        reason: String,
    },
    /// The booking's charge was refunded (or voided before it was made).
    Refunded,
}

/// The provider could not answer; the charge may be retried with the same booking id.
#[derive(Debug, thiserror::Error)]
#[error("payment provider unavailable: {0}")]
pub struct PaymentError(pub String);

pub trait PaymentProvider: Send + Sync + std::fmt::Debug + 'static {
    /// Charges `amount` for `booking_id`; the same id always gets the same outcome, charged once.
    fn charge(
        &self,
        booking_id: BookingId,
        amount: Money,
        currency: Currency,
    ) -> impl Future<Output = Result<PaymentOutcome, PaymentError>> + Send;

    /// Refunds the booking's charge, or voids it if none was made; repeating it changes nothing.
    fn refund(
        &self,
        booking_id: BookingId,
    ) -> impl Future<Output = Result<(), PaymentError>> + Send;
}

/// A provider that waits a random latency and declines a share of payments. Which ones is decided
/// by the booking id alone, as one provider serving every settler would: two settler processes
/// charging the same booking get the same answer.
#[derive(Debug)]
pub struct SimulatedProvider {
    latency_ms: RangeInclusive<u64>,
    failure_rate: f64,
    /// Outcomes by booking id: the provider's own idempotency records.
    charges: Mutex<HashMap<BookingId, PaymentOutcome>>,
    /// Approved charges refunded since.
    refunded: Mutex<usize>,
}

impl SimulatedProvider {
    pub fn new(latency_ms: RangeInclusive<u64>, failure_rate: f64) -> Self {
        Self {
            latency_ms,
            failure_rate,
            charges: Mutex::default(),
            refunded: Mutex::default(),
        }
    }

    /// Distinct bookings charged (approved or declined) so far.
    pub fn charges(&self) -> usize {
        self.lock()
            .values()
            .filter(|outcome| **outcome != PaymentOutcome::Refunded)
            .count()
            + self.refunded_charges()
    }

    /// Bookings whose approved charge was refunded.
    pub fn refunded_charges(&self) -> usize {
        match self.refunded.lock() {
            Ok(guard) => *guard,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<BookingId, PaymentOutcome>> {
        match self.charges.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// Where `booking_id` falls in [0, 1): the same in every process (SipHash with fixed keys).
fn share_of(booking_id: BookingId) -> f64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    booking_id.hash(&mut hasher);
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

impl PaymentProvider for SimulatedProvider {
    async fn charge(
        &self,
        booking_id: BookingId,
        _amount: Money,
        _currency: Currency,
    ) -> Result<PaymentOutcome, PaymentError> {
        let latency = rand::rng().random_range(self.latency_ms.clone());
        let declined = share_of(booking_id) < self.failure_rate;
        tokio::time::sleep(Duration::from_millis(latency)).await;
        let outcome = if declined {
            PaymentOutcome::Declined {
                reason: "card declined".to_owned(),
            }
        } else {
            PaymentOutcome::Approved {
                reference: format!("sim_{}", booking_id.uuid().simple()),
            }
        };
        Ok(self.lock().entry(booking_id).or_insert(outcome).clone())
    }

    async fn refund(&self, booking_id: BookingId) -> Result<(), PaymentError> {
        let previous = self.lock().insert(booking_id, PaymentOutcome::Refunded);
        if matches!(previous, Some(PaymentOutcome::Approved { .. })) {
            match self.refunded.lock() {
                Ok(mut count) => *count += 1,
                Err(poisoned) => *poisoned.into_inner() += 1,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[tokio::test]
    async fn the_same_booking_gets_its_first_outcome_and_one_charge() {
        let provider = SimulatedProvider::new(0..=0, 0.5);
        let id = BookingId::from(Uuid::now_v7());
        let price: Money = "10".parse().expect("money");
        let first = provider
            .charge(id, price, Currency::Usd)
            .await
            .expect("answer");
        for _ in 0..20 {
            assert_eq!(
                provider
                    .charge(id, price, Currency::Usd)
                    .await
                    .expect("answer"),
                first
            );
        }
        assert_eq!(provider.charges(), 1);
    }

    #[tokio::test]
    async fn a_refund_is_made_once_and_a_refunded_booking_is_never_charged_again() {
        let provider = SimulatedProvider::new(0..=0, 0.0);
        let price: Money = "10".parse().expect("money");
        let (charged, voided) = (
            BookingId::from(Uuid::now_v7()),
            BookingId::from(Uuid::now_v7()),
        );
        assert!(matches!(
            provider.charge(charged, price, Currency::Usd).await,
            Ok(PaymentOutcome::Approved { .. })
        ));
        for _ in 0..3 {
            provider.refund(charged).await.expect("refunded");
            provider.refund(voided).await.expect("voided");
        }
        assert_eq!(provider.refunded_charges(), 1);
        for id in [charged, voided] {
            assert_eq!(
                provider.charge(id, price, Currency::Usd).await.ok(),
                Some(PaymentOutcome::Refunded)
            );
        }
        assert_eq!(provider.charges(), 1, "one charge was ever made");
    }

    #[tokio::test]
    async fn every_provider_gives_a_booking_the_same_answer() {
        let price: Money = "10".parse().expect("money");
        let (one, other) = (
            SimulatedProvider::new(0..=0, 0.5),
            SimulatedProvider::new(0..=0, 0.5),
        );
        let mut declined = 0;
        for _ in 0..200 {
            let id = BookingId::from(Uuid::now_v7());
            let answer = one.charge(id, price, Currency::Usd).await.expect("answer");
            assert_eq!(
                std::mem::discriminant(&answer),
                std::mem::discriminant(
                    &other
                        .charge(id, price, Currency::Usd)
                        .await
                        .expect("answer")
                )
            );
            declined += usize::from(matches!(answer, PaymentOutcome::Declined { .. }));
        }
        assert!((60..=140).contains(&declined), "about half: {declined}");
    }

    #[tokio::test]
    async fn the_failure_rate_is_the_share_declined() {
        let price: Money = "10".parse().expect("money");
        let all = SimulatedProvider::new(0..=0, 1.0);
        let none = SimulatedProvider::new(0..=0, 0.0);
        for _ in 0..50 {
            let declined = all
                .charge(BookingId::from(Uuid::now_v7()), price, Currency::Usd)
                .await
                .expect("answer");
            assert!(matches!(declined, PaymentOutcome::Declined { .. }));
            let approved = none
                .charge(BookingId::from(Uuid::now_v7()), price, Currency::Usd)
                .await
                .expect("answer");
            assert!(matches!(approved, PaymentOutcome::Approved { .. }));
        }
    }
}
