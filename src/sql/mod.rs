//! SQL analysis: statement text → statement kinds, a cacheability verdict
//! with a reason, and for cacheable queries a shape and parameter values.
//!
//! A pipeline of pure passes (no I/O, no tokio; ADR 004–006):
//!
//! 1. parse with `pg_query` (PostgreSQL's own parser);
//! 2. `convert`: protobuf tree → our [`ast`], classifying non-queries by
//!    [`kind`] and lifting literals of `WHERE`/`LIMIT`/`OFFSET` to
//!    parameters ([`shape`]);
//! 3. `check` and `typing`: resolve names against a [`catalog::Snapshot`]
//!    and the session's search_path ([`Context`]), type expressions where
//!    certain, and decide cacheable or not with a [`Reason`];
//! 4. [`Analyzer`] caches the context-free part by exact text and by scanner
//!    key (`normalize`), so a known shape costs a scan, not a parse.
//!
//! [`SearchPathTracker`] follows a session's search_path for the session
//! layer. Entry points: [`Analyzer::analyze`] (cached, shared by sessions),
//! [`analyze_uncached`] and [`parse`].
//!
//! This module owns the decision "cacheable or not"; it must never guess
//! (whatever it does not fully understand is not cacheable), never do I/O,
//! and never panic on any input.
//!
//! [`catalog::Snapshot`]: crate::catalog::Snapshot

mod analyzer;
pub mod ast;
mod check;
mod convert;
pub mod deps;
pub mod filter;
pub mod joined;
pub mod kind;
pub mod layout;
mod normalize;
pub mod reason;
pub mod rowkey;
mod session;
pub mod shape;
mod typing;
mod writes;

#[cfg(test)]
mod tests;

pub use analyzer::{
    Analysis, AnalysisPath, Analyzer, Cacheable, Session, Verdict, analyze_uncached, parse,
};
pub use check::{Context, Maintenance, lookup_table};
pub use kind::StatementKind;
pub use reason::Reason;
pub use session::SearchPathTracker;
pub use shape::{ParamValue, Shape};
pub use writes::{Writes, mentions_any, writes};
