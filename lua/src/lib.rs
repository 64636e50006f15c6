#![doc = include_str!("../README.md")]

mod connection;
pub mod error;
pub mod keys;
pub mod recovery;
pub mod scripts;
pub mod stock;

pub use connection::connect;
