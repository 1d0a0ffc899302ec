//! The `chorus` binary's library half: command-line configuration and the wiring of each mode.
//! `main.rs` only parses arguments, sets up logging and calls in here; tests start the same
//! wiring in-process.

pub mod cli;
pub mod client;
pub mod cluster;
pub mod standalone;
