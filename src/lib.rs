//! pgcache: a caching proxy for PostgreSQL.
//!
//! # Layout
//!
//! - [`config`]: TOML file + environment + CLI flags → validated [`config::Config`].
//! - [`cli`]: the command line (`pgcache`, `pgcache demo`, `pgcache check`).
//! - [`protocol`]: sans-IO wire codec — framing and the messages the proxy
//!   inspects or writes itself. No sockets, no tokio.
//! - [`proxy`]: listener, per-client session state machine, cancel-key map,
//!   graceful shutdown. All client and origin socket I/O lives here.
//! - [`admin`]: the admin HTTP endpoint (`/metrics`, `/healthz`) and metrics.
//! - [`check`]: `pgcache check`, the origin's CDC prerequisites with fixes.
//! - [`demo`]: `pgcache demo`, a throwaway origin + proxy + workload.
//! - [`logging`]: tracing subscriber set-up.
//! - [`signal`]: SIGINT/SIGTERM as a shutdown future.
//!
//! Caching, SQL analysis and CDC arrive in later modules (see
//! `docs/architecture.md`); today the proxy relays every session unchanged.

pub mod admin;
pub mod check;
pub mod cli;
pub mod config;
pub mod demo;
pub mod logging;
pub mod protocol;
pub mod proxy;
pub mod signal;
