#![doc = include_str!("../README.md")]

pub mod admin;
pub mod analytics;
pub mod body;
pub mod bookings;
pub mod catalog;
pub mod concerts;
pub mod config;
pub mod connection;
pub mod error;
pub mod health;
pub mod hub;
pub mod limits;
pub mod losses;
pub mod metrics;
pub mod refresh;
pub mod router;
pub mod seed;
pub mod sse;
pub mod startup;
pub mod state;
pub mod validate;
pub mod web;

pub use config::GatewayConfig;
pub use startup::Application;
