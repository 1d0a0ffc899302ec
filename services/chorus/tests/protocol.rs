//! Protocol v1 against the standalone wiring (the suite is in suites/protocol.rs).

mod common;

mod wiring {
    pub use crate::common::{start, start_with};
}

#[path = "suites/protocol.rs"]
mod protocol;
