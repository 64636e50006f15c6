//! Settler integration tests against real Redis and Postgres: bookings are made through a real
//! gateway on port 0, each test with its own database and key prefix; the payment provider is
//! the simulated one, made deterministic (no latency, approve all or decline all).

mod analytics;
mod commands;
mod crashes;
mod faults;
mod live;
mod mail;
mod outage;
mod poison;
mod prefer;
mod redis_loss;
mod settlement;
mod stream;
