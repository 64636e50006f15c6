#![doc = include_str!("../README.md")]

pub mod abuse;
pub mod pressure;
pub mod services;
