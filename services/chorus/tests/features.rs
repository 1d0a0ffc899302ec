//! The chat features against the standalone wiring (the suite is in suites/features.rs).

mod common;

mod wiring {
    pub use crate::common::start_full;
}

#[path = "suites/features.rs"]
mod features;
