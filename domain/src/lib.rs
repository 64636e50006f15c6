#![doc = include_str!("../README.md")]

pub mod ids;
pub mod money;
pub mod record;
pub mod roles;
pub mod values;
