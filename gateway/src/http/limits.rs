//! Protection against floods: per-address rate limits (governor), a bound on requests in flight
//! and on open event streams, and finding the client's address behind trusted proxies.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use api_types::headers::X_FORWARDED_FOR;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use http::HeaderMap;
use ipnet::IpNet;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::http::error::{ApiError, Limit};

/// Wrong credentials one address may send: this many at once, then one every
/// `60 / AUTH_FAILURES_PER_MINUTE` seconds.
const AUTH_FAILURES_PER_MINUTE: u32 = 10;

/// Per-address limiters; `None` where the limit is off.
#[derive(Debug)]
pub struct RateLimits {
    requests: Option<DefaultKeyedRateLimiter<IpAddr>>,
    bookings: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// Wrong credentials, by address; always on.
    auth_failures: DefaultKeyedRateLimiter<IpAddr>,
    /// Addresses out of wrong credentials, and until when every credential they send (a right
    /// one too) is answered 429: a guess is told nothing, so guessing runs at the limit's pace.
    locked_out: Mutex<HashMap<IpAddr, Instant>>,
    clock: DefaultClock,
}

/// `per_second` sustained, with a burst of twice that.
fn limiter(per_second: u32) -> Option<DefaultKeyedRateLimiter<IpAddr>> {
    let rate = NonZeroU32::new(per_second)?;
    let burst = rate.saturating_mul(NonZeroU32::MIN.saturating_add(1));
    Some(DefaultKeyedRateLimiter::keyed(
        Quota::per_second(rate).allow_burst(burst),
    ))
}

impl RateLimits {
    pub fn new(requests_per_second: u32, bookings_per_second: u32) -> Self {
        let failures = NonZeroU32::new(AUTH_FAILURES_PER_MINUTE).unwrap_or(NonZeroU32::MIN);
        Self {
            requests: limiter(requests_per_second),
            bookings: limiter(bookings_per_second),
            auth_failures: DefaultKeyedRateLimiter::keyed(Quota::per_minute(failures)),
            locked_out: Mutex::new(HashMap::new()),
            clock: DefaultClock::default(),
        }
    }

    /// Runs `check` of `client`'s credentials unless the address is locked out; a check that
    /// answers [`ApiError::Unauthorized`] counts against the address.
    pub fn authenticate<T>(
        &self,
        client: IpAddr,
        check: impl FnOnce() -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let now = Instant::now();
        let mut locked_out = self
            .locked_out
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(until) = locked_out.get(&client).filter(|until| **until > now) {
            crate::metrics::rate_limited(Limit::Authentication.name());
            return Err(ApiError::RateLimited {
                limit: Limit::Authentication,
                retry_after: *until - now,
            });
        }
        let checked = check();
        if matches!(checked, Err(ApiError::Unauthorized))
            && let Err(refused) = self.check(Limit::Authentication, client)
        {
            if let ApiError::RateLimited { retry_after, .. } = refused {
                locked_out.insert(client, now + retry_after);
            }
            return Err(refused);
        }
        checked
    }

    /// Takes one request of `client` from `limit`, or says how long to wait.
    pub fn check(&self, limit: Limit, client: IpAddr) -> Result<(), ApiError> {
        let limiter = match limit {
            Limit::Requests => self.requests.as_ref(),
            Limit::Bookings => self.bookings.as_ref(),
            Limit::Authentication => Some(&self.auth_failures),
            // Counted in Postgres, so every gateway counts alike (`pg_store::accounts`).
            Limit::SignInLinks => None,
        };
        let Some(limiter) = limiter else {
            return Ok(());
        };
        limiter.check_key(&client).map_err(|not_until| {
            crate::metrics::rate_limited(limit.name());
            ApiError::RateLimited {
                limit,
                retry_after: not_until.wait_time_from(self.clock.now()),
            }
        })
    }

    /// Forgets addresses whose limit has fully recovered, so a flood of distinct addresses
    /// costs memory only for as long as their limits matter (about two seconds).
    pub fn forget_idle(&self) {
        for limiter in [&self.requests, &self.bookings]
            .into_iter()
            .flatten()
            .chain([&self.auth_failures])
        {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        let now = Instant::now();
        self.locked_out
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|_, until| *until > now);
    }

    /// Addresses currently tracked, across both limits.
    pub fn tracked(&self) -> usize {
        [&self.requests, &self.bookings]
            .into_iter()
            .flatten()
            .map(governor::RateLimiter::len)
            .sum()
    }
}

/// How often idle addresses are forgotten.
pub const FORGET_EVERY: Duration = Duration::from_secs(1);

/// The client's address: the peer's, or, when the peer is a trusted proxy, the last address in
/// `X-Forwarded-For` that is not a trusted proxy itself.
pub fn client_address(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let peer = peer.ip();
    if !is_trusted(&peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|item| item.trim().parse().ok())
        .collect();
    forwarded
        .iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .or(forwarded.first())
        .copied()
        .unwrap_or(peer)
}

/// A bound on work in flight: a permit per request (or per open stream).
#[derive(Debug, Clone)]
pub struct Capacity(Arc<Semaphore>);

impl Capacity {
    pub fn new(permits: usize) -> Self {
        Self(Arc::new(Semaphore::new(permits)))
    }

    /// A permit, when one is free.
    pub async fn wait(&self) -> OwnedSemaphorePermit {
        // The semaphore is never closed, so acquiring only waits.
        match Arc::clone(&self.0).acquire_owned().await {
            Ok(permit) => permit,
            Err(_) => std::future::pending().await,
        }
    }

    /// A permit, or 503 at once when all are taken: shedding load beats queueing it.
    pub fn admit(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        Arc::clone(&self.0).try_acquire_owned().map_err(|_| {
            crate::metrics::shed();
            ApiError::Overloaded
        })
    }

    /// A request's slot among those in flight, or 503 at once when all are taken.
    pub fn slot(&self) -> Result<Slot, ApiError> {
        Ok(Slot {
            _permit: self.admit()?,
            _in_flight: crate::metrics::InFlight::start(),
        })
    }
}

/// A request's place among those in flight, counted while it lives. A handler that goes on to
/// wait (a booking waiting for its settlement) gives it up first.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    _in_flight: crate::metrics::InFlight,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(forwarded: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(X_FORWARDED_FOR, http::HeaderValue::from_static(forwarded));
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        let proxy = SocketAddr::from(([10, 0, 0, 1], 4000));
        let stranger = SocketAddr::from(([203, 0, 113, 9], 4000));
        assert_eq!(
            client_address(stranger, &headers("198.51.100.1"), &trusted),
            ip("203.0.113.9")
        );
        assert_eq!(
            client_address(proxy, &headers("198.51.100.1"), &trusted),
            ip("198.51.100.1")
        );
        // A client cannot hide behind an address it prepends itself.
        assert_eq!(
            client_address(proxy, &headers("1.2.3.4, 198.51.100.1, 10.0.0.2"), &trusted),
            ip("198.51.100.1")
        );
        assert_eq!(
            client_address(proxy, &HeaderMap::new(), &trusted),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn a_limit_allows_its_burst_then_refuses_with_a_wait() {
        let limits = RateLimits::new(5, 0);
        let client = ip("192.0.2.1");
        for _ in 0..10 {
            assert!(limits.check(Limit::Requests, client).is_ok());
        }
        match limits.check(Limit::Requests, client) {
            Err(ApiError::RateLimited { retry_after, .. }) => {
                assert!(retry_after <= Duration::from_millis(200));
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(
            limits.check(Limit::Requests, ip("192.0.2.2")).is_ok(),
            "another address is spared"
        );
        assert!(
            limits.check(Limit::Bookings, client).is_ok(),
            "an off limit never refuses"
        );
    }
}
