//! Following a session's `search_path` from what passes through the proxy.
//!
//! The session layer feeds every statement the origin executed successfully
//! into [`SearchPathTracker::executed`]; [`SearchPathTracker::current`] is
//! the path to resolve names with, or `None` when it cannot be known (then
//! nothing is cacheable for the session).
//!
//! `"$user"` in the path is the *current* user, which `SET ROLE` and `SET
//! SESSION AUTHORIZATION` change (and with it which schemas are searched and
//! what the session may read), so after either the path is unknown until
//! `DISCARD ALL` (which resets the role; `RESET ALL` does not).
//!
//! Known limits, all resolved towards "unknown": a `SET` inside a
//! transaction block (it may be rolled back or be transaction-local) makes
//! the path unknown until the next `SET`/`RESET` outside one; `set_config`
//! in a statement's text, `DO`, `CALL` and `EXECUTE` make it unknown; a
//! function that calls `set_config(…, false)` internally is not detected
//! (PostgreSQL 18 reports `search_path` changes in `ParameterStatus`, see
//! [`SearchPathTracker::reported`]).

use crate::catalog::SearchPath;

use super::kind::{SetValue, StatementKind};

/// A session's `search_path` as far as the proxy can tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchPathTracker {
    /// The value `RESET` returns to: from the startup packet, or learned.
    /// `None` when the session started with a default the proxy does not
    /// know (role and database settings can set one).
    reset_value: Option<SearchPath>,
    current: Option<SearchPath>,
    /// `SET ROLE` or `SET SESSION AUTHORIZATION` ran (perhaps rolled back):
    /// the current user is not the one the session started with.
    role_changed: bool,
}

impl SearchPathTracker {
    /// `startup` is the startup packet's `search_path` (or `-c search_path=`
    /// in `options`), parsed; `None` when the client did not set one.
    pub fn new(startup: Option<SearchPath>) -> SearchPathTracker {
        SearchPathTracker {
            current: startup.clone(),
            reset_value: startup,
            role_changed: false,
        }
    }

    /// The path to resolve names with, if known.
    pub fn current(&self) -> Option<&SearchPath> {
        if self.role_changed {
            return None;
        }
        self.current.as_ref()
    }

    /// The session's value as read from the origin (`SHOW search_path` right
    /// after startup, outside any transaction): also what `RESET` returns to.
    pub fn learned(&mut self, setting: SearchPath) {
        self.reset_value = Some(setting.clone());
        self.current = Some(setting);
    }

    /// A `ParameterStatus` for `search_path` (PostgreSQL 18+ reports it):
    /// the origin's own word on the current value.
    pub fn reported(&mut self, setting: &str) {
        self.current = SearchPath::parse(setting).ok();
    }

    /// Account for a statement the origin executed successfully; `sql` is
    /// its text, `in_transaction_block` whether it ran inside `BEGIN … COMMIT`.
    pub fn executed(&mut self, kind: &StatementKind, sql: &str, in_transaction_block: bool) {
        let unknown_after = match kind {
            StatementKind::Set(s)
                if matches!(s.name.as_str(), "role" | "session_authorization") =>
            {
                self.role_changed = true;
                false
            }
            StatementKind::Set(s) if s.name == "search_path" => {
                if s.local && !in_transaction_block {
                    return; // SET LOCAL outside a transaction has no effect.
                }
                if in_transaction_block {
                    true
                } else {
                    self.current = match &s.value {
                        SetValue::Values(v) => Some(SearchPath::from_values(v)),
                        SetValue::Default => self.reset_value.clone(),
                        SetValue::FromCurrent | SetValue::Other => None,
                    };
                    false
                }
            }
            StatementKind::Reset(name) if name.as_deref().is_none_or(|n| n == "search_path") => {
                if in_transaction_block {
                    true
                } else {
                    self.current = self.reset_value.clone();
                    false
                }
            }
            StatementKind::Discard { all: true } => {
                // DISCARD ALL includes SET SESSION AUTHORIZATION DEFAULT and
                // RESET ALL (and cannot run in a block); the other DISCARDs
                // keep every setting.
                self.current = self.reset_value.clone();
                self.role_changed = false;
                false
            }
            StatementKind::Do | StatementKind::Call | StatementKind::Execute => true,
            _ => sql.to_ascii_lowercase().contains("set_config"),
        };
        if unknown_after {
            self.current = None;
        }
    }
}
