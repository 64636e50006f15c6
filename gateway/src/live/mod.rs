//! The live streams: one pub/sub subscription fanned out to every local event stream.

pub mod hub;
pub mod snapshots;
pub mod sse;
