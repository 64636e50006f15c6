#![doc = include_str!("../README.md")]

pub mod config;
pub mod db;
pub mod domain;
pub mod health;
pub mod ids;
pub mod keys;
pub mod money;
pub mod record;
pub mod recovery;
pub mod redis;
pub mod scripts;
pub mod signal;
pub mod stock;
pub mod store;
pub mod telemetry;
