//! The handlers, one file per resource, each with the types of its requests and answers.

pub mod admin;
pub mod analytics;
pub mod api_keys;
pub mod audit_log;
pub mod auth;
pub mod bookings;
pub mod concerts;
pub mod docs;
pub mod events;
pub mod health;
pub mod me;
pub mod problems;
pub mod queue;
