//! The HTTP plumbing every route shares, knowing no route and no handler: connection limits,
//! reading bodies and writing answers, serving event streams, rate limits, cross-origin access,
//! and the one error type mapped to problem bodies.

pub mod body;
pub mod connection;
pub mod cors;
pub mod error;
pub mod event_stream;
pub mod headers;
pub mod limits;
pub mod response;
pub mod validate;
