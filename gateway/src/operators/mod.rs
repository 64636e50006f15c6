//! Operators: the holder of `ADMIN_TOKEN` (the bootstrap admin) and API keys, each with one role.
//! A key's secret is shown once and kept as its SHA-256; every gateway authorizes from the live
//! keys it re-reads from Postgres every [`RELOAD_INTERVAL`], so a revoked key stops working on all
//! of them within two intervals.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use http::HeaderMap;
use sqlx::PgPool;
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use domain::roles::Role;
use pg_store::api_keys::{self, ApiKey, NewKey, Revoked};
use pg_store::audit::Actor;
use runtime::config::Secret;

use crate::http::error::ApiError;
use crate::http::headers::bearer;
use crate::secrets::{new_token, token_hash};

/// How often the live keys are re-read.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(1);
/// How old the last good read may be before keys are refused: a gateway cut off from Postgres
/// must not go on admitting keys revoked through another.
const STALE_AFTER: Duration = Duration::from_secs(10);
/// What every key's secret starts with, so one is recognisable in a leaked config.
const SECRET_PREFIX: &str = "tk_";

/// Who an authorized request was made by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    /// As the audit log names them.
    pub actor: Actor,
    pub role: Role,
}

/// The live keys, by the hash of their secret, and when they were read.
#[derive(Debug, Default)]
struct KeyRing {
    by_hash: HashMap<[u8; 32], Operator>,
    read_at: Option<Instant>,
}

/// What authorizing operators and managing their keys needs.
#[derive(Debug)]
pub struct Operators {
    pub db: PgPool,
    admin_token: Option<Secret>,
    /// Analytics are open to anyone (`ANALYTICS_PUBLIC`), or to `analyst` keys.
    pub analytics_public: bool,
    ring: RwLock<KeyRing>,
}

impl Operators {
    pub fn new(db: PgPool, admin_token: Option<Secret>, analytics_public: bool) -> Self {
        Self {
            db,
            admin_token,
            analytics_public,
            ring: RwLock::default(),
        }
    }

    /// The operator whose credential `headers` carry, if their role covers `needed`: 401 for no or
    /// an unknown credential, 403 for a role that does not cover it, 503 while the keys are not
    /// known to be current.
    pub fn authorize(&self, headers: &HeaderMap, needed: Role) -> Result<Operator, ApiError> {
        let given = bearer(headers).unwrap_or_default();
        if given.is_empty() {
            return Err(ApiError::Unauthorized);
        }
        let operator = match &self.admin_token {
            Some(token) if bool::from(given.as_bytes().ct_eq(token.expose().as_bytes())) => {
                Operator {
                    actor: Actor::admin_token(),
                    role: Role::Admin,
                }
            }
            // The lookup is by a hash of the secret, so its timing tells nothing of the secret.
            _ => self.key(&token_hash(given))?,
        };
        match operator.role.covers(needed) {
            true => Ok(operator),
            false => Err(ApiError::Forbidden { needed }),
        }
    }

    fn key(&self, hash: &[u8; 32]) -> Result<Operator, ApiError> {
        let ring = self
            .ring
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let current = ring.read_at.is_some_and(|at| at.elapsed() < STALE_AFTER);
        if !current {
            return Err(ApiError::KeysUnknown);
        }
        ring.by_hash
            .get(hash)
            .cloned()
            .ok_or(ApiError::Unauthorized)
    }

    /// Re-reads the live keys.
    pub async fn reload(&self) -> Result<(), sqlx::Error> {
        let mut by_hash = HashMap::new();
        for key in api_keys::live(&self.db).await? {
            let (Ok(hash), Ok(role)) = (<[u8; 32]>::try_from(key.secret_hash), key.role.parse())
            else {
                tracing::error!(key = %key.id, "an API key's row is not one this gateway reads");
                continue;
            };
            let actor = Actor::api_key(key.id);
            by_hash.insert(hash, Operator { actor, role });
        }
        let mut ring = self
            .ring
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *ring = KeyRing {
            by_hash,
            read_at: Some(Instant::now()),
        };
        Ok(())
    }

    /// Re-reads the live keys every [`RELOAD_INTERVAL`] until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(RELOAD_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            if let Err(error) = self.reload().await {
                tracing::warn!(%error, "reading the API keys failed; keeping the last ones");
            }
        }
    }

    /// Makes a key of `role` named `name`, recorded as made by `by`; its secret is in the
    /// answer and nowhere else.
    pub async fn create(
        &self,
        by: &Operator,
        name: &str,
        role: Role,
    ) -> Result<(ApiKey, String), ApiError> {
        let secret = format!("{SECRET_PREFIX}{}", new_token());
        let key = NewKey {
            name,
            role: role.as_str(),
            secret_hash: token_hash(&secret),
        };
        let created = api_keys::create(&self.db, key, &by.actor).await?;
        self.reload_now().await;
        Ok((created, secret))
    }

    /// Revokes key `id`, recorded as revoked by `by` the first time.
    pub async fn revoke(&self, by: &Operator, id: Uuid) -> Result<ApiKey, ApiError> {
        let revoked = match api_keys::revoke(&self.db, id, &by.actor).await? {
            Revoked::Now(key) | Revoked::Already(key) => key,
            Revoked::Unknown => return Err(ApiError::ApiKeyNotFound(id)),
        };
        self.reload_now().await;
        Ok(revoked)
    }

    /// This gateway sees its own change at once; the others within [`RELOAD_INTERVAL`].
    async fn reload_now(&self) {
        if let Err(error) = self.reload().await {
            tracing::warn!(%error, "reading the API keys failed; the next reload reads them");
        }
    }
}

#[cfg(test)]
mod tests {
    use http::header::AUTHORIZATION;

    use super::*;

    const ADMIN: &str = "bootstrap-admin-token-0123456789abcdef";

    fn operators() -> Operators {
        let db = PgPool::connect_lazy("postgres://127.0.0.1:1/none").expect("a lazy pool");
        Operators::new(db, Some(ADMIN.into()), true)
    }

    fn bearer_of(secret: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = format!("Bearer {secret}").parse().expect("a header");
        headers.insert(AUTHORIZATION, value);
        headers
    }

    /// A ring holding one scanner key, read `age` ago.
    fn with_scanner(operators: &Operators, secret: &str, age: Duration) {
        let scanner = Operator {
            actor: Actor::api_key(Uuid::nil()),
            role: Role::Scanner,
        };
        let mut ring = operators.ring.write().expect("the ring");
        *ring = KeyRing {
            by_hash: HashMap::from([(token_hash(secret), scanner)]),
            read_at: Instant::now().checked_sub(age),
        };
    }

    #[tokio::test]
    async fn a_key_opens_what_its_role_covers_and_nothing_else() {
        let operators = operators();
        with_scanner(&operators, "tk_gate", Duration::ZERO);
        let gate = bearer_of("tk_gate");
        let scanner = operators.authorize(&gate, Role::Scanner);
        assert_eq!(scanner.map(|o| o.role).ok(), Some(Role::Scanner));
        assert!(matches!(
            operators.authorize(&gate, Role::BoxOffice),
            Err(ApiError::Forbidden {
                needed: Role::BoxOffice
            })
        ));
        assert!(matches!(
            operators.authorize(&bearer_of("tk_other"), Role::Scanner),
            Err(ApiError::Unauthorized)
        ));
        assert!(matches!(
            operators.authorize(&HeaderMap::new(), Role::Scanner),
            Err(ApiError::Unauthorized)
        ));
        let admin = operators.authorize(&bearer_of(ADMIN), Role::Scanner);
        assert_eq!(admin.map(|o| o.actor).ok(), Some(Actor::admin_token()));
    }

    #[tokio::test]
    async fn keys_not_read_lately_are_refused_while_the_bootstrap_token_works() {
        let operators = operators();
        with_scanner(&operators, "tk_gate", STALE_AFTER + Duration::from_secs(1));
        assert!(matches!(
            operators.authorize(&bearer_of("tk_gate"), Role::Scanner),
            Err(ApiError::KeysUnknown)
        ));
        assert!(operators.authorize(&bearer_of(ADMIN), Role::Admin).is_ok());
        let never_read = self::operators();
        assert!(matches!(
            never_read.authorize(&bearer_of("tk_gate"), Role::Scanner),
            Err(ApiError::KeysUnknown)
        ));
    }
}
