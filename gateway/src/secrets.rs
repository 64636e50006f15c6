//! The random tokens the gateway hands out (sign-in links, refresh tokens, API keys' secrets) and
//! what Postgres keeps of each: its SHA-256, never the token.

use sha2::{Digest, Sha256};

/// 256 random bits, as hex.
pub fn new_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// What Postgres keeps of a token. A token has 256 random bits, so one fast hash is enough: there
/// is nothing to guess from it.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}
