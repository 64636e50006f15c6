//! The live feed: one pub/sub subscription fanned out to every local event stream (the streams
//! themselves are handlers, `api::events`), and the stock snapshot they share.

pub mod hub;
pub mod snapshots;
