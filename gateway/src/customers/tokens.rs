//! Customers' access tokens: JWTs (HS256) of 15 minutes, signed with `AUTH_SIGNING_KEY`, naming
//! the customer, their email and their session. Verified without Postgres, so a signed-in
//! booking costs one HMAC more than a guest's.

use std::time::Duration;

use http::HeaderMap;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use domain::values::Email;

use crate::http::error::ApiError;
use crate::http::headers::bearer;

/// How long an access token works.
pub const ACCESS_TTL: Duration = Duration::from_secs(15 * 60);
/// Who issues the tokens, and the one audience they are for.
const ISSUER: &str = "tickets";
const AUDIENCE: &str = "tickets-api";

/// What an access token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The customer.
    pub sub: Uuid,
    pub email: String,
    /// The session it was issued in.
    pub sid: Uuid,
    pub iss: String,
    pub aud: String,
    pub iat: u64,
    pub exp: u64,
}

/// A verified access token's customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIn {
    pub customer_id: Uuid,
    pub email: Email,
    pub session_id: Uuid,
}

pub struct AccessTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for AccessTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessTokens(..)")
    }
}

impl AccessTokens {
    /// Tokens signed and verified with `key`; refused when the key is empty.
    pub fn new(key: &[u8]) -> Result<Self, jsonwebtoken::errors::Error> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // Every gateway signs with the same key and reads the same clock, near enough.
        validation.leeway = 5;
        Ok(Self {
            encoding: EncodingKey::from_secret(key)?,
            decoding: DecodingKey::from_secret(key)?,
            validation,
        })
    }

    /// A key of this process alone: tokens it signs are refused by any other gateway.
    pub fn random() -> Result<Self, jsonwebtoken::errors::Error> {
        Self::new(&rand::random::<[u8; 32]>())
    }

    /// A token for `signed_in`, valid [`ACCESS_TTL`] from now.
    pub fn issue(&self, signed_in: &SignedIn) -> Result<String, jsonwebtoken::errors::Error> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: signed_in.customer_id,
            email: signed_in.email.as_str().to_owned(),
            sid: signed_in.session_id,
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            iat: now,
            exp: now + ACCESS_TTL.as_secs(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
    }

    /// The customer an access token in `headers` names; `None` without `Authorization`. A
    /// credential that is not a valid access token is refused, never taken for a guest.
    pub fn from_headers(&self, headers: &HeaderMap) -> Result<Option<SignedIn>, ApiError> {
        match bearer(headers) {
            None => Ok(None),
            Some(token) => self.verify(token).map(Some).ok_or(ApiError::Unauthorized),
        }
    }

    /// The customer of `token`, if this key signed it for this audience and it has not expired.
    pub fn verify(&self, token: &str) -> Option<SignedIn> {
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .ok()?
            .claims;
        Some(SignedIn {
            customer_id: claims.sub,
            email: Email::parse(&claims.email).ok()?,
            session_id: claims.sid,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn someone() -> SignedIn {
        SignedIn {
            customer_id: Uuid::now_v7(),
            email: Email::parse("ada@example.com").expect("email"),
            session_id: Uuid::now_v7(),
        }
    }

    #[test]
    fn a_token_verifies_with_its_key_alone() {
        let tokens = AccessTokens::new(b"k1-0123456789abcdef0123456789abcdef").expect("a key");
        let who = someone();
        let token = tokens.issue(&who).expect("signed");
        assert_eq!(tokens.verify(&token), Some(who));
        let other = AccessTokens::new(b"k2-0123456789abcdef0123456789abcdef").expect("a key");
        assert_eq!(other.verify(&token), None);
        let mut forged = token.clone();
        forged.pop();
        assert_eq!(tokens.verify(&forged), None);
        assert_eq!(tokens.verify("not.a.token"), None);
    }
}
