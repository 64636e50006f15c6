#![doc = include_str!("../README.md")]

pub mod analytics;
pub mod api;
pub mod catalog;
pub mod config;
pub mod customers;
pub mod http;
pub mod live;
pub mod losses;
pub mod metrics;
pub mod operators;
pub mod refresh;
pub mod routes;
pub mod secrets;
pub mod startup;
pub mod state;
pub mod waiting_room;
pub mod web;

pub use config::GatewayConfig;
pub use startup::Application;
