//! Gateway integration tests against real Redis and Postgres; each test has its own database,
//! key prefix and port.

mod api_keys;
mod audit_log;
mod auth;
mod bookings;
mod catalog;
mod clients;
mod config;
mod event_streams;
mod failover;
mod hostile;
mod idempotency;
mod live;
mod replication;
mod resilience;
mod sessions;
mod validation;
mod waiting_room;
