//! Integration tests: one binary, one shared PostgreSQL (see `support`).
//!
//! Each module covers one area of the relay; every test starts its own
//! in-process proxy against the shared origin unless it says otherwise.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod support;

mod binary_cli;
mod relay_auth;
mod relay_cancel;
mod relay_copy;
mod relay_edge;
mod relay_faults;
mod relay_golden;
mod relay_lifecycle;
mod relay_load;
mod relay_session;
mod relay_startup;

mod catalog;

mod cache_behaviour;
mod cache_exact;
mod cache_hits;
mod cache_redteam;

mod cdc;
mod cdc_redteam;

mod joins;

mod parameter_types;
mod verify;
