//! pgcache: a caching proxy for PostgreSQL.
//!
//! # Layout
//!
//! - [`config`]: TOML file + environment + CLI flags → validated [`config::Config`].
//! - [`cli`]: the command line (`pgcache`, `pgcache demo`, `pgcache check`,
//!   `pgcache verify`).
//! - [`protocol`]: sans-IO wire codec — framing and the messages the proxy
//!   inspects or writes itself. No sockets, no tokio.
//! - [`proxy`]: listener, per-client session state machine, cancel-key map,
//!   graceful shutdown. All client and origin socket I/O lives here.
//! - [`sql`]: statement analysis — pg_query parse → own AST → statement kind,
//!   cacheability verdict with a reason, query shape and parameters. Pure, no tokio.
//! - [`catalog`]: the origin's catalog snapshot (tables, columns, keys, types,
//!   function volatility, publication) and `search_path` resolution.
//! - [`cdc`]: change data capture — pgoutput decoder and replication-stream
//!   framing (pure, no tokio); later the replication client and the applier.
//! - [`admin`]: the admin HTTP endpoint (`/metrics`, `/healthz`) and metrics.
//! - [`check`]: `pgcache check`, the origin's CDC prerequisites with fixes.
//! - [`demo`]: `pgcache demo`, a throwaway origin + proxy + workload.
//! - [`logging`]: tracing subscriber set-up.
//! - [`signal`]: SIGINT/SIGTERM as a shutdown future.
//! - [`verify`]: `pgcache verify`, a seeded differential tester comparing
//!   reads through a running proxy with the origin under concurrent writes
//!   and faults.
//!
//! - [`cache`]: replies captured from the origin, keyed by request and
//!   session-settings class; generations for invalidation, admission, role
//!   grants, the memory bound (pure, no tokio; ADR 011).
//!
//! The proxy relays every session and, with `cache.mode` on, answers
//! repeated cacheable statements from the cache (`proxy::cached`). The
//! pgoutput decoder is built and tested but not yet wired (see
//! `docs/architecture.md`).

pub mod admin;
pub mod cache;
pub mod catalog;
pub mod cdc;
pub mod check;
pub mod cli;
pub mod config;
pub mod demo;
pub mod logging;
pub mod protocol;
pub mod proxy;
mod rng;
pub mod signal;
pub mod sql;
pub mod verify;
