#![doc = include_str!("../README.md")]

pub mod pressure;
pub mod services;
