#![doc = include_str!("../README.md")]

pub mod config;
pub mod finalize;
pub mod http;
pub mod metrics;
pub mod payment;
pub mod reconcile;
pub mod settle;
pub mod startup;
pub mod store;
pub mod stream;

pub use config::SettlerConfig;
pub use startup::Application;
