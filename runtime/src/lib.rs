#![doc = include_str!("../README.md")]

pub mod config;
pub mod health;
pub mod process;
pub mod signal;
pub mod telemetry;
