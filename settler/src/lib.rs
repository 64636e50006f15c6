#![doc = include_str!("../README.md")]

pub mod audit;
pub mod config;
pub mod held;
pub mod http;
pub mod mail;
pub mod metrics;
pub mod payment;
pub mod settle;
pub mod startup;
pub mod store;
pub mod stream;

pub use config::SettlerConfig;
pub use startup::Application;
