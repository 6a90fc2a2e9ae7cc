//! Statement kinds: what routing and consistency need to know about any
//! statement, query or not.

use std::fmt;

/// What a statement is, for routing (serve, forward, track session state).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum StatementKind {
    /// A read-only query: `SELECT`, `VALUES`, `TABLE`, set operations.
    Select,
    /// A query with a data-modifying `WITH` (`WITH d AS (DELETE …) SELECT …`):
    /// it writes.
    SelectWithWrites,
    /// `SELECT … INTO t` / `CREATE TABLE … AS`: creates a table.
    SelectInto {
        /// `INTO TEMP` / `CREATE TEMP TABLE … AS`.
        temporary: bool,
    },
    Insert,
    Update,
    Delete,
    Merge,
    Truncate,
    /// Any schema change (`CREATE`, `ALTER`, `DROP`, `COMMENT`, `GRANT`, …):
    /// the tag says which, e.g. `"CREATE TABLE"`.
    Ddl(&'static str),
    Transaction(TransactionKind),
    /// `SET [LOCAL|SESSION] name …` (including `SET ROLE`, `SET SESSION
    /// AUTHORIZATION`, `SET TIME ZONE`, `SET TRANSACTION`).
    Set(SetStatement),
    /// `RESET name` / `RESET ALL` (`None`).
    Reset(Option<String>),
    /// `SHOW name` / `SHOW ALL`.
    Show(String),
    /// `COPY`; `from` when data flows into the database.
    Copy {
        from: bool,
    },
    Listen,
    Unlisten,
    Notify,
    /// `PREPARE name AS …` (SQL-level).
    Prepare,
    Execute,
    /// `DEALLOCATE name` (`Some`, the name as PostgreSQL folds it) or
    /// `DEALLOCATE ALL` (`None`).
    Deallocate {
        name: Option<String>,
    },
    Explain,
    Call,
    Do,
    Lock,
    /// `DISCARD ALL|PLANS|SEQUENCES|TEMP`; `all` for `DISCARD ALL`, the only
    /// one that resets settings (and the role).
    Discard {
        all: bool,
    },
    /// `DECLARE` (cursor), `FETCH`/`MOVE`, `CLOSE`.
    Cursor,
    /// `VACUUM`, `ANALYZE`, `CLUSTER`, `REINDEX`, `CHECKPOINT`, `LOAD`,
    /// `REFRESH MATERIALIZED VIEW`, …: the tag says which.
    Utility(&'static str),
}

/// Transaction control.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransactionKind {
    Begin,
    Commit,
    Rollback,
    Savepoint,
    Release,
    RollbackToSavepoint,
    PrepareTransaction,
    CommitPrepared,
    RollbackPrepared,
}

/// `SET [LOCAL] name = value`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SetStatement {
    /// The setting, lower-cased as PostgreSQL knows it (`search_path`,
    /// `timezone`, `role`, `session_authorization`, `transaction`, …).
    pub name: String,
    pub value: SetValue,
    /// `SET LOCAL`: lasts until the end of the transaction.
    pub local: bool,
}

/// The value part of a `SET`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SetValue {
    /// `TO DEFAULT`.
    Default,
    /// `FROM CURRENT`.
    FromCurrent,
    /// The list of values, each as the parser produced it: identifiers
    /// case-folded, strings verbatim, numbers as written.
    Values(Vec<String>),
    /// A form not reduced to plain values (`SET TRANSACTION …`, `SET TIME
    /// ZONE INTERVAL …`).
    Other,
}

impl StatementKind {
    /// Writes rows of tables, and nothing of the schema.
    pub fn writes_rows(&self) -> bool {
        matches!(
            self,
            StatementKind::Insert
                | StatementKind::Update
                | StatementKind::Delete
                | StatementKind::Merge
                | StatementKind::Truncate
                | StatementKind::Copy { .. }
        )
    }

    /// May change the catalog (relations, functions, privileges): DDL,
    /// `SELECT INTO`, `DO`, `CALL`, and whatever is not known not to.
    pub fn may_change_catalog(&self) -> bool {
        !(self.writes_rows()
            || matches!(
                self,
                StatementKind::Select
                    | StatementKind::SelectWithWrites
                    | StatementKind::Execute
                    | StatementKind::Cursor
                    | StatementKind::Utility(_)
                    | StatementKind::Transaction(_)
                    | StatementKind::Show(_)
                    | StatementKind::Explain
                    | StatementKind::Listen
                    | StatementKind::Unlisten
                    | StatementKind::Notify
                    | StatementKind::Set(_)
                    | StatementKind::Reset(_)
                    | StatementKind::Prepare
                    | StatementKind::Deallocate { .. }
                    | StatementKind::Discard { .. }
                    | StatementKind::Lock
            ))
    }

    /// Whether the statement may change data or schema at the origin.
    pub fn writes(&self) -> bool {
        match self {
            StatementKind::SelectWithWrites
            | StatementKind::SelectInto { .. }
            | StatementKind::Insert
            | StatementKind::Update
            | StatementKind::Delete
            | StatementKind::Merge
            | StatementKind::Truncate
            | StatementKind::Ddl(_)
            | StatementKind::Call
            | StatementKind::Do
            | StatementKind::Execute
            | StatementKind::Utility(_) => true,
            StatementKind::Copy { from } => *from,
            StatementKind::Select
            | StatementKind::Transaction(_)
            | StatementKind::Set(_)
            | StatementKind::Reset(_)
            | StatementKind::Show(_)
            | StatementKind::Listen
            | StatementKind::Unlisten
            | StatementKind::Notify
            | StatementKind::Prepare
            | StatementKind::Deallocate { .. }
            | StatementKind::Explain
            | StatementKind::Lock
            | StatementKind::Discard { .. }
            | StatementKind::Cursor => false,
        }
    }

    /// Whether the statement creates a temporary relation, after which the
    /// session's unqualified names may refer to objects the catalog snapshot
    /// cannot see (set [`Context::has_temp_objects`](super::Context)).
    pub fn creates_temp_objects(&self) -> bool {
        matches!(
            self,
            StatementKind::SelectInto { temporary: true }
                | StatementKind::Ddl(
                    "CREATE TEMPORARY TABLE"
                        | "CREATE TEMPORARY VIEW"
                        | "CREATE TEMPORARY SEQUENCE"
                )
        )
    }

    /// The command as a user would name it (`INSERT`, `CREATE TABLE`, …).
    pub fn tag(&self) -> &'static str {
        match self {
            StatementKind::Select => "SELECT",
            StatementKind::SelectWithWrites => "SELECT with a data-modifying WITH",
            StatementKind::SelectInto { .. } => "SELECT INTO",
            StatementKind::Insert => "INSERT",
            StatementKind::Update => "UPDATE",
            StatementKind::Delete => "DELETE",
            StatementKind::Merge => "MERGE",
            StatementKind::Truncate => "TRUNCATE",
            StatementKind::Ddl(tag) | StatementKind::Utility(tag) => tag,
            StatementKind::Transaction(t) => t.tag(),
            StatementKind::Set(_) => "SET",
            StatementKind::Reset(_) => "RESET",
            StatementKind::Show(_) => "SHOW",
            StatementKind::Copy { .. } => "COPY",
            StatementKind::Listen => "LISTEN",
            StatementKind::Unlisten => "UNLISTEN",
            StatementKind::Notify => "NOTIFY",
            StatementKind::Prepare => "PREPARE",
            StatementKind::Execute => "EXECUTE",
            StatementKind::Deallocate { .. } => "DEALLOCATE",
            StatementKind::Explain => "EXPLAIN",
            StatementKind::Call => "CALL",
            StatementKind::Do => "DO",
            StatementKind::Lock => "LOCK",
            StatementKind::Discard { .. } => "DISCARD",
            StatementKind::Cursor => "cursor command",
        }
    }
}

impl TransactionKind {
    pub fn tag(self) -> &'static str {
        match self {
            TransactionKind::Begin => "BEGIN",
            TransactionKind::Commit => "COMMIT",
            TransactionKind::Rollback => "ROLLBACK",
            TransactionKind::Savepoint => "SAVEPOINT",
            TransactionKind::Release => "RELEASE",
            TransactionKind::RollbackToSavepoint => "ROLLBACK TO SAVEPOINT",
            TransactionKind::PrepareTransaction => "PREPARE TRANSACTION",
            TransactionKind::CommitPrepared => "COMMIT PREPARED",
            TransactionKind::RollbackPrepared => "ROLLBACK PREPARED",
        }
    }
}

impl fmt::Display for StatementKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.tag())
    }
}
