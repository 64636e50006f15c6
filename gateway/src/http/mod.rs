//! The HTTP plumbing every route shares: routing, connection limits, reading bodies and
//! writing answers, rate limits, cross-origin access, and the one error type mapped to problem
//! bodies.

pub mod body;
pub mod connection;
pub mod cors;
pub mod error;
pub mod event_stream;
pub mod headers;
pub mod limits;
pub mod response;
pub mod router;
pub mod validate;
